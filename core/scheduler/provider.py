"""Where the API gets its snapshot: the region registers a provider, until then it is empty.

An empty snapshot makes every answer "there are no hosts to schedule on", which is the truth
for a controller whose region has not registered yet.
"""
from __future__ import annotations

import threading
from collections.abc import Callable

from core.scheduler.snapshot import Snapshot

SnapshotProvider = Callable[[], Snapshot]

_lock = threading.Lock()
_provider: SnapshotProvider | None = None
_empty = Snapshot()


def set_snapshot_provider(fn: SnapshotProvider | None) -> None:
    """Register (or with ``None`` remove) the callable returning the warm snapshot."""
    global _provider
    with _lock:
        _provider = fn


def get_snapshot() -> Snapshot:
    with _lock:
        fn = _provider
    return fn() if fn is not None else _empty
