"""`ocadm serve` caps glibc's malloc arenas where it starts (issue 22: ~1 MB of RSS idle and after load)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.controller import REPO

# Eight threads allocate at the same time (a barrier holds them until all have allocated), then glibc
# prints one "Arena N:" block per arena to stderr.
PROBE = """
import ctypes, sys, threading
if sys.argv[1] == "tuned":
    from ocadm.commands.serve import tune_malloc
    tune_malloc()
barrier = threading.Barrier(8)
def work():
    held = [bytearray(2000) for _ in range(500)]
    barrier.wait()
ts = [threading.Thread(target=work) for _ in range(8)]
[t.start() for t in ts]
[t.join() for t in ts]
ctypes.CDLL(None).malloc_stats()
"""


def _arenas(mode: str, env: dict[str, str]) -> int:
    r = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, cwd=REPO,
                       env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", **env}, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stderr.count("Arena ")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_serve_caps_malloc_arenas() -> None:
    from ocadm.commands.serve import MALLOC_ARENAS

    if _arenas("plain", {}) <= MALLOC_ARENAS:
        pytest.skip("this C library gave concurrent threads no arenas of their own")
    assert _arenas("tuned", {}) <= MALLOC_ARENAS


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_an_operators_malloc_arena_max_wins() -> None:
    from ocadm.commands.serve import MALLOC_ARENAS

    if _arenas("plain", {}) <= 4:
        pytest.skip("this C library gave concurrent threads few arenas of their own")
    assert MALLOC_ARENAS < _arenas("tuned", {"MALLOC_ARENA_MAX": "4"}) <= 4
