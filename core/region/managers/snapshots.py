"""Disk snapshots: taken, deleted and rolled back to (``disk-reset``) by the host of the disk's server.

A snapshot belongs to its disk's project; the host keeps it inside the disk's file (drivers name
it by the snapshot's id), so it goes with its disk: the region deletes a disk's snapshot rows when
the disk goes (``snapshot_base.drop_disk_snapshots``). Each snapshot counts against the project's ``snapshot``
quota. While a snapshot task runs, the disk and its server are held (a second action is a 409).
"""
from __future__ import annotations

from typing import Any, ClassVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.api.context import Credential
from core.api.listing import ListQuery
from core.errors import InputParameterError, InvalidStatusError
from core.region import quotas
from core.region.managers._util import add_names, names_by_id, unique_name
from core.region.managers.snapshot_base import SnapshotManagerBase, drop_rows, guard_host_acts, hold
from core.region.managers.storages import free_capacity
from core.region.models import Disk, Server, Snapshot
from core.tasks.engine import submit


def _server_for(session: Session, disk: Disk, action: str) -> Server:
    """The server whose host acts on ``disk``, checked: attached, not in the recycle bin, not busy,
    host online and able (400 naming the capability)."""
    server = session.get(Server, disk.server_id) if disk.server_id else None
    if server is None or not server.host_id:
        raise InvalidStatusError(f"disk {disk.name} is not attached to a deployed server: its snapshots are "
                                 "taken by the host that runs it (attach it first)")
    if server.pending_deleted or disk.pending_deleted:
        raise InvalidStatusError(f"disk {disk.name} is in the recycle bin with server {server.name}")
    guard_host_acts(session, server, [disk], action)
    return server


def create_snapshot(session: Session, cred: Credential, disk: Disk, name: Any) -> Snapshot:
    """``POST /disks/<id>/create-snapshot`` and ``POST /snapshots``: a snapshot row (creating) and its task."""
    if not isinstance(name, str) or not name:
        raise InputParameterError("name: required (the snapshot's name)")
    server = _server_for(session, disk, "create-snapshot")
    if server.status not in ("ready", "running"):
        raise InvalidStatusError(f"cannot snapshot a disk of server {server.name} in status {server.status} "
                                 "(allowed: ready, running)")
    unique_name(session, Snapshot, name, scope={"tenant_id": disk.tenant_id})
    quotas.reserve(session, disk.tenant_id, disk.domain_id, snapshot=1)
    snap = Snapshot(name=name, disk_id=disk.id, storage_id=disk.storage_id, size=disk.disk_size, status="creating",
                    tenant_id=disk.tenant_id, domain_id=disk.domain_id)
    session.add(snap)
    session.flush()
    t = submit(session, "SnapshotCreateTask", "snapshot", snap.id, snap.name, {"disk_id": disk.id}, cred=cred,
               tenant_id=disk.tenant_id, domain_id=disk.domain_id)
    hold(server, [disk], t.id)
    return snap


def reset_disk(session: Session, cred: Credential, disk: Disk, ref: Any) -> None:
    """``POST /disks/<id>/disk-reset {snapshot_id}``: the disk back to the snapshot; its server stopped."""
    from core.region.registry import get_manager

    if not ref:
        raise InputParameterError("snapshot_id: required (a snapshot of this disk)")
    snap = get_manager("snapshots").lookup(session, cred, str(ref), "snapshot")
    if snap.disk_id != disk.id:
        raise InputParameterError(f"snapshot {snap.name} is not a snapshot of disk {disk.name}")
    if snap.status != "ready":
        raise InvalidStatusError(f"snapshot {snap.name} is {snap.status}, not ready")
    server = _server_for(session, disk, "disk-reset")
    if server.status != "ready":
        raise InvalidStatusError(f"cannot reset a disk of server {server.name} in status {server.status}: "
                                 "stop the server first (allowed: ready)")
    t = submit(session, "DiskResetTask", "disk", disk.id, disk.name, {"snapshot_id": snap.id}, cred=cred,
               tenant_id=disk.tenant_id, domain_id=disk.domain_id)
    hold(server, [disk], t.id)
    disk.status = "resetting"


