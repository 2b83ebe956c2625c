"""Give back what a server or disk holds — idempotent, so a failed stage can run it twice."""
from __future__ import annotations

from typing import Any

from sqlalchemy import case, select, update
from sqlalchemy.orm import Session

from core.region import ipam, quotas
from core.region.models import Disk, Host, Server, Storage


def release_host_claim(session: Session, host_id: str, vcpu: int, vmem: int) -> None:
    session.execute(update(Host).where(Host.id == host_id).values(
        cpu_used=case((Host.cpu_used - vcpu < 0, 0), else_=Host.cpu_used - vcpu),
        mem_used=case((Host.mem_used - vmem < 0, 0), else_=Host.mem_used - vmem),
        generation=Host.generation + 1))


def adjust_storage(session: Session, storage_id: str | None, delta_mb: int) -> None:
    if storage_id and delta_mb:
        col = Storage.used_capacity
        session.execute(update(Storage).where(Storage.id == storage_id).values(
            used_capacity=case((col + delta_mb < 0, 0), else_=col + delta_mb)))


def release_server(session: Session, server: Server, *, keep_disks: bool = False) -> dict[str, Any]:
    """Release the server's host claim, quota, addresses and (auto-delete) disks."""
    held = dict(server.held or {})
    h = held.pop("host", None)
    if h:
        release_host_claim(session, h["host_id"], int(h.get("vcpu", 0)), int(h.get("vmem", 0)))
    q = held.pop("quota", None)
    if q:
        quotas.release(session, server.tenant_id, q)
    ipam.release(session, "server", server.id)
    if not keep_disks:
        for d in session.scalars(select(Disk).where(Disk.server_id == server.id)):
            if d.auto_delete:
                release_disk(session, d)
                session.delete(d)
            else:  # kept: back out of the recycle bin it went to with its server
                d.server_id, d.pending_deleted, d.pending_deleted_at = None, False, None
    server.held = held
    return held


def release_disk(session: Session, disk: Disk) -> None:
    """Before the disk row is deleted: its storage, quota and snapshots (kept inside its file) given back."""
    from core.region.managers.snapshot_base import drop_disk_snapshots

    drop_disk_snapshots(session, disk)
    held = dict(disk.held or {})
    st = held.pop("storage", None)
    if st:
        adjust_storage(session, st.get("storage_id"), -int(st.get("size", 0)))
    q = held.pop("quota", None)
    if q:
        quotas.release(session, disk.tenant_id, q)
    disk.held = held
