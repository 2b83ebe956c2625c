"""The region's periodic jobs (scheduled by core.tasks.periodic)."""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core.db.base import utcnow
from core.region.common import begin_write
from core.region.models import Host, Server
from core.tasks.models import WorkItem

# defaults; the controller passes core.config.Settings' host_offline_s, work_item_timeout_s, pending_delete_s
OFFLINE_AFTER_S = 180.0  # three missed pings (agents ping every 60 s)
WORK_ITEM_TIMEOUT_S = 900.0
PENDING_DELETE_S = 3 * 24 * 3600.0
BATCH = 200


def mark_offline_hosts(session: Session, offline_after_s: float = OFFLINE_AFTER_S) -> int:
    """Hosts not heard from in ``offline_after_s`` (180 s) go offline (the scheduler stops placing on them); their idle
    guests become ``unknown`` (nobody can say what they are doing now)."""
    from core.region import statemachine as sm

    limit = utcnow() - timedelta(seconds=offline_after_s)
    begin_write(session)
    stale = (Host.host_status == "online", (Host.last_ping_at < limit) | Host.last_ping_at.is_(None))
    # in id order, as every transaction locking several host rows (secgroups.touch_hosts, scheduler claims)
    gone = list(session.scalars(select(Host.id).where(*stale).order_by(Host.id).with_for_update()))
    if not gone:
        return 0
    session.execute(update(Host).where(Host.id.in_(gone), *stale)
                    .values(host_status="offline", generation=Host.generation + 1))
    names = dict(session.execute(select(Host.id, Host.name).where(Host.id.in_(gone))).tuples().all())
    for server in session.scalars(select(Server).where(Server.host_id.in_(gone), Server.active_task_id.is_(None))):
        if sm.apply_if(server, "observed:unknown"):
            sm.set_reason(server, f"host {names.get(server.host_id or '', server.host_id)} went offline (no ping for "
                                  f"{(utcnow() - limit).total_seconds():.0f} s): its guest's state is not known")
    return len(gone)


def redeliver_work_items(session: Session, timeout_s: float = WORK_ITEM_TIMEOUT_S) -> int:
    """Work items fetched but never reported (the agent died) are queued again. (A hand-out the agent
    never acknowledged goes out again sooner, with the host's next poll: core/hostapi/routes/work.py _take;
    items an executor runs have a lease instead, renewed while they run: core/hostapi/executor.py.)"""
    limit = utcnow() - timedelta(seconds=timeout_s)
    begin_write(session)
    res = session.execute(update(WorkItem).where(WorkItem.status == "dispatched", WorkItem.dispatched_at < limit,
                                                 WorkItem.owner == "")
                          .values(status="queued", dispatched_at=None, lease_expires_at=None))
    return int(res.rowcount or 0)  # type: ignore[attr-defined]


def purge_recycle_bin(session: Session, keep_s: float = PENDING_DELETE_S) -> int:
    """Servers in the recycle bin longer than the retention time are deleted for good."""
    from core.region.registry import get_manager

    limit = utcnow() - timedelta(seconds=keep_s)
    begin_write(session)
    rows = list(session.scalars(select(Server).where(Server.pending_deleted.is_(True),
                                                     Server.pending_deleted_at < limit,
                                                     Server.active_task_id.is_(None)).limit(BATCH)))
    m = get_manager("servers")
    n = 0
    for r in rows:
        try:
            with session.begin_nested():
                m.start_delete(session, None, r, True)
            n += 1
        except Exception:
            continue
    return n
