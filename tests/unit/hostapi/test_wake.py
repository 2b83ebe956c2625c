"""Long-poll wake-ups (core/host_wake.py): only the host concerned, rules throttled, no lost wake-up."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import insert, select

from core import host_wake as wake
from core.db.engine import Database
from core.tasks.engine import submit
from core.tasks.models import WorkItem

WAIT_S = 60.0  # generous: the machine may be loaded; every wait ends as soon as the event is set


async def _set_within(w: wake.Waiter, timeout: float = WAIT_S) -> bool:
    try:
        await asyncio.wait_for(w.event.wait(), timeout)
        return True
    except TimeoutError:
        return False


@contextmanager
def _waiters(hub: wake.Hub, db: Database, *hosts: str) -> Iterator[list[wake.Waiter]]:
    """One long poll's waiter per host, dropped from the hub however the test ends."""
    ws = [hub.add(h, db) for h in hosts]
    try:
        yield ws
    finally:
        for w in ws:
            hub.drop(w)


def _task(db: Database) -> str:
    with db.session() as s:
        t = submit(s, "noop", "server", "srv-wake", "srv-wake")
        s.commit()
        return t.id


def test_a_commit_wakes_only_its_hosts_polls(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    hub = wake.Hub()
    monkeypatch.setattr(wake, "HUB", hub)

    async def main() -> None:
        with _waiters(hub, db, "host-wake-a", "host-wake-b") as (a, b):
            with db.session() as s:
                s.execute(select(WorkItem.id).limit(1))  # a transaction is open
                wake.wake_on_commit(s, ["host-wake-a"])
                s.rollback()  # a rolled-back change wakes nobody
            await asyncio.sleep(0.05)
            assert not a.event.is_set()
            with db.session() as s:
                wake.wake_on_commit(s, ["host-wake-a"])
                s.commit()
            assert await _set_within(a)
            await asyncio.sleep(0.05)
            assert not b.event.is_set()

    asyncio.run(main())


def test_a_queued_item_wakes_its_host_on_commit(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    hub = wake.Hub()
    monkeypatch.setattr(wake, "HUB", hub)
    task_id = _task(db)

    async def main() -> None:
        with _waiters(hub, db, "host-item-a", "host-item-b") as (a, b):
            def queue() -> None:  # in a thread, as a task worker does
                with db.session() as s:
                    s.add(WorkItem(task_id=task_id, stage="on_x", host_id="host-item-a", kind="guest-start"))
                    s.flush()
                    assert not a.event.is_set()  # not before the commit
                    s.commit()

            await asyncio.to_thread(queue)
            assert await _set_within(a)
            assert not b.event.is_set()

    asyncio.run(main())


def test_the_sweep_finds_what_another_replica_queued(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    hub = wake.Hub()
    monkeypatch.setattr(wake, "POLL_S", 0.05)
    task_id = _task(db)

    async def main() -> None:
        with _waiters(hub, db, "host-sweep-a", "host-sweep-b") as (a, b):
            with db.engine.begin() as c:  # a Core insert: no Session hook runs, as on another replica
                c.execute(insert(WorkItem).values(id="wi-sweep-1", task_id=task_id, stage="on_x",
                                                  host_id="host-sweep-a", kind="guest-start", payload={},
                                                  status="queued", owner="", result={}))
            assert await _set_within(a)
            assert not b.event.is_set()

    asyncio.run(main())


def test_rules_wakes_are_held_after_an_answer_with_rules(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    hub = wake.Hub()
    monkeypatch.setattr(wake, "RULES_MIN_S", 0.5)
    monkeypatch.setattr(wake, "RULES", wake._RulesDue())

    async def main() -> None:
        with _waiters(hub, db, "host-rules-a") as (w,):
            w.version = 3
            hub.wake(["host-rules-a"], rules=True)  # nothing sent yet: at once
            assert await _set_within(w)
            w.clear()
            wake.RULES.sent("host-rules-a")
            t0 = time.monotonic()
            for _ in range(5):  # a burst of changes: one wake-up, once the hold is over
                hub.wake(["host-rules-a"], rules=True)
            await asyncio.sleep(0.1)
            assert not w.event.is_set()
            assert await _set_within(w)
            assert time.monotonic() - t0 >= 0.45
            w.clear()
            monkeypatch.setattr(wake, "RULES_MIN_S", 600.0)
            wake.RULES.sent("host-rules-a")
            hub.wake(["host-rules-a"], rules=True)
            await asyncio.sleep(0.05)
            assert not w.event.is_set()
            hub.wake(["host-rules-a"])  # work is never held
            assert await _set_within(w)
            w.version = None  # a poll that does not follow rules is not woken for them
            w.clear()
            hub.wake(["host-rules-a"], rules=True)
            await asyncio.sleep(0.05)
            assert not w.event.is_set()

    asyncio.run(main())


def test_a_wake_between_the_look_and_the_wait_is_kept(db: Database) -> None:
    hub = wake.Hub()

    async def main() -> Any:
        with _waiters(hub, db, "host-race-a") as (w,):
            w.clear()  # the poll looks (finds nothing) ...
            await asyncio.to_thread(hub.wake, ["host-race-a"])  # ... a commit lands meanwhile ...
            assert await _set_within(w)  # ... and the wait returns at once

    asyncio.run(main())


def test_the_rules_hold_grows_with_the_hosts_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    """A burst of rules changes costs a process at most ~RULES_PER_S rules answers a second: with 70
    hosts waiting every answer used to hold only 2 s, so each host's poll came back every 2 s."""
    monkeypatch.setattr(wake, "RULES", wake._RulesDue())
    t0 = time.monotonic()
    wake.RULES.sent("host-hold-few", hosts_waiting=3)
    wake.RULES.sent("host-hold-many", hosts_waiting=70)
    few, many = wake.RULES.due("host-hold-few") - t0, wake.RULES.due("host-hold-many") - t0
    assert wake.RULES_MIN_S <= few < wake.RULES_MIN_S + 1  # a few hosts: the floor
    assert many >= 70 / wake.RULES_PER_S > wake.RULES_MIN_S


def test_the_rules_hold_has_a_ceiling(monkeypatch: pytest.MonkeyPatch) -> None:
    """A rules change may be a revocation: how late a host enforces it does not grow with the fleet."""
    monkeypatch.setattr(wake, "RULES", wake._RulesDue())
    t0 = time.monotonic()
    wake.RULES.sent("host-hold-fleet", hosts_waiting=5000)  # 500 s at RULES_PER_S without the ceiling
    assert wake.RULES.due("host-hold-fleet") - t0 <= wake.RULES_MAX_S + 1


def test_the_hub_counts_the_hosts_waiting(db: Database) -> None:
    hub = wake.Hub()

    async def main() -> None:
        assert hub.hosts_waiting() == 0
        with _waiters(hub, db, "host-count-a", "host-count-a", "host-count-b"):
            assert hub.hosts_waiting() == 2  # two polls of one host count once
        assert hub.hosts_waiting() == 0

    asyncio.run(main())
