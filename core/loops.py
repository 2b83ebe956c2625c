"""The background threads of a controller's pools (task workers, the executor, cloud syncs), of a host
agent and of the PXE boot network: one way to run a loop until stopped.

``Loops`` owns a pool's daemon threads and their one stop event. A thread runs either

- ``work``: a step that claims and runs one piece of work (True) or finds none (False); it runs again
  at once after work, else waits for the pool's ``Wakeup`` (a commit that queued work) or its idle
  poll, whichever comes first. The idle poll is the pool's, not each thread's: a thread whose poll
  comes while another thread of the pool found nothing since the last wake-up, less than ``idle_s``
  ago, waits on (N idle threads ran N claims that found nothing per idle poll); or
- ``every``: a job every ``interval_s`` (a lease renewal, a heartbeat); or
- ``loop``: a body that paces itself (a long poll, a queue, a socket, a backoff of its own) and
  returns once ``stopping`` is set.

For ``work`` and ``every`` an exception is logged with what failed and the loop goes on (after
``backoff_s`` for a work step, at its next interval for a job): a thread of the pool never dies of one
bad run. A ``loop`` body handles its own failures.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from core.wakeup import Wakeup


class Loops:
    def __init__(self, log: logging.Logger, wakeup: Wakeup | None = None) -> None:
        self.log = log
        self.wakeup = wakeup
        self.stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        # per work step: (wake-up generation, monotonic time) of the pool's last look that found nothing
        self._found_none: dict[Callable[[], bool], tuple[int, float]] = {}
        self._lock = threading.Lock()

    def _spawn(self, name: str, target: Callable[[], None]) -> None:
        th = threading.Thread(target=target, name=name, daemon=True)
        th.start()
        self._threads.append(th)

    def work(self, name: str, step: Callable[[], bool], idle_s: float, what: str, backoff_s: float = 1.0) -> None:
        """A thread running ``step`` while it finds work; idle, it waits for the wake-up or ``idle_s``."""
        wakeup = self.wakeup
        if wakeup is None:
            raise ValueError("a work loop needs the pool's Wakeup")

        def loop() -> None:
            while not self.stopping.is_set():
                seen = wakeup.generation()
                with self._lock:
                    gen, at = self._found_none.get(step, (-1, 0.0))
                ago = time.monotonic() - at
                if gen == seen and ago < idle_s:  # another thread looked since the last wake-up
                    wakeup.wait(seen, idle_s)  # a whole period: the looks of the pool stay staggered
                    continue
                try:
                    if step():
                        continue
                except Exception:
                    self.log.exception(what)
                    self.stopping.wait(backoff_s)
                    continue
                with self._lock:
                    self._found_none[step] = (seen, time.monotonic())
                wakeup.wait(seen, idle_s)

        self._spawn(name, loop)

    def every(self, name: str, interval_s: float, job: Callable[[], object], what: str, *,
              wait_first: bool = True) -> None:
        """A thread running ``job`` every ``interval_s`` (the first run at once unless ``wait_first``)."""
        def run() -> None:
            try:
                job()
            except Exception:
                self.log.exception(what)

        def loop() -> None:
            if not wait_first and not self.stopping.is_set():
                run()
            while not self.stopping.wait(interval_s):
                run()

        self._spawn(name, loop)

    def loop(self, name: str, body: Callable[[], None]) -> None:
        """A thread running ``body``, which loops until ``stopping`` is set and paces itself."""
        self._spawn(name, body)

    @property
    def threads(self) -> tuple[threading.Thread, ...]:
        """The threads started (also after ``stop``: one given up on may still be running)."""
        return tuple(self._threads)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop every thread: idle ones wake at once; each is given ``timeout`` to finish its run."""
        self.stopping.set()
        if self.wakeup is not None:
            self.wakeup.set()
        for th in self._threads:
            th.join(timeout)
