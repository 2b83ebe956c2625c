"""Disks: standalone data disks (created ready on a storage, built by the agent on attach)."""
from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.api.context import Credential
from core.errors import InputParameterError, InsufficientResourceError, InvalidStatusError
from core.region import quotas
from core.region import statemachine as sm
from core.region.common import check_name, parse
from core.region.managers._util import add_names, apply_update, names_by_id
from core.region.managers.storages import free_capacity
from core.region.models import Disk, Server, Storage
from core.region.release import adjust_storage
from core.region.resource import Manager
from core.region.sizes import to_mb
from core.tasks.engine import submit


class DiskCreate(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    name: str
    description: str = ""
    size: int | str | None = Field(default=None, alias="disk_size")
    image: str | None = Field(default=None, alias="image_id")  # Cloudpods' disk-create --image
    storage: str | None = Field(default=None, alias="storage_id")
    zone: str | None = Field(default=None, alias="prefer_zone")
    backend: str | None = Field(default=None, alias="storage_type")
    format: str = Field(default="qcow2", alias="disk_format")


class DiskManager(Manager):
    keyword, plural, model = "disk", "disks", Disk
    owned = True
    contexts: ClassVar[dict[str, str]] = {"storages": "storage_id", "servers": "server_id"}
    actions: ClassVar[dict[str, str]] = {"create-snapshot": "do_create_snapshot", "disk-reset": "do_disk_reset",
                                         "save": "do_save", "resize": "do_resize"}

    def do_resize(self, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> None:
        """``disk-resize``: grow only; its server ready or running (online where the host can)."""
        from core.region.managers.snapshots import resize_disk

        resize_disk(session, cred, row, body.get("size", body.get("disk_size")))

    def do_save(self, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> Any:
        """``disk-save``: this disk of a stopped server into a new image (Cloudpods' disk ``save``)."""
        from core.region.saveimage import save_image

        server = session.get(Server, row.server_id) if row.server_id else None
        if server is None:
            raise InvalidStatusError(f"disk {row.name} is not attached to a server: its host saves it")
        out = save_image(session, cred, server, row, body)
        return {"disk": {**self.to_dict(session, row), **out}}

    def do_create_snapshot(self, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> Any:
        """Answers the snapshot (what the caller wants next: its id to wait on)."""
        from core.region.managers.snapshots import create_snapshot
        from core.region.registry import get_manager

        snap = create_snapshot(session, cred, row, body.get("name"))
        get_manager("snapshots").audit(session, cred, "create", snap)
        return {"snapshot": get_manager("snapshots").to_dict(session, snap)}

    def do_disk_reset(self, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> None:
        from core.region.managers.snapshots import reset_disk

        reset_disk(session, cred, row, body.get("snapshot_id") or body.get("snapshot"))

    def create(self, session: Session, cred: Credential, body: dict[str, Any], count: int,
               ctx: tuple[str, str] | None = None) -> list[Any]:
        from core.region.registry import get_manager

        if "size" in body and "disk_size" not in body:
            body = {**body, "disk_size": body["size"]}
        data = parse(DiskCreate, body)
        if not cred.project_id:
            raise InputParameterError("disks are created in a project: use a project-scoped token")
        img = None
        if data.image:
            from core.region.images import check_image

            img = check_image(session, data.image, cred)
        if data.size is None or data.size == "":
            if img is None:
                raise InputParameterError("disk_size: required (e.g. 100g), or give an image (--image)")
            size = max(img.min_disk_mb, img.size_mb, 1)
        else:
            size = to_mb(data.size, "disk_size")
        if img is not None and img.min_disk_mb and size < img.min_disk_mb:
            raise InputParameterError(f"disk_size: image {img.name} needs at least {img.min_disk_mb} MB")
        if data.format not in ("qcow2", "raw", "vmdk"):
            raise InputParameterError("disk_format: must be qcow2, raw or vmdk")
        if data.storage or (ctx and ctx[0] == "storages"):
            st = get_manager("storages").lookup(session, cred, (ctx[1] if ctx else None) or str(data.storage))
        else:
            stmt = select(Storage).where(Storage.enabled.is_(True), Storage.status == "online")
            if data.zone:
                stmt = stmt.where(Storage.zone_id == get_manager("zones").lookup(session, cred, data.zone).id)
            else:  # a cloud's storage only when its zone (or the storage) is named
                stmt = stmt.where(Storage.manager_id.is_(None))
            if data.backend:
                stmt = stmt.where(Storage.storage_type == data.backend)
            cands = [s for s in session.scalars(stmt)
                     if free_capacity(s) >= size]
            if not cands:
                raise InsufficientResourceError(f"no storage has {size} MB free")
            st = max(cands, key=free_capacity)
        if free_capacity(st) < size:
            raise InsufficientResourceError(f"storage {st.name} lacks {size} MB free")
        tenant, domain = str(cred.project_id), cred.project_domain_id or "default"
        names = [check_name(data.name)] if count == 1 else [check_name(f"{data.name}-{i + 1}") for i in range(count)]
        quotas.reserve(session, tenant, domain, storage=size * count)
        rows = []
        for n in names:
            d = Disk(name=n, description=data.description, disk_size=size, disk_format=data.format, disk_type="data",
                     template_id=img.id if img is not None else "",
                     storage_id=st.id, status="ready", tenant_id=tenant, domain_id=domain, auto_delete=False,
                     held={"storage": {"storage_id": st.id, "size": size}, "quota": {"storage": size}})
            adjust_storage(session, st.id, size)
            session.add(d)
            rows.append(d)
            self.audit(session, cred, "create", d)
        return rows

    def update(self, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> Any:
        apply_update(row, body, ("name", "description", "auto_delete"))
        if "name" in body:
            check_name(row.name)
        return row

    def delete(self, session: Session, cred: Credential, row: Any, params: dict[str, str]) -> dict[str, Any] | None:
        if row.server_id:
            raise InvalidStatusError(f"disk {row.name} is attached to a server: detach it first")
        sm.guard_busy(row, "disk")
        row.status = "deallocating"
        t = submit(session, "DiskDeleteTask", "disk", row.id, row.name, {}, cred=cred, tenant_id=row.tenant_id,
                   domain_id=row.domain_id)
        row.active_task_id = t.id
        return self.to_dict(session, row)

    def add_details(self, session: Session, rows: Any, items: list[dict[str, Any]]) -> None:
        add_names(items, "storage_id", names_by_id(session, Storage, [r.storage_id for r in rows]), "storage")
        add_names(items, "server_id", names_by_id(session, Server, [r.server_id for r in rows]), "server")
        for it in items:
            it.pop("held", None)


def disk_count(session: Session, storage_id: str) -> int:
    return int(session.scalar(select(func.count()).select_from(Disk).where(Disk.storage_id == storage_id)) or 0)
