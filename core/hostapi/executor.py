"""The in-controller executor: the target of hosts whose driver's API is remote (vCenter, clouds).

A host's ``target`` says who runs its work items: ``agent`` (the host's agent pulls them over
HTTP, core/hostapi/routes/) or ``executor`` (this module, inside every controller replica).
The drivers of executor hosts, their encrypted configs and this process's runtime are
core/region/hosted.py's.

Every replica runs an ``Executor``: threads that claim queued items of executor hosts under a
lease (``work_items.owner`` + ``lease_expires_at``, renewed while the item runs; the claim is one
conditional UPDATE checked by its row count, with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL and
MariaDB, as core/tasks/worker.py claims tasks), build the host's driver by name with a ``HostEnv``
under ``<data_dir>/executors/<host id>``, run the agent's own handler table
(core/agent/handlers.py) and report through the task engine's ``report()``, so result parsing,
malformed-result failures and the server-status translation stay in one place. An item whose
lease expired (its replica died mid-item) is claimed again by another replica; only the
replica holding the item may report it, so a task completes once.

A separate pool from the task workers, on purpose: a remote API call may take minutes (a clone in
vCenter) and must not starve task stages; the claim/lease discipline is the workers' own.

The executor also keeps its hosts online while their driver validates (a heartbeat under a DB
lease, so one replica does it per interval); a host whose driver stops validating goes offline
with the reason in ``sys_info.executor_error``.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from datetime import timedelta
from typing import Any

from sqlalchemy import event, or_, select, update
from sqlalchemy.orm import Session

from core.db.base import utcnow
from core.errors import CloudpodsError
from core.host_protocol import ContractError, error_result
from core.loops import Loops
from core.region.hosted import TARGET_EXECUTOR, Runtime
from core.tasks.payload_secrets import open_payload
from core.wakeup import Wakeup
from drivers.base import DriverError, GuestNotFound

log = logging.getLogger("cloudpods.executor")

LEASE_S = 60.0
HEARTBEAT_S = 30.0
IDLE_POLL_S = 1.0
# test hook (tests/e2e/test_executor.py): while this file exists a claimed item waits before its
# driver call (lease renewed), so a test can kill the replica that holds it mid-item
HOLD_ENV = "CLOUDPODS_TEST_EXECUTOR_HOLD"

# set after a commit that queued a work item in this process: idle executor threads wake at once
WAKEUP = Wakeup()


@event.listens_for(Session, "after_flush")
def _saw_work_item(session: Session, _ctx: Any) -> None:
    """A new item of an executor host wakes the executor; one of an agent's host does not (each deploy
    for an agent woke both executor threads for a claim that found nothing: ~5 % of a controller's
    CPU in 200 creates on 70 hosts)."""
    from core.region.models import Host
    from core.tasks.models import WorkItem

    hosts = {o.host_id for o in session.new if isinstance(o, WorkItem)}
    if hosts and not session.info.get("executor_work") and session.connection().scalar(
            select(Host.id).where(Host.id.in_(hosts), Host.target == TARGET_EXECUTOR).limit(1)) is not None:
        session.info["executor_work"] = True


@event.listens_for(Session, "after_commit")
def _work_committed(session: Session) -> None:
    if session.info.pop("executor_work", False):
        WAKEUP.set()


@event.listens_for(Session, "after_rollback")
def _work_rolled_back(session: Session) -> None:
    session.info.pop("executor_work", None)


# ---- claiming and running items ---------------------------------------------------------------------
def _claimable(now: Any) -> Any:
    from core.tasks.models import WorkItem

    return or_(WorkItem.status == "queued",
               (WorkItem.status == "dispatched") & (WorkItem.lease_expires_at < now))


def claim(db: Any, owner: str, lease_s: float = LEASE_S) -> dict[str, Any] | None:
    """Claim one item of an executor host for ``owner``: the item and its host's driver, or None."""
    from core.db.engine import begin_write
    from core.region.models import Host
    from core.tasks.models import WorkItem

    now = utcnow()
    with db.session() as s:
        begin_write(s, background=True)
        executor_hosts = select(Host.id).where(Host.target == TARGET_EXECUTOR)
        stmt = (select(WorkItem.id).where(WorkItem.host_id.in_(executor_hosts), _claimable(now))
                .order_by(WorkItem.created_at).limit(1))
        if db.dialect in ("postgresql", "mysql", "mariadb"):
            stmt = stmt.with_for_update(skip_locked=True)
        wid = s.scalar(stmt)
        if wid is None:
            return None
        res = s.execute(update(WorkItem).where(WorkItem.id == wid, _claimable(now)).values(
            status="dispatched", owner=owner, dispatched_at=now, lease_expires_at=now + timedelta(seconds=lease_s)))
        if res.rowcount != 1:  # type: ignore[attr-defined]
            return None
        wi = s.get(WorkItem, wid)
        host = s.get(Host, wi.host_id) if wi is not None else None
        if wi is None or host is None:
            return None
        out = {"id": wi.id, "task_id": wi.task_id, "kind": wi.kind, "payload": open_payload(wi.payload),
               "host_id": host.id,
               "host_name": host.name, "driver": host.driver, "config": host.driver_config}
        s.commit()
        return out


