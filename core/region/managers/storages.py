"""Storages and the host<->storage / host<->wire joint listings."""
from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.api.context import Credential
from core.errors import InputParameterError, NotEmptyError
from core.region.common import parse
from core.region.managers._util import add_names, apply_update, names_by_id, unique_name
from core.region.models import Disk, Host, HostStorage, HostWire, Storage, Wire, Zone
from core.region.resource import Manager
from core.scheduler.capacity import offered

STORAGE_TYPES = ("local", "rbd", "nfs", "lvm", "gpfs", "slvm", "baremetal")


class StorageCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: str
    description: str = ""
    zone: str | None = None
    zone_id: str | None = None
    storage_type: str = "local"
    medium_type: str = "ssd"
    capacity: int = Field(ge=0)
    reserved: int = Field(default=0, ge=0)
    cmtbound: float = Field(default=1.0, gt=0, le=100)


def free_capacity(s: Storage) -> int:
    """MB a storage can still give: ``(capacity - reserved) * cmtbound - used``, whole MB as Cloudpods
    (a float here printed ``1048576.0``)."""
    return int(offered(s.capacity, s.reserved, s.cmtbound)) - s.used_capacity


class StorageManager(Manager):
    keyword, plural, model = "storage", "storages", Storage
    contexts: ClassVar[dict[str, str]] = {"zones": "zone_id"}
    actions: ClassVar[dict[str, str]] = {"enable": "do_enable", "disable": "do_disable"}

    def create(self, session: Session, cred: Credential, body: dict[str, Any], count: int,
               ctx: tuple[str, str] | None = None) -> list[Any]:
        from core.region.registry import get_manager

        data = parse(StorageCreate, body)
        if data.storage_type not in STORAGE_TYPES:
            raise InputParameterError(f"storage_type: must be one of {', '.join(STORAGE_TYPES)}")
        if data.medium_type not in ("ssd", "rotate", "hybrid"):
            raise InputParameterError("medium_type: must be ssd, rotate or hybrid")
        zone_ref = (ctx[1] if ctx else None) or data.zone or data.zone_id
        if not zone_ref:
            raise InputParameterError("zone: required")
        zone = get_manager("zones").lookup(session, cred, zone_ref)
        row = Storage(name=unique_name(session, Storage, data.name), description=data.description, zone_id=zone.id,
                      storage_type=data.storage_type, medium_type=data.medium_type, capacity=data.capacity,
                      reserved=data.reserved, cmtbound=data.cmtbound, status="online")
        session.add(row)
        self.audit(session, cred, "create", row)
        return [row]

    def update(self, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> Any:
        if "name" in body:
            unique_name(session, Storage, body["name"], exclude_id=row.id)
        for k in ("capacity", "reserved"):
            if k in body and (not isinstance(body[k], int) or isinstance(body[k], bool) or body[k] < 0):
                raise InputParameterError(f"{k}: must be a non-negative integer (MB)")
        apply_update(row, body, ("name", "description", "capacity", "reserved", "cmtbound", "medium_type"))
        return row

    def validate_delete(self, session: Session, row: Any) -> None:
        n = session.scalar(select(func.count()).select_from(Disk).where(Disk.storage_id == row.id)) or 0
        if n:
            raise NotEmptyError(f"storage {row.name} still has {n} disk(s)")
        if session.scalar(select(HostStorage.id).where(HostStorage.storage_id == row.id).limit(1)):
            raise NotEmptyError(f"storage {row.name} is still attached to hosts")

    def add_details(self, session: Session, rows: Any, items: list[dict[str, Any]]) -> None:
        add_names(items, "zone_id", names_by_id(session, Zone, [r.zone_id for r in rows]), "zone")
        ids = [r.id for r in rows]
        hosts: dict[str, list[str]] = {}
        for sid, hname in session.execute(select(HostStorage.storage_id, Host.name)
                                          .join(Host, Host.id == HostStorage.host_id)
                                          .where(HostStorage.storage_id.in_(ids))):
            hosts.setdefault(sid, []).append(hname)
        for r, it in zip(rows, items, strict=True):
            it["hosts"] = hosts.get(r.id, [])
            it["free_capacity"] = free_capacity(r)

    def do_enable(self, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> None:
        row.enabled = True

    def do_disable(self, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> None:
        row.enabled = False


class JointManager(Manager):
    """A joint table's rows (a host's storages, its wires): listed under either side, each row shown
    with the names of both."""

    searchable = ()
    sides: ClassVar[tuple[tuple[str, Any, str], ...]]  # (id column, model it points at, name key)

    def add_details(self, session: Session, rows: Any, items: list[dict[str, Any]]) -> None:
        for column, model, key in self.sides:
            add_names(items, column, names_by_id(session, model, [getattr(r, column) for r in rows]), key)


class HostStorageManager(JointManager):
    keyword, plural, model = "hoststorage", "hoststorages", HostStorage
    contexts: ClassVar[dict[str, str]] = {"hosts": "host_id", "storages": "storage_id"}
    sides = (("host_id", Host, "host"), ("storage_id", Storage, "storage"))


class HostWireManager(JointManager):
    keyword, plural, model = "hostwire", "hostwires", HostWire
    contexts: ClassVar[dict[str, str]] = {"hosts": "host_id", "wires": "wire_id"}
    sides = (("host_id", Host, "host"), ("wire_id", Wire, "wire"))
