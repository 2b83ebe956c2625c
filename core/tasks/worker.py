"""Workers: claim runnable tasks under a lease and execute them.

Claiming is one conditional UPDATE (``... WHERE id = :id AND <still claimable>``) checked by its
row count, so two workers — threads or replicas — never run the same task. On PostgreSQL and
MariaDB the candidate SELECT also uses ``FOR UPDATE SKIP LOCKED`` so replicas do not queue on the
same row; SQLite has one writer anyway.

``owner`` is stable for a controller (host name + port), so a controller restarted after
``kill -9`` recognises the tasks it owned and puts them back in the queue at the recorded stage
at once, instead of waiting for their leases to expire.
"""
from __future__ import annotations

import logging
import socket
from datetime import timedelta
from typing import Any

from sqlalchemy import or_, select, update

from core.db.base import utcnow
from core.db.engine import begin_write
from core.tasks.engine import WAKEUP, execute
from core.tasks.loops import Loops
from core.tasks.models import QUEUED, RUNNING, Task

log = logging.getLogger("cloudpods.tasks")
LEASE_S = 60.0


def default_owner(port: int | str = "") -> str:
    return f"{socket.gethostname()}:{port}"


def claim_one(db: Any, owner: str, lease_s: float = LEASE_S) -> str | None:
    """Claim one runnable task for ``owner``; its id, or None when nothing is runnable."""

    now = utcnow()
    claimable = or_(
        (Task.status == QUEUED) & (Task.run_after <= now),
        (Task.status == RUNNING) & (Task.lease_expires_at < now),
    )
    with db.session() as s:
        begin_write(s, background=True)
        stmt = select(Task.id).where(claimable).order_by(Task.run_after).limit(1)
        if db.dialect in ("postgresql", "mysql", "mariadb"):
            stmt = stmt.with_for_update(skip_locked=True)
        tid = s.scalar(stmt)
        if tid is None:
            return None
        res = s.execute(update(Task).where(Task.id == tid, claimable).values(
            status=RUNNING, owner=owner, lease_expires_at=now + timedelta(seconds=lease_s)))
        if res.rowcount != 1:
            return None
        return str(tid)


def recover(db: Any, owner: str) -> int:
    """Requeue tasks this controller owned when it died (called once at start)."""

    with db.session() as s:
        begin_write(s, background=True)
        res = s.execute(update(Task).where(Task.owner == owner, Task.status == RUNNING)
                        .values(status=QUEUED, owner="", lease_expires_at=None, run_after=utcnow()))
        n = int(res.rowcount or 0)
    if n:
        log.warning("requeued %d task(s) left running by a previous run of %s", n, owner)
    return n


class Worker:
    """N threads that claim and run tasks until stopped."""

    def __init__(self, db: Any, owner: str, threads: int = 2, idle_poll_s: float = 1.0,
                 lease_s: float = LEASE_S) -> None:
        self.db = db
        self.owner = owner
        self.threads = threads
        self.idle_poll_s = idle_poll_s
        self.lease_s = lease_s
        self._loops = Loops(log, WAKEUP)

    def start(self) -> None:
        recover(self.db, self.owner)
        for i in range(self.threads):
            self._loops.work(f"task-worker-{i}", self._step, self.idle_poll_s, "task worker error")

    def stop(self, timeout: float = 10.0) -> None:
        self._loops.stop(timeout)

    def run_pending(self, limit: int = 1000) -> int:
        """Run runnable tasks in the calling thread until none is left (tests, tools)."""
        n = 0
        while n < limit:
            tid = claim_one(self.db, self.owner, self.lease_s)
            if tid is None:
                return n
            execute(self.db, tid, self.owner, self.lease_s)
            n += 1
        return n

    def _step(self) -> bool:
        tid = claim_one(self.db, self.owner, self.lease_s)
        if tid is None:
            return False
        execute(self.db, tid, self.owner, self.lease_s)
        return True
