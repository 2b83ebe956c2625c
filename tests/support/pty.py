"""Reading a pseudo-terminal until a marker shows: how the console tests drive climc in a real terminal."""
from __future__ import annotations

import os
import select
import time


def read_until(master: int, out: bytearray, marker: bytes, timeout: float = 60) -> None:
    """Append what the terminal prints to ``out`` until ``marker`` is in it; fail with the tail otherwise."""
    end = time.monotonic() + timeout
    while marker not in out and time.monotonic() < end:
        r, _, _ = select.select([master], [], [], 0.2)
        if r:
            try:
                out.extend(os.read(master, 65536))
            except OSError:  # the other side closed
                break
    assert marker in out, bytes(out[-3000:])
