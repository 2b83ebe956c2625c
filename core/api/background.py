"""Starting a service's background threads once the server listens (``core.api.app.BACKGROUND``).

A service's ``start(app)`` sets up what requests read at once, then hands the thread kinds that
work on their own (task workers, the executor, cloud syncs, periodic jobs) to ``when_listening``:
they are started in order by a thread of their own once the server listens (``app.state.listening``,
set by ``ocadm serve``; at once without one), so the controller answers before they start. Work queued
meanwhile waits in the database, as it does for a busy worker. A failed start is told to the server
(``app.state.background_failed``), which stops: a controller without task workers would accept work
it never does.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

Step = Callable[[], Callable[[], None]]  # starts one kind of background thread, returns its stop


def when_listening(app: Any, steps: Callable[[], Sequence[Step]], *, thread: str, what: str, log: logging.Logger
                   ) -> Callable[[], None]:
    """Run the steps ``steps()`` lists in order, in the thread ``thread``, once the server listens
    (``steps`` itself is called there too: what it imports is not paid before the server answers);
    returns the stop of what they started (in reverse order; a stop before the server listens starts
    none of them)."""
    stops: list[Callable[[], None]] = []  # of what the starter started, in start order
    stopping = threading.Event()
    listening = getattr(app.state, "listening", None)  # set by the server once it listens (ocadm serve)

    def run() -> None:
        while listening is not None and not listening.wait(0.05):
            if stopping.is_set():
                return
        try:
            for step in steps():
                if stopping.is_set():
                    return
                stops.append(step())
        except Exception as exc:
            log.exception("starting %s failed", what)
            failed = getattr(app.state, "background_failed", None)
            if callable(failed):
                failed(exc)

    starter = threading.Thread(target=run, name=thread, daemon=True)
    starter.start()

    def stop() -> None:
        stopping.set()
        starter.join()
        for stop_one in reversed(stops):
            stop_one()

    return stop
