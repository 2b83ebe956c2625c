"""A wake-up signal for idle worker threads that loses no wake-up.

A shared ``threading.Event`` that every waiter clears loses signals: a worker that found nothing
and is about to wait misses a ``set()`` another waiter has already cleared, and sleeps a whole
idle poll with work queued. Here each waiter remembers the generation it saw before it looked for
work and waits only while the generation is unchanged, so a signal given after it looked always
wakes it.
"""
from __future__ import annotations

import threading


class Wakeup:
    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._gen = 0

    def generation(self) -> int:
        """Read before looking for work; pass to ``wait`` if none was found."""
        return self._gen

    def set(self, n: int | None = None) -> None:
        """Wake every waiter, or ``n`` of them (``n`` pieces of work queued: the other idle threads
        would each run a claim that finds nothing). A thread that was busy meanwhile still sees the
        new generation when it next waits, and looks at once."""
        with self._cond:
            self._gen += 1
            if n is None:
                self._cond.notify_all()
            else:
                self._cond.notify(n)

    def wait(self, seen: int, timeout: float) -> bool:
        """Wait until a ``set()`` after generation ``seen`` (True) or ``timeout`` seconds (False)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._gen != seen, timeout)
