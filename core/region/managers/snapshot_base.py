"""What disk snapshots (snapshots.py) and instance snapshots (instance_snapshots.py) share.

Both are taken, deleted and rolled back to by the host of their server, which must be able to act
now (``guard_host_acts``), and hold the server and its disks while their task runs (``hold``). Both
belong to the project of what they snapshot, are renamed within it and created one at a time from
it (``SnapshotManagerBase``). Both live inside their disks' files on the host, each disk snapshot
counting against the ``snapshot`` quota until its row goes (``drop_rows``): when a disk is gone for
good its snapshot rows go (``drop_disk_snapshots``, called as the disk is released), and an instance
snapshot that lost one of its disk snapshots is dropped (``drop_instance_snapshots``): a clone needs
every disk.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.api.context import Credential
from core.errors import InputParameterError
from core.region import quotas
from core.region import statemachine as sm
from core.region.guards import guard_capability, guard_host_online
from core.region.managers._util import apply_update, unique_name
from core.region.models import Disk, InstanceSnapshot, Server, Snapshot
from core.region.resource import Manager


def guard_host_acts(session: Session, server: Server, disks: Sequence[Disk], action: str) -> None:
    """The server's host can act on ``disks`` now: the server and each disk idle (a 409 else), the host
    online and able (400 naming the capability)."""
    sm.guard_busy(server)
    for d in disks:
        sm.guard_busy(d, "disk")
    guard_host_online(session, server)
    guard_capability(session, server, action)


def hold(server: Server, disks: Sequence[Disk], task_id: str | None) -> None:
    """The server and ``disks`` are busy with task ``task_id`` (a second action on them is a 409)."""
    server.active_task_id = task_id
    for d in disks:
        d.active_task_id = task_id


def drop_rows(session: Session, tenant_id: str, rows: Sequence[Snapshot]) -> None:
    """Disk snapshot rows deleted, their ``snapshot`` quota given back (a failed create gave its back already)."""
    for s in rows:
        session.delete(s)
    held = sum(1 for s in rows if s.status != "create_failed")
    if held:
        quotas.release(session, tenant_id, {"snapshot": held})


class SnapshotManagerBase(Manager):
    """A snapshot resource: owned by the project of what it snapshots, renamed within it, created one at
    a time from it (``POST /<plural> {<of keys>: ref, name}``, or under it as a context)."""

    owned = True
    # (plural of the manager of what is snapshotted, its keyword, the body keys that name it)
    of: ClassVar[tuple[str, str, tuple[str, ...]]]

    def take(self, session: Session, cred: Credential, of: Any, name: Any) -> Any:
        """The new snapshot row (creating) of ``of`` and its task."""
        raise NotImplementedError

    def create(self, session: Session, cred: Credential, body: dict[str, Any], count: int,
               ctx: tuple[str, str] | None = None) -> list[Any]:
        from core.region.registry import get_manager

        plural, kind, keys = self.of
        ref = (ctx[1] if ctx else None) or next((body[k] for k in keys if body.get(k)), None)
        if not ref:
            raise InputParameterError(f"{keys[0]}: required (the {kind} to snapshot)")
        if count != 1:
            raise InputParameterError(f"count: one {self.keyword.replace('_', ' ')} at a time")
        of = get_manager(plural).lookup(session, cred, str(ref), kind)
        snap = self.take(session, cred, of, body.get("name"))
        self.audit(session, cred, "create", snap)
        return [snap]

    def update(self, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> Any:
        if "name" in body:
            unique_name(session, self.model, body["name"], scope={"tenant_id": row.tenant_id}, exclude_id=row.id)
        apply_update(row, body, ("name", "description"))
        return row


def members(session: Session, isnap_id: str) -> list[Snapshot]:
    """The disk snapshots of instance snapshot ``isnap_id``."""
    return list(session.scalars(select(Snapshot).where(Snapshot.instance_snapshot_id == isnap_id)))


def drop_instance_snapshots(session: Session, snaps: list[Snapshot]) -> None:
    """Disk snapshots ``snaps`` are gone with their disk: an instance snapshot that had one of them
    cannot be cloned any more, so it goes; its other disk snapshots stay as plain disk snapshots
    (still in their files, still counted, deletable with ``snapshot-delete``)."""
    ids = {s.instance_snapshot_id for s in snaps if s.instance_snapshot_id}
    gone = {s.id for s in snaps}
    for isnap in session.scalars(select(InstanceSnapshot).where(InstanceSnapshot.id.in_(sorted(ids)))):
        for s in members(session, isnap.id):
            if s.id not in gone:
                s.instance_snapshot_id = None
        session.delete(isnap)


def drop_disk_snapshots(session: Session, disk: Disk) -> None:
    """A disk is gone for good: its snapshots were inside it. Rows deleted, quota given back."""
    rows = list(session.scalars(select(Snapshot).where(Snapshot.disk_id == disk.id)))
    drop_instance_snapshots(session, rows)
    drop_rows(session, disk.tenant_id, rows)
    if rows:
        session.flush()