def recover(db: Any, owner: str) -> int:
    """Items this controller held when it died go back to the queue at once (called at start)."""
    from core.db.engine import begin_write
    from core.tasks.models import WorkItem

    with db.session() as s:
        begin_write(s, background=True)
        res = s.execute(update(WorkItem).where(WorkItem.owner == owner, WorkItem.status == "dispatched")
                        .values(status="queued", owner="", lease_expires_at=None, dispatched_at=None))
        n = int(res.rowcount or 0)  # type: ignore[attr-defined]
        s.commit()
    if n:
        log.warning("requeued %d executor work item(s) left running by a previous run of %s", n, owner)
    return n


def run(rt: Runtime, item: dict[str, Any]) -> dict[str, Any]:
    """The item's result (the contract's JSON; an ErrorResult for any failure), like the agent's."""
    from core.agent.handlers import handle

    kind = str(item["kind"])
    try:
        hosted = rt.drivers.get(item["host_id"], item["driver"], item["config"])
        _hold()
        result = handle(hosted, kind, item.get("payload"))
        server = (item.get("payload") or {}).get("server")
        if isinstance(server, dict) and server.get("id"):
            try:  # what restore() re-defines after a controller restart
                hosted.persist(str(server["id"]))
            except (DriverError, OSError) as exc:
                log.warning("cannot keep the description of guest %s: %s", server["id"], exc)
        return result
    except Exception as exc:  # every failure becomes the task's reason
        if not isinstance(exc, DriverError | CloudpodsError | ContractError | GuestNotFound | ValueError | OSError):
            log.exception("work item %s (%s) failed", item["id"], kind)
        reason = getattr(exc, "details", None) or str(exc) or type(exc).__name__
        return error_result(f"{kind}: {reason}"[:2000])


def _hold() -> None:
    path = os.environ.get(HOLD_ENV)
    while path and os.path.exists(path):
        time.sleep(0.05)


def report_item(db: Any, owner: str, item: dict[str, Any], result: dict[str, Any]) -> bool:
    """Report through the engine's ``report()`` if this owner still holds the item; True if reported."""
    from core.db.engine import begin_write
    from core.tasks.engine import report
    from core.tasks.models import WorkItem

    with db.session() as s:
        begin_write(s, background=True)
        wi = s.scalar(select(WorkItem).where(WorkItem.id == item["id"], WorkItem.owner == owner,
                                             WorkItem.status == "dispatched").with_for_update())
        if wi is None:  # our lease expired and another replica took the item over
            log.warning("work item %s (%s) is no longer ours: not reporting", item["id"], item["kind"])
            return False
        try:
            with s.begin_nested():
                report(s, wi.task_id, {**result, "work_item_id": wi.id})
        except CloudpodsError as exc:  # the task moved on (e.g. it was failed meanwhile): close the item
            log.warning("report of task %s refused: %s", wi.task_id, exc)
            wi.status, wi.result = "failed", error_result(f"report refused: {exc}")
            wi.lease_expires_at = None
            s.commit()
            return False
        wi.lease_expires_at = None
        s.commit()
        return True


