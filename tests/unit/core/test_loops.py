"""The one background loop of the controller's pools (core/loops.py): a work loop runs its step
again at once after work, idles until woken, survives a failing step; a job runs every interval and
survives a failing run; stop ends both and wakes idle threads at once."""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import pytest

from core.loops import Loops
from core.wakeup import Wakeup

DEADLINE_S = 60.0  # generous: the CI box is loaded


def _until(cond: Callable[[], bool]) -> None:
    end = time.monotonic() + DEADLINE_S
    while not cond():
        assert time.monotonic() < end, "condition not met within the deadline"
        time.sleep(0.01)


def test_a_work_loop_runs_while_there_is_work_idles_until_woken_and_survives_a_failure(
        caplog: pytest.LogCaptureFixture) -> None:
    wake = Wakeup()
    loops = Loops(logging.getLogger("test.loops"), wake)
    queue = [1, 2, 3]
    done: list[int] = []
    calls = {"n": 0, "boom": True}

    def step() -> bool:
        calls["n"] += 1
        if calls["boom"]:
            calls["boom"] = False
            raise RuntimeError("one bad run")
        if not queue:
            return False
        done.append(queue.pop(0))
        return True

    loops.work("test-work", step, idle_s=3600.0, what="test step failed", backoff_s=0.01)
    try:
        _until(lambda: done == [1, 2, 3])  # after the failure, each item at once (no idle wait between)
        assert "test step failed" in caplog.text and "one bad run" in caplog.text
        _until(lambda: calls["n"] >= 5)  # it looked once more, found nothing: now idle for an hour
        queue.append(4)
        wake.set()  # a commit that queued work wakes it at once
        _until(lambda: done == [1, 2, 3, 4])
    finally:
        t0 = time.monotonic()
        loops.stop(timeout=DEADLINE_S)
    assert time.monotonic() - t0 < DEADLINE_S / 2  # the idle thread woke for the stop, not after an hour
    assert not [t for t in threading.enumerate() if t.name == "test-work"]


def test_a_job_runs_every_interval_first_at_once_unless_it_waits_and_survives_a_failure(
        caplog: pytest.LogCaptureFixture) -> None:
    loops = Loops(logging.getLogger("test.loops"))
    now: list[float] = []
    later: list[float] = []

    def failing_job() -> None:
        now.append(time.monotonic())
        if len(now) == 1:
            raise RuntimeError("first run fails")

    started = time.monotonic()
    loops.every("test-now", 0.05, failing_job, "test job failed", wait_first=False)
    loops.every("test-later", 3600.0, lambda: later.append(time.monotonic()), "never")
    try:
        _until(lambda: len(now) >= 3)  # ran again after the failure
        assert "test job failed" in caplog.text and "first run fails" in caplog.text
        assert now[0] - started < DEADLINE_S / 2
    finally:
        loops.stop(timeout=DEADLINE_S)
    assert later == []  # its first run waits its interval; the stop ended that wait
    n = len(now)
    time.sleep(0.2)
    assert len(now) == n  # stopped: no more runs


def test_a_work_loop_needs_a_wakeup() -> None:
    with pytest.raises(ValueError, match="Wakeup"):
        Loops(logging.getLogger("test.loops")).work("x", lambda: False, 1.0, "x")


def test_a_self_paced_loop_runs_until_stopped_and_its_thread_stays_listed() -> None:
    loops = Loops(logging.getLogger("test.loops"))
    turns: list[int] = []

    def body() -> None:
        while not loops.stopping.wait(0.01):
            turns.append(1)

    loops.loop("test-paced", body)
    try:
        _until(lambda: len(turns) >= 3)
    finally:
        loops.stop(timeout=DEADLINE_S)
    (th,) = loops.threads
    assert th.name == "test-paced" and not th.is_alive()


def test_idle_threads_of_a_pool_share_one_idle_poll() -> None:
    """N idle threads look for work about once per idle period between them, not N times: a thread
    whose poll comes while another found nothing since the last wake-up, less than a period ago,
    waits on. A wake-up still sends them looking at once."""
    wake = Wakeup()
    loops = Loops(logging.getLogger("test.loops"), wake)
    looks: list[float] = []
    lock = threading.Lock()

    def step() -> bool:
        with lock:
            looks.append(time.monotonic())
        return False

    idle_s, window_s = 0.2, 3.0
    for i in range(4):
        loops.work(f"test-idle-{i}", step, idle_s=idle_s, what="test step failed")
    try:
        _until(lambda: len(looks) >= 1)
        time.sleep(window_s)
        with lock:
            n = len(looks)
        # four threads each polling would look ~4 x 15 times; one poll per period between them ~15
        # (two threads may look at once at a period's edge: at most twice that)
        assert n <= 2 * (window_s / idle_s + 4), n
        before = n
        wake.set()
        _until(lambda: len(looks) > before)  # woken: someone looks at once
    finally:
        loops.stop(timeout=DEADLINE_S)