def resize_disk(session: Session, cred: Credential, disk: Disk, size: Any) -> None:
    """Grow ``disk`` to ``size`` (MB or 10g): storage room and quota claimed now, given back if it fails."""
    from core.errors import InsufficientResourceError
    from core.region.models import Storage
    from core.region.release import adjust_storage
    from core.region.server_create import MAX_DISK_MB
    from core.region.sizes import to_mb

    if size is None or size == "":
        raise InputParameterError("size: required (the new size, e.g. 20g)")
    new = to_mb(size, "size")
    if new < disk.disk_size:
        raise InputParameterError(f"size: disk {disk.name} is {disk.disk_size} MB; disks only grow "
                                  f"({new} MB would lose data)")
    if new == disk.disk_size:
        raise InputParameterError(f"size: disk {disk.name} is {new} MB already")
    if new > MAX_DISK_MB:
        raise InputParameterError(f"size: {new} MB is more than {MAX_DISK_MB} MB")
    server = _server_for(session, disk, "resize")
    if server.status not in ("ready", "running"):
        raise InvalidStatusError(f"cannot resize a disk of server {server.name} in status {server.status} "
                                 "(allowed: ready, running)")
    grow = new - disk.disk_size
    st = session.get(Storage, disk.storage_id) if disk.storage_id else None
    if st is not None and free_capacity(st) < grow:
        raise InsufficientResourceError(f"storage {st.name} lacks {grow} MB free")
    quotas.reserve(session, disk.tenant_id, disk.domain_id, storage=grow)
    adjust_storage(session, disk.storage_id, grow)
    t = submit(session, "DiskResizeTask", "disk", disk.id, disk.name, {"size": new, "grow": grow}, cred=cred,
               tenant_id=disk.tenant_id, domain_id=disk.domain_id)
    hold(server, [disk], t.id)
    disk.status = "resizing"


class SnapshotManager(SnapshotManagerBase):
    keyword, plural, model = "snapshot", "snapshots", Snapshot
    contexts: ClassVar[dict[str, str]] = {"disks": "disk_id"}
    of = ("disks", "disk", ("disk", "disk_id"))

    def list_filter(self, session: Session, cred: Credential, stmt: Any, q: ListQuery) -> Any:
        """Snapshots follow their disk into the recycle bin: listed with ``--pending-delete`` only."""
        binned = select(Disk.id).where(Disk.pending_deleted.is_(True))
        if q.pending_delete == "all":
            return stmt
        if q.pending_delete == "true":
            return stmt.where(Snapshot.disk_id.in_(binned))
        return stmt.where(Snapshot.disk_id.not_in(binned))

    def take(self, session: Session, cred: Credential, of: Any, name: Any) -> Any:
        return create_snapshot(session, cred, of, name)

    def delete(self, session: Session, cred: Credential, row: Any, params: dict[str, str]) -> dict[str, Any] | None:
        if row.status == "deleting":
            raise InvalidStatusError(f"snapshot {row.name} is being deleted already")
        if row.status == "creating":
            raise InvalidStatusError(f"snapshot {row.name} is still being taken: retry when it is ready")
        if row.instance_snapshot_id:
            from core.region.models import InstanceSnapshot

            isnap = session.get(InstanceSnapshot, row.instance_snapshot_id)
            raise InvalidStatusError(f"snapshot {row.name} belongs to instance snapshot "
                                     f"{isnap.name if isnap else row.instance_snapshot_id}: "
                                     "delete that (instance-snapshot-delete) instead")
        disk = session.get(Disk, row.disk_id)
        server = session.get(Server, disk.server_id) if disk is not None and disk.server_id else None
        if disk is None or server is None or not server.host_id or row.status == "create_failed":
            # nothing on a host to remove (never taken), or no host can reach it: the row goes
            drop_rows(session, row.tenant_id, [row])
            return None
        _server_for(session, disk, "create-snapshot")
        t = submit(session, "SnapshotDeleteTask", "snapshot", row.id, row.name, {"disk_id": disk.id}, cred=cred,
                   tenant_id=row.tenant_id, domain_id=row.domain_id)
        hold(server, [disk], t.id)
        row.status = "deleting"
        return self.to_dict(session, row)

    def add_details(self, session: Session, rows: Any, items: list[dict[str, Any]]) -> None:
        add_names(items, "disk_id", names_by_id(session, Disk, [r.disk_id for r in rows]), "disk")
