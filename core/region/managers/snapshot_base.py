"""What disk snapshots (snapshots.py) and instance snapshots (instance_snapshots.py) share.

Both live inside their disks' files on the host: when a disk is gone for good its snapshot rows go
(``drop_disk_snapshots``, called as the disk is released), and an instance snapshot that lost one of
its disk snapshots is dropped (``drop_instance_snapshots``): a clone needs every disk.
"""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.region import quotas
from core.region.models import Disk, InstanceSnapshot, Snapshot


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
    for s in rows:
        session.delete(s)
    held = sum(1 for s in rows if s.status != "create_failed")  # a failed create gave its quota back already
    if held:
        quotas.release(session, disk.tenant_id, {"snapshot": held})
    if rows:
        session.flush()
