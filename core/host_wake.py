"""Which agents' long polls to wake, and when (core/hostapi/routes/work.py); below the services that queue work
(region, console, tasks) and the routes that wait for it, as core/host_protocol.py is.

A waiting long poll is a ``Waiter`` of its host. Commits of this process wake only the waiters of
the hosts they concern: a queued work item or a console session wakes that host's poll (``work``),
a change of what a host enforces (``secgroup_version``) wakes it for the rules (``rules``). Changes
committed by other replicas are found by one sweep of the database every ``POLL_S`` for all the
hosts that have a poll waiting here (one query, not one per poll); the sweep also wakes a poll whose
host's ping is older than ``PING_REFRESH_S`` (or that is not online), and its look refreshes the ping.

Rules are throttled per host: after an answer that carried a host's rules, a rules wake is held
until ``RULES_MIN_S`` later, so a burst of changes (every new guest of a group that admits its own
members changes every host's peers) costs each host one recomputation per hold, not one per change.
The hold grows with the hosts waiting here (``RULES_PER_S``): a burst costs the process at most
about that many rules answers a second however many hosts it serves (200 creates on 70 hosts woke
every host's poll for its rules every 2 s, most of the controller's poll traffic). A change after a
quiet spell still goes out at once, and no hold is longer than ``RULES_MAX_S`` (a revoked rule reaches
every host within it, however many hosts). Work items are never held.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from core.db.base import utcnow
from core.tasks.models import WorkItem

log = logging.getLogger("cloudpods.hostapi.wake")

POLL_S = 0.5  # how often the database is swept for changes other replicas committed
PING_REFRESH_S = 10  # a poll re-writes its host's last_ping_at when older than this (offline after 180 s)
RULES_MIN_S = 2.0  # at least this long between two answers carrying a host's rules (per process)
RULES_PER_S = 10.0  # with more hosts waiting than RULES_MIN_S x this, the hold grows to keep this rate
# ... but never past this: a rules change is also a revocation (a rule deleted, a peer gone), and how late
# a host may enforce one must not grow with the size of the fleet (1,000 hosts would be 100 s)
RULES_MAX_S = 10.0
_WORK, _RULES = "work_hosts", "rules_hosts"  # Session.info keys: hosts to wake once the commit is done


def takeable(now: Any) -> Any:
    """Items a poll may hand out: queued ones, and those handed out earlier whose acknowledgement is
    overdue (the reply never reached the agent: its replica died after the commit)."""
    overdue = (WorkItem.status == "dispatched") & (WorkItem.owner == "") & (WorkItem.lease_expires_at < now)
    return (WorkItem.status == "queued") | overdue


class Waiter:
    """One waiting long poll. ``notify`` runs in its event loop's thread."""

    def __init__(self, host_id: str, db: Any, loop: asyncio.AbstractEventLoop) -> None:
        self.host_id, self.db, self.loop = host_id, db, loop
        self.event = asyncio.Event()
        self.version: int | None = None  # the secgroup_version its last look saw (None: rules not followed)
        self._timer: asyncio.TimerHandle | None = None

    def notify(self, rules: bool) -> None:
        if rules:
            if self.version is None:
                return
            hold = RULES.due(self.host_id) - time.monotonic()
            if hold > 0:  # throttled: look again once the rules may go out
                if self._timer is None:
                    self._timer = self.loop.call_later(hold, self.event.set)
                return
        self.event.set()

    def clear(self) -> None:
        """Before a look: what it finds needs no further wake-up."""
        self.event.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class _RulesDue:
    def __init__(self) -> None:
        self._due: dict[str, float] = {}
        self._lock = threading.Lock()

    def due(self, host_id: str) -> float:
        return self._due.get(host_id, 0.0)

    def sent(self, host_id: str, hosts_waiting: int = 1) -> None:
        """An answer carried ``host_id``'s rules; ``hosts_waiting``: the hosts with a poll waiting here."""
        with self._lock:
            now = time.monotonic()
            if len(self._due) > 10_000:  # hosts come and go: forget the long past
                self._due = {h: t for h, t in self._due.items() if t > now}
            self._due[host_id] = now + min(RULES_MAX_S, max(RULES_MIN_S, hosts_waiting / RULES_PER_S))


RULES = _RulesDue()


