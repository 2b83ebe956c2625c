"""Cloud regions, zones, VPCs, wires: system infrastructure (admins write, everyone reads)."""
from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.api.context import Credential
from core.errors import InputParameterError, NotEmptyError
from core.region.common import check_name, parse, text_field
from core.region.managers._util import add_names, apply_update, names_by_id, unique_name
from core.region.models import Cloudregion, Host, Network, Storage, Vpc, Wire, Zone
from core.region.resource import Manager

DEFAULT_REGION_ID = "default"
DEFAULT_VPC_ID = "default"


class _In(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ZoneCreate(_In):
    name: str
    description: str = ""
    cloudregion: str | None = Field(default=None, alias="cloudregion_id")
    location: str = ""


DEFAULT_MTU = 1500


class WireCreate(_In):
    name: str
    description: str = ""
    zone: str | None = None
    zone_id: str | None = None
    vpc: str | None = None
    vpc_id: str | None = None
    bandwidth: int = Field(default=1000, ge=1, le=10_000_000)
    mtu: int = Field(default=DEFAULT_MTU, ge=576, le=65535)

    @field_validator("mtu", mode="before")
    @classmethod
    def _mtu_default(cls, v: Any) -> Any:
        return DEFAULT_MTU if v in (0, "0", None) else v  # Cloudpods: mtu 0 means the default


class VpcCreate(_In):
    name: str
    description: str = ""
    cloudregion: str | None = Field(default=None, alias="cloudregion_id")
    cidr_block: str = ""


def _count(session: Session, model: Any, col: Any, value: str) -> int:
    return int(session.scalar(select(func.count()).select_from(model).where(col == value)) or 0)


class CloudregionManager(Manager):
    keyword, plural, model = "cloudregion", "cloudregions", Cloudregion

    def create(self, session: Session, cred: Credential, body: dict[str, Any], count: int,
               ctx: tuple[str, str] | None = None) -> list[Any]:
        name = unique_name(session, Cloudregion, body.get("name", ""))
        row = Cloudregion(name=name, description=text_field(body, "description"), status="inservice")
        session.add(row)
        self.audit(session, cred, "create", row)
        return [row]

    def update(self, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> Any:
        if "name" in body:
            unique_name(session, Cloudregion, body["name"], exclude_id=row.id)
        apply_update(row, body, ("name", "description"))
        return row

    def validate_delete(self, session: Session, row: Any) -> None:
        if row.id == DEFAULT_REGION_ID:
            raise InputParameterError("the default cloudregion cannot be deleted")
        if _count(session, Zone, Zone.cloudregion_id, row.id) or _count(session, Vpc, Vpc.cloudregion_id, row.id):
            raise NotEmptyError(f"cloudregion {row.name} still has zones or vpcs")


class ZoneManager(Manager):
    keyword, plural, model = "zone", "zones", Zone
    contexts: ClassVar[dict[str, str]] = {"cloudregions": "cloudregion_id"}
    actions: ClassVar[dict[str, str]] = {"enable": "do_enable", "disable": "do_disable", "soldout": "do_soldout"}
    cloud_ops: ClassVar[frozenset[str] | None] = frozenset({"enable", "disable", "soldout"})  # placement here
    # GET /zones/<id>/capability (Cloudpods' spelling) and /capabilities: what a create can ask for here
    specs: ClassVar[dict[str, str]] = {"capability": "spec_capability", "capabilities": "spec_capability"}

    def create(self, session: Session, cred: Credential, body: dict[str, Any], count: int,
               ctx: tuple[str, str] | None = None) -> list[Any]:
        data = parse(ZoneCreate, body)
        name = unique_name(session, Zone, data.name)
        region_ref = ctx[1] if ctx else (data.cloudregion or DEFAULT_REGION_ID)
        from core.region.registry import get_manager

        region = get_manager("cloudregions").lookup(session, cred, region_ref)
        row = Zone(name=name, description=data.description, cloudregion_id=region.id, location=data.location,
                   status="enable")
        session.add(row)
        self.audit(session, cred, "create", row)
        return [row]

    def update(self, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> Any:
        if "name" in body:
            unique_name(session, Zone, body["name"], exclude_id=row.id)
        apply_update(row, body, ("name", "description", "location"))
        return row

    def validate_delete(self, session: Session, row: Any) -> None:
        for model, what in ((Host, "hosts"), (Wire, "wires"), (Storage, "storages")):
            if _count(session, model, model.zone_id, row.id):
                raise NotEmptyError(f"zone {row.name} still has {what}")

    def add_details(self, session: Session, rows: Any, items: list[dict[str, Any]]) -> None:
        add_names(items, "cloudregion_id", names_by_id(session, Cloudregion, [r.cloudregion_id for r in rows]),
                  "cloudregion")
        ids = [r.id for r in rows]
        for model, key in ((Host, "hosts"), (Wire, "wires")):
            counts: dict[str, int] = dict(session.execute(select(model.zone_id, func.count())
                                                          .where(model.zone_id.in_(ids))
                                                          .group_by(model.zone_id)).tuples().all())
            for it in items:
                it[key] = int(counts.get(it["id"], 0))

    def do_enable(self, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> None:
        row.status = "enable"

    def do_disable(self, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> None:
        row.status = "disable"

    def do_soldout(self, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> None:
        row.status = "soldout"

    def spec_capability(self, session: Session, cred: Credential, row: Any, q: Any) -> dict[str, Any]:
        from core.region.capabilities import capabilities

        return capabilities(session, cred, row.id)


class VpcManager(Manager):
    keyword, plural, model = "vpc", "vpcs", Vpc
    contexts: ClassVar[dict[str, str]] = {"cloudregions": "cloudregion_id"}

    def create(self, session: Session, cred: Credential, body: dict[str, Any], count: int,
               ctx: tuple[str, str] | None = None) -> list[Any]:
        data = parse(VpcCreate, body)
        name = unique_name(session, Vpc, data.name)
        from core.region.registry import get_manager

        region = get_manager("cloudregions").lookup(session, cred, data.cloudregion or DEFAULT_REGION_ID)
        row = Vpc(name=name, description=data.description, cloudregion_id=region.id, cidr_block=data.cidr_block,
                  status="available")
        session.add(row)
        self.audit(session, cred, "create", row)
        return [row]

    def update(self, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> Any:
        if "name" in body:
            unique_name(session, Vpc, body["name"], exclude_id=row.id)
        apply_update(row, body, ("name", "description", "cidr_block"))
        return row

    def validate_delete(self, session: Session, row: Any) -> None:
        if row.id == DEFAULT_VPC_ID:
            raise InputParameterError("the default vpc cannot be deleted")
        if _count(session, Wire, Wire.vpc_id, row.id):
            raise NotEmptyError(f"vpc {row.name} still has wires")


class WireManager(Manager):
    keyword, plural, model = "wire", "wires", Wire
    contexts: ClassVar[dict[str, str]] = {"zones": "zone_id", "vpcs": "vpc_id"}

    def create(self, session: Session, cred: Credential, body: dict[str, Any], count: int,
               ctx: tuple[str, str] | None = None) -> list[Any]:
        data = parse(WireCreate, body)
        name = unique_name(session, Wire, data.name)
        from core.region.registry import get_manager

        zone_ref = (ctx[1] if ctx and ctx[0] == "zones" else None) or data.zone or data.zone_id
        if not zone_ref:
            raise InputParameterError("zone: required")
        zone = get_manager("zones").lookup(session, cred, zone_ref)
        vpc_ref = (ctx[1] if ctx and ctx[0] == "vpcs" else None) or data.vpc or data.vpc_id or DEFAULT_VPC_ID
        vpc = get_manager("vpcs").lookup(session, cred, vpc_ref)
        row = Wire(name=check_name(name), description=data.description, zone_id=zone.id, vpc_id=vpc.id,
                   bandwidth=data.bandwidth, mtu=data.mtu, status="available")
        session.add(row)
        self.audit(session, cred, "create", row)
        return [row]

    def update(self, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> Any:
        if "name" in body:
            unique_name(session, Wire, body["name"], exclude_id=row.id)
        if body.get("mtu") in (0, "0"):
            body = {**body, "mtu": DEFAULT_MTU}  # as on create: 0 means the default
        for k in ("bandwidth", "mtu"):
            if k in body and (isinstance(body[k], bool) or not isinstance(body[k], int) or body[k] <= 0):
                raise InputParameterError(f"{k}: must be a positive integer")
        apply_update(row, body, ("name", "description", "bandwidth", "mtu"))
        return row

    def validate_delete(self, session: Session, row: Any) -> None:
        if _count(session, Network, Network.wire_id, row.id):
            raise NotEmptyError(f"wire {row.name} still has networks")

    def add_details(self, session: Session, rows: Any, items: list[dict[str, Any]]) -> None:
        add_names(items, "zone_id", names_by_id(session, Zone, [r.zone_id for r in rows]), "zone")
        add_names(items, "vpc_id", names_by_id(session, Vpc, [r.vpc_id for r in rows]), "vpc")
