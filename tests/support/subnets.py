"""Address blocks no other test of this run uses.

The e2e tests share one controller per run, and each used to pick its network's octet from its random
tag (``int(tag, 16) % 250``): with a dozen such networks, two landed on the same range every few runs
and the second network-create was refused (seen in CI). One counter per test process hands out each
octet once.
"""
from __future__ import annotations

import itertools
import threading

_RESERVED = {199}  # 10.199.0.0/24 is the `--with-agent` controllers' default network
_octets = (n for n in itertools.count(20) if n not in _RESERVED)
_lock = threading.Lock()


def unique_octet() -> int:
    """An octet (20..250) for a test's own ``10.N.x.x`` / ``100.64.N.x`` ranges, never handed out twice."""
    with _lock:
        n = next(_octets)
    if n > 250:
        raise RuntimeError("tests/support/subnets.py ran out of octets: a run made more than 230 networks")
    return n
