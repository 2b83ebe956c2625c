"""SQLite's writer gate (core.db.engine._WriterGate): a release wakes one thread that can proceed."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import text

from core.db import engine as engine_mod
from core.db.engine import Database, begin_write

DEADLINE_S = 120.0


class _CountingCondition(threading.Condition):
    """Counts waiting threads and the returns from wait (every wake-up, notified or timed out)."""

    stats: dict[str, int]

    def wait(self, timeout: float | None = None) -> bool:
        self.stats["waiting"] += 1
        try:
            return super().wait(timeout)
        finally:
            self.stats["waiting"] -= 1
            self.stats["wakes"] += 1


def _counting_gate(monkeypatch: pytest.MonkeyPatch) -> tuple[Any, dict[str, int]]:
    stats = {"waiting": 0, "wakes": 0}

    class Cond(_CountingCondition):
        pass

    Cond.stats = stats
    with monkeypatch.context() as m:
        m.setattr(threading, "Condition", Cond)
        gate = engine_mod._WriterGate()
    return gate, stats


def _poll(cond: Callable[[], bool], what: str) -> None:
    end = time.monotonic() + DEADLINE_S
    while not cond():
        assert time.monotonic() < end, what
        time.sleep(0.005)


def _join(threads: list[threading.Thread]) -> None:
    end = time.monotonic() + DEADLINE_S
    for t in threads:
        t.join(max(0.0, end - time.monotonic()))
    assert not any(t.is_alive() for t in threads), "a writer hangs on the gate"


@pytest.mark.parametrize("background", [False, True])
def test_a_release_wakes_one_waiter(monkeypatch: pytest.MonkeyPatch, background: bool) -> None:
    gate, stats = _counting_gate(monkeypatch)
    n = 8
    gate.acquire(False)
    holders: queue.Queue[int] = queue.Queue()
    go = [threading.Event() for _ in range(n)]

    def writer(i: int) -> None:
        gate.acquire(background)
        holders.put(i)
        go[i].wait(DEADLINE_S)
        gate.release()

    threads = [threading.Thread(target=writer, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    _poll(lambda: stats["waiting"] == n, "the writers wait")
    gate.release()
    for left in range(n - 1, -1, -1):
        holder = holders.get(timeout=DEADLINE_S)
        _poll(lambda: stats["waiting"] == left, "the others wait again")  # noqa: B023
        go[holder].set()
    _join(threads)
    # one wake-up per release (notify_all: n + (n-1) + … + 1 = 36); a background waiter may also
    # wake once at the end of its yield
    assert stats["wakes"] <= (2 * n if background else n), stats


def test_a_background_writer_gets_the_gate_during_a_foreground_burst(db: Database) -> None:
    stop = threading.Event()
    got = threading.Event()

    def foreground() -> None:
        while not stop.is_set():
            with db.session() as s:
                begin_write(s)
                s.execute(text("UPDATE db_leases SET name = name WHERE 0 = 1"))

    def background() -> None:
        with db.session() as s:
            begin_write(s, background=True)
            got.set()

    burst = [threading.Thread(target=foreground, daemon=True) for _ in range(4)]
    for t in burst:
        t.start()
    try:
        time.sleep(0)  # let the burst start
        bg = threading.Thread(target=background, daemon=True)
        bg.start()
        assert got.wait(DEADLINE_S), "the background writer never got the gate during the burst"
    finally:
        stop.set()
        _join(burst + [bg])


def test_many_mixed_writers_all_finish(db: Database) -> None:
    with db.session() as s:
        s.execute(text("CREATE TABLE gate_counter (n INTEGER NOT NULL)"))
        s.execute(text("INSERT INTO gate_counter VALUES (0)"))
    per, n = 25, 12

    def writer(i: int) -> None:
        for k in range(per):
            with db.session() as s:
                begin_write(s, background=(i + k) % 3 != 0)
                v = s.execute(text("SELECT n FROM gate_counter")).scalar_one()
                if k % 5 == 0:  # the owning thread re-enters
                    gate = s.info["_sqlite_writer"]
                    gate.acquire(False)
                    gate.release()
                s.execute(text("UPDATE gate_counter SET n = :v"), {"v": v + 1})

    threads = [threading.Thread(target=writer, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    _join(threads)
    with db.session() as s:
        assert s.execute(text("SELECT n FROM gate_counter")).scalar_one() == per * n
