"""Ports for the servers tests start: picked here, bound later by another process.

A port the kernel hands out (``bind(("127.0.0.1", 0))``) comes from its ephemeral range, where every
outgoing connection and every other process's ``bind(0)`` also take theirs: between the pick and the
server's own bind (seconds: ``ocadm init``, then the controller's start) someone else could take it and
the server fails with "address already in use" (CI runs two e2e passes side by side). These come from
below that range instead, where nothing is handed out automatically, walked from a random start per
process (two processes rarely walk the same ports at the same time) and checked free when picked.
"""
from __future__ import annotations

import itertools
import random
import socket
import threading

_LOW, _HIGH = 20000, 32000  # below Linux's default ip_local_port_range (32768-60999)
_walk = itertools.count(random.SystemRandom().randrange(_HIGH - _LOW))
_lock = threading.Lock()
_given: set[int] = set()  # handed out by this process: never twice


def _bindable(port: int, kind: int) -> bool:
    with socket.socket(socket.AF_INET, kind) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    """A port on 127.0.0.1 nobody holds now and nothing hands out by itself (TCP, or ``kind``)."""
    with _lock:
        for _ in range(_HIGH - _LOW):
            port = _LOW + next(_walk) % (_HIGH - _LOW)
            if port not in _given and _bindable(port, kind):
                _given.add(port)
                return port
    raise RuntimeError(f"no free port left in {_LOW}-{_HIGH}")