class Executor:
    """N threads claiming executor items, a lease keeper, and the hosts' heartbeat."""

    def __init__(self, rt: Runtime, owner: str, threads: int = 2, lease_s: float = LEASE_S,
                 heartbeat_s: float = HEARTBEAT_S) -> None:
        self.rt = rt
        self.owner = owner
        self.threads = threads
        self.lease_s = lease_s
        self.heartbeat_s = heartbeat_s
        self._loops = Loops(log, WAKEUP)
        self._inflight: set[str] = set()
        self._lock = threading.Lock()
        self.handled = 0

    def start(self) -> None:
        from core.region.cloud.secgroups import Pusher

        recover(self.rt.db, self.owner)
        for i in range(self.threads):
            self._loops.work(f"executor-{i}", self.run_one, IDLE_POLL_S, "executor error")
        self._loops.every("executor-lease", max(0.2, self.lease_s / 3), self.renew_leases,
                          "renewing executor leases failed")
        self._loops.every("executor-heartbeat", self.heartbeat_s,
                          lambda: heartbeat(self.rt, self.owner, self.heartbeat_s), "executor heartbeat failed",
                          wait_first=False)
        # security groups of cloud zones' hosts, pushed when they change (core/region/cloud/secgroups.py)
        self._loops.every("executor-secgroups", 1.0, Pusher(self.rt, self.owner).run_once,
                          "pushing security groups failed")

    def stop(self, timeout: float = 10.0) -> None:
        self._loops.stop(timeout)

    def run_pending(self, limit: int = 100) -> int:
        """Run claimable items in the calling thread until none is left (tests, tools)."""
        n = 0
        while n < limit and self.run_one():
            n += 1
        return n

    def run_one(self) -> bool:
        item = claim(self.rt.db, self.owner, self.lease_s)
        if item is None:
            return False
        with self._lock:
            self._inflight.add(item["id"])
        try:
            t0 = time.monotonic()
            result = run(self.rt, item)
            ok = report_item(self.rt.db, self.owner, item, result)
            log.info("%s for task %s on executor host %s: %s in %.0f ms%s", item["kind"], item["task_id"],
                     item["host_name"], "failed" if result.get("__status__") == "error" else "done",
                     (time.monotonic() - t0) * 1000, "" if ok else " (not reported)")
            self.handled += int(ok)
        finally:
            with self._lock:
                self._inflight.discard(item["id"])
        return True

    def renew_leases(self) -> None:
        """Renew the leases of the items this replica is running (a dead replica stops renewing)."""
        from core.tasks.models import WorkItem
        from core.tasks.worker import renew

        with self._lock:
            ids = sorted(self._inflight)
        renew(self.rt.db, WorkItem, ids, self.owner, "dispatched", self.lease_s)


def heartbeat(rt: Runtime, holder: str, interval_s: float = HEARTBEAT_S) -> int | None:
    """Validate each executor host's driver: online while it validates, offline with the reason
    else. One replica per interval (a DB lease); None when another holds it."""
    from core.db.engine import begin_write
    from core.db.lease import try_acquire
    from core.region.models import Host

    with rt.db.session() as s:
        if not try_acquire(s, "executor:heartbeat", holder, interval_s * 0.9):
            return None
    listed_at = time.monotonic()
    with rt.db.session() as s:
        # a machine enrolled from its PXE boot has no BMC until baremetal-prepare: nothing to check yet
        hosts = [(h.id, h.name, h.driver, h.driver_config)
                 for h in s.scalars(select(Host).where(Host.target == TARGET_EXECUTOR, Host.status != "prepare"))]
    from core.region.host_bmc import probe_all
    from drivers.base import Probing

    rt.drivers.forget({h[0] for h in hosts}, listed_at)  # not a host created since the list was read
    probing: list[tuple[str, str, Any]] = []
    for hid, name, driver, blob in hosts:
        problem = ""
        try:
            hosted = rt.drivers.get(hid, driver, blob)
            hosted.validate()
            if isinstance(hosted, Probing):  # its device answering is what "online" means: probed below
                probing.append((hid, name, hosted))
                continue
        except Exception as exc:
            problem = getattr(exc, "details", None) or str(exc) or type(exc).__name__
            log.warning("executor host %s: its driver does not validate: %s", name, problem)
        with rt.db.session() as s:
            begin_write(s, background=True)
            h = s.get(Host, hid)
            if h is None:
                continue
            status = "offline" if problem else "online"
            if h.host_status != status:
                h.generation += 1
            h.host_status = status
            if not problem:
                h.last_ping_at = utcnow()
            info = dict(h.sys_info or {})
            if problem:
                info["executor_error"] = problem[:2000]
            else:
                info.pop("executor_error", None)
            h.sys_info = info
            s.commit()
    # all at once: one dead BMC costs its own timeout, not the others'; each outcome only for the config probed
    probe_all(rt.db, probing, configs={h[0]: h[3] for h in hosts})
    return len(hosts)
