"""Wait on a condition, never on a sleep: the one ``wait_for`` of the tests (PEERS.md: generous bounds; the
default 60 s: a task queued behind other tests' on a loaded CI box (load 30 on 2 cores) took over 30 s)."""
from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_for(fn: Callable[[], Any], timeout: float = 60.0, what: str | Callable[[], Any] = "", every: float = 0.1,
             tolerate: tuple[type[BaseException], ...] = ()) -> Any:
    """``fn()`` until it returns something truthy, which is returned. After ``timeout`` seconds an
    AssertionError names ``what`` (a text, or a function called then for details) and the last value.
    Exceptions of the ``tolerate`` types count as "not yet" (e.g. a replica being killed under us)."""
    end = time.monotonic() + timeout
    last: Any = None
    while True:
        try:
            last = fn()
        except tolerate as e:
            last = None
            err: BaseException | None = e
        else:
            err = None
        if last:
            return last
        if time.monotonic() >= end:
            break
        time.sleep(every)
    desc = what() if callable(what) else (what or getattr(fn, "__name__", repr(fn)))
    raise AssertionError(f"timed out after {timeout:g} s waiting for {desc}; last value {last!r}"
                         + (f" (last error {err!r})" if err is not None else ""))