class Hub:
    """The waiting long polls of this process, by host."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_host: dict[str, set[Waiter]] = {}
        self._loops: dict[asyncio.AbstractEventLoop, int] = {}  # waiters per event loop
        self._sweeps: dict[asyncio.AbstractEventLoop, asyncio.Task[None]] = {}

    def add(self, host_id: str, db: Any) -> Waiter:
        """Register before the first look, so a commit between the look and the wait still wakes it."""
        loop = asyncio.get_running_loop()
        w = Waiter(host_id, db, loop)
        with self._lock:
            self._by_host.setdefault(host_id, set()).add(w)
            self._loops[loop] = self._loops.get(loop, 0) + 1
        if loop not in self._sweeps:  # the loop's own thread: no race with drop
            self._sweeps[loop] = loop.create_task(self._sweep(loop))
        return w

    def drop(self, w: Waiter) -> None:
        """Unregister (in the waiter's event loop); the loop's sweep stops with its last waiter."""
        w.clear()
        with self._lock:
            ws = self._by_host.get(w.host_id)
            if ws is not None:
                ws.discard(w)
                if not ws:
                    del self._by_host[w.host_id]
            left = self._loops[w.loop] = self._loops.get(w.loop, 1) - 1
            if left <= 0:
                del self._loops[w.loop]
        if left <= 0:
            sweep = self._sweeps.pop(w.loop, None)
            if sweep is not None:
                sweep.cancel()

    def hosts_waiting(self) -> int:
        """How many hosts have a long poll waiting in this process."""
        return len(self._by_host)

    def wake(self, host_ids: Iterable[str], rules: bool = False) -> None:
        """Wake the polls of these hosts (from any thread)."""
        with self._lock:
            ws = [w for h in host_ids for w in self._by_host.get(h, ())]
        for w in ws:
            try:
                w.loop.call_soon_threadsafe(w.notify, rules)
            except RuntimeError:  # its loop is closed (the app stopped)
                pass

    def wake_all(self) -> None:
        """Every poll looks again now (the controller is draining)."""
        with self._lock:
            hosts = list(self._by_host)
        self.wake(hosts)

    async def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        while True:
            await asyncio.sleep(POLL_S)
            with self._lock:
                mine = [w for ws in self._by_host.values() for w in ws if w.loop is loop]
            by_db: dict[int, list[Waiter]] = {}
            for w in mine:
                by_db.setdefault(id(w.db), []).append(w)
            for ws in by_db.values():
                try:
                    work, versions = await run_in_threadpool(_changes, ws[0].db, {w.host_id for w in ws})
                except Exception as exc:  # the database is away: every poll looks for itself
                    log.warning("long-poll sweep failed (%s): every waiting poll looks again", exc)
                    self.wake({w.host_id for w in ws})
                    continue
                self.wake(work)
                self.wake({w.host_id for w in ws if w.version is not None and w.host_id not in work
                           and versions.get(w.host_id, w.version) != w.version}, rules=True)


def _changes(db: Any, host_ids: set[str]) -> tuple[set[str], dict[str, int]]:
    """Of these hosts: those with items to hand out or consoles to connect, or whose ping is getting old
    or who are not online (a waiting poll is a ping: its look refreshes it); every one's secgroup_version."""
    from core.console.models import ConsoleSession
    from core.region.models import Host

    ids = sorted(host_ids)
    with db.session() as s:
        work = set(s.scalars(select(WorkItem.host_id).where(WorkItem.host_id.in_(ids), takeable(utcnow()))
                             .distinct()))
        work |= set(s.scalars(select(ConsoleSession.host_id).where(ConsoleSession.host_id.in_(ids),
                                                                   ConsoleSession.status == "connecting").distinct()))
        versions = {}
        old = utcnow() - timedelta(seconds=PING_REFRESH_S)
        for h, v, status, ping in s.execute(select(Host.id, Host.secgroup_version, Host.host_status,
                                                   Host.last_ping_at).where(Host.id.in_(ids))):
            versions[h] = int(v or 0)
            if status != "online" or ping is None or ping < old:
                work.add(h)
    return work, versions


HUB = Hub()


def wake_on_commit(session: Session, host_ids: Iterable[str | None], rules: bool = False) -> None:
    """Once ``session`` commits, wake the long polls of these hosts in this process (work to hand
    out, or with ``rules`` their secgroup_version moved). Queued work items need no call: a flush
    that adds or re-queues one says so itself."""
    session.info.setdefault(_RULES if rules else _WORK, set()).update(h for h in host_ids if h)


@event.listens_for(Session, "after_flush")
def _items_flushed(session: Session, flush_context: Any) -> None:
    hosts = {o.host_id for o in (*session.new, *session.dirty)
             if isinstance(o, WorkItem) and o.status == "queued" and o.host_id}
    if hosts:
        wake_on_commit(session, hosts)


@event.listens_for(Session, "after_commit")
def _committed(session: Session) -> None:
    work, rules = session.info.pop(_WORK, None), session.info.pop(_RULES, None)
    if work:
        HUB.wake(work)
    if rules:
        HUB.wake(rules - (work or set()), rules=True)


@event.listens_for(Session, "after_soft_rollback")
def _rolled_back(session: Session, previous_transaction: Any) -> None:
    if previous_transaction.parent is None:  # the whole transaction (not a savepoint) is undone
        session.info.pop(_WORK, None)
        session.info.pop(_RULES, None)
