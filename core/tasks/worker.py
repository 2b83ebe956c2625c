"""Workers: claim runnable tasks under a lease and execute them.

Claiming reads one claimable task row locked — ``FOR UPDATE SKIP LOCKED`` on PostgreSQL and
MariaDB, so replicas do not queue on the same row; SQLite's transaction is its one writer from the
start (``begin_write``) — and marks it running with this worker's lease in the same transaction, so
two workers (threads or replicas) never run the same task. A stage's outcome may also claim the task
it made runnable (``execute``): the same worker runs it next.

``owner`` is stable for a controller (host name + port), so a controller restarted after
``kill -9`` recognises the tasks it owned and puts them back in the queue at the recorded stage
at once, instead of waiting for their leases to expire.
"""
from __future__ import annotations

import logging
import socket
import threading
from datetime import timedelta
from typing import Any

from sqlalchemy import or_, select, update

from core.db.base import utcnow
from core.db.engine import begin_write
from core.loops import Loops
from core.tasks.engine import WAKEUP, execute, take
from core.tasks.models import QUEUED, RUNNING, Task, WorkItem

log = logging.getLogger("cloudpods.tasks")
LEASE_S = 60.0

# Tasks a thread of this process is executing. Every thread of a controller claims under the same
# owner, so once a slow stage outlived its lease another thread of the same process could claim the
# task again and pass every owner check: the stage ran twice at once (under load, bench/scale.py saw
# one server's quota short: a batch create scheduled twice). A live controller never takes over its
# own task; the lease is for other controllers taking over a dead one's.
_busy: set[tuple[str, str]] = set()  # (owner, task id)
_busy_lock = threading.Lock()


def done_with(owner: str, task_id: str) -> None:
    """The claim of ``claim_held`` ended (the task waits, finished, or this thread gave up)."""
    with _busy_lock:
        _busy.discard((owner, task_id))


def default_owner(port: int | str = "") -> str:
    return f"{socket.gethostname()}:{port}"


def claim_one(db: Any, owner: str, lease_s: float = LEASE_S) -> str | None:
    """Claim one runnable task for ``owner``; its id, or None when nothing is runnable."""
    tid = claim_held(db, owner, lease_s)
    if tid is not None:
        done_with(owner, tid)  # the caller runs it (or not) on its own: this process keeps no claim
    return tid


def claim_held(db: Any, owner: str, lease_s: float = LEASE_S) -> str | None:
    """``claim_one``, the task then counting as executing in this process until ``done_with``."""
    t = _claim(db, owner, lease_s, record=False)[0]
    return t.id if t is not None else None


def _claim(db: Any, owner: str, lease_s: float, record: bool) -> tuple[Task | None, str | None]:
    """``claim_held``; with ``record`` the claim's transaction also records the task's stage
    (``record_stage``: one transaction less per stage run): (the task as committed, stage to run or
    None when the task failed meanwhile: too many attempts)."""
    now = utcnow()
    claimable = or_(
        (Task.status == QUEUED) & (Task.run_after <= now),
        (Task.status == RUNNING) & (Task.lease_expires_at < now),
    )
    tid: str | None = None
    try:
        with db.session() as s:
            begin_write(s, background=True)
            with _busy_lock:
                busy = sorted(t for o, t in _busy if o == owner)
            stmt = select(Task).where(claimable)
            if busy:
                stmt = stmt.where(Task.id.not_in(busy))
            stmt = stmt.order_by(Task.run_after).limit(1)
            if db.dialect in ("postgresql", "mysql", "mariadb"):
                stmt = stmt.with_for_update(skip_locked=True)
            # the row is ours now: locked (PostgreSQL, MariaDB) or under SQLite's one writer
            found = s.scalar(stmt)
            if found is None:
                return None, None
            with _busy_lock:
                if (owner, found.id) in _busy:  # another thread claimed it since the look at _busy
                    return None, None
                _busy.add((owner, found.id))
                tid = str(found.id)
            if record:
                stage = take(s, found, owner, lease_s)
            else:
                stage = None
                found.status, found.owner = RUNNING, owner
                found.lease_expires_at = now + timedelta(seconds=lease_s)
        return found, stage
    except BaseException:
        if tid is not None:
            done_with(owner, tid)
        raise


def renew(db: Any, model: type[Task] | type[WorkItem], ids: list[str], owner: str, status: str,
          lease_s: float) -> None:
    """Push the leases of the rows ``owner`` is running (``ids``, still ``status``) ``lease_s`` ahead:
    the task workers' and the executor's renewal, every lease/3 while they run them.

    On PostgreSQL and MariaDB a row another transaction holds locked is skipped, not waited for: it
    is this controller's own stage (or report) flushing it, and while it is locked no other replica
    can claim it (their claims skip locked rows too); the next renewal gets it."""
    if not ids:
        return
    with db.session() as s:
        begin_write(s, background=True)
        mine = (model.id.in_(ids)) & (model.owner == owner) & (model.status == status)
        if db.dialect in ("postgresql", "mysql", "mariadb"):
            ids = list(s.scalars(select(model.id).where(mine).order_by(model.id)
                                 .with_for_update(skip_locked=True)))
            if not ids:
                return
            mine = mine & model.id.in_(ids)
        s.execute(update(model).where(mine).values(lease_expires_at=utcnow() + timedelta(seconds=lease_s)))


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
        # a stage may run longer than its lease (a call-out to a slow cloud): while it runs, its
        # lease is kept alive, so another replica takes a task over only when its controller died
        self._loops.every("task-lease", max(0.2, self.lease_s / 3), self.renew_leases,
                          "renewing task leases failed")

    def stop(self, timeout: float = 10.0) -> None:
        self._loops.stop(timeout)

    def run_pending(self, limit: int = 1000) -> int:
        """Run runnable tasks in the calling thread until none is left (tests, tools)."""
        n = 0
        while n < limit and self._step():
            n += 1
        return n

    def _step(self) -> bool:
        task, stage = _claim(self.db, self.owner, self.lease_s, record=True)
        if task is None:
            return False
        while task is not None:
            then = None
            try:
                if stage is not None:  # else the claim failed it (too many attempts): nothing to run
                    then = execute(self.db, task.id, self.owner, self.lease_s, recorded=stage, task=task)
                    if then is not None:  # a task its outcome claimed for this worker: run it next
                        with _busy_lock:
                            _busy.add((self.owner, then[0].id))
            finally:
                done_with(self.owner, task.id)
            task, stage = then if then is not None else (None, None)
        return True

    def renew_leases(self) -> None:
        """Renew the leases of the tasks this controller is executing (a dead one stops renewing)."""
        with _busy_lock:
            ids = sorted(t for o, t in _busy if o == self.owner)
        renew(self.db, Task, ids, self.owner, RUNNING, self.lease_s)
