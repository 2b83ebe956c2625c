"""Idle workers are woken by any signal given after they looked for work (none is lost)."""
from __future__ import annotations

import threading
import time

from core.wakeup import Wakeup


def test_a_signal_after_looking_wakes_a_waiter_that_another_waiter_already_saw() -> None:
    w = Wakeup()
    seen_a = w.generation()  # worker A looked for work and found none...
    w.set()                  # ...a task is queued; worker B (waiting) wakes and takes it
    assert w.wait(w.generation() - 1, 0) is True
    started = time.monotonic()
    assert w.wait(seen_a, 5.0) is True  # A still wakes at once (an Event cleared by B would sleep)
    assert time.monotonic() - started < 1.0


def test_waits_the_timeout_without_a_signal_and_wakes_every_waiter_on_one() -> None:
    w = Wakeup()
    assert w.wait(w.generation(), 0.05) is False
    seen, woke = w.generation(), []
    threads = [threading.Thread(target=lambda: woke.append(w.wait(seen, 10.0))) for _ in range(3)]
    for t in threads:
        t.start()
    w.set()
    for t in threads:
        t.join(10)
    assert woke == [True, True, True]


def test_a_signal_for_n_pieces_of_work_wakes_n_waiters() -> None:
    w = Wakeup()
    seen, woke = w.generation(), []
    threads = [threading.Thread(target=lambda: woke.append(w.wait(seen, 60.0)), daemon=True) for _ in range(2)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 60
    while len(w._cond._waiters) < 2 and time.monotonic() < deadline:  # type: ignore[attr-defined]
        time.sleep(0.01)
    w.set(1)
    while not woke and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    assert woke == [True]  # the other waiter sleeps on (with set() it would have woken too)
    w.set(1)
    for t in threads:
        t.join(60)
    assert woke == [True, True]
    assert w.wait(seen, 0) is True  # a thread that was busy meanwhile looks at once
