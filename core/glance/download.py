"""Streaming download with single-range support; the bytes are read in worker threads in large blocks."""
from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator
from typing import BinaryIO

from core.errors import InputParameterError

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class RangeNotSatisfiableError(InputParameterError):
    code, error_class, title = 416, "RangeNotSatisfiableError", "Range Not Satisfiable"


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``bytes=a-b`` / ``bytes=a-`` / ``bytes=-n`` → inclusive (start, end); None = whole file."""
    if not header:
        return None
    m = _RANGE.match(header.strip().replace(" ", ""))
    if not m or (m.group(1) == "" and m.group(2) == ""):
        raise RangeNotSatisfiableError(f"Range {header!r}: only one 'bytes=START-END' range is supported",
                                       size=size)
    a, b = m.group(1), m.group(2)
    if a == "":
        n = int(b)
        if n == 0:
            raise RangeNotSatisfiableError("Range: a suffix length of 0 selects nothing", size=size)
        start, end = max(0, size - n), size - 1
    else:
        start = int(a)
        end = min(int(b), size - 1) if b else size - 1
    if start >= size or end < start:
        raise RangeNotSatisfiableError(f"Range {header!r} is outside the image ({size} bytes)", size=size)
    return start, end


async def stream_file(f: BinaryIO, start: int, length: int, chunk: int) -> AsyncIterator[bytes]:
    """Yield ``length`` bytes from ``start``; closes ``f`` at the end or when the client goes away."""
    from core.glance.intake import _IO

    loop = asyncio.get_running_loop()
    fd = f.fileno()
    try:
        pos, left = start, length
        while left > 0:
            block = await loop.run_in_executor(_IO, os.pread, fd, min(chunk, left), pos)
            if not block:
                break  # file shrank underneath us: end the body (the client sees a short read)
            pos += len(block)
            left -= len(block)
            yield block
    finally:
        f.close()
