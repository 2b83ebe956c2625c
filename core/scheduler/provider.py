"""Where the API gets its snapshot: the region registers a provider, until then it is empty.

An empty snapshot makes every answer "there are no hosts to schedule on", which is the truth
for a controller whose region has not registered yet.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # numpy: loaded at the first snapshot, not with the API
    from core.scheduler.snapshot import Snapshot

SnapshotProvider = Callable[[], "Snapshot"]
# (session, credential, request body) -> the body with names of hosts, networks... turned to ids
RefResolver = Callable[[Any, Any, dict[str, Any]], dict[str, Any]]

_lock = threading.Lock()
_provider: SnapshotProvider | None = None
_resolver: RefResolver | None = None


def set_snapshot_provider(fn: SnapshotProvider | None) -> None:
    """Register (or with ``None`` remove) the callable returning the warm snapshot."""
    global _provider
    with _lock:
        _provider = fn


def get_snapshot() -> Snapshot:
    with _lock:
        fn = _provider
    if fn is not None:
        return fn()
    from core.scheduler.snapshot import Snapshot

    return Snapshot()  # nothing is registered: no hosts


def set_ref_resolver(fn: RefResolver | None) -> None:
    """Register how names in a request become ids (the region knows its rows; the snapshot is
    keyed by id). Cloudpods accepts a name wherever an id is, in the scheduler too."""
    global _resolver
    _resolver = fn


def resolve_refs(session: Any, cred: Any, body: dict[str, Any]) -> dict[str, Any]:
    fn = _resolver
    return fn(session, cred, body) if fn is not None else body
