"""The upload pipeline: the body copied once into reused fixed blocks, hashed and written in order."""
from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

from core.glance.intake import _Pipeline
from core.glance.storage import LocalStore


def test_blocks_are_reused_and_the_bytes_hashes_and_order_are_exact(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "images")
    key = "00000000-0000-4000-8000-000000000001"
    writer = store.writer(key, resume=False)
    block = 64 << 10
    # chunk sizes around the block size: smaller, larger, exactly one, odd; ~40 blocks in all
    sizes = [1, 1000, block - 1, block, block + 1, 3 * block + 7, 65_537, 12_345] * 5
    chunks = [os.urandom(n) for n in sizes]
    pipe = _Pipeline(writer, hashlib.md5(usedforsecurity=False), hashlib.sha256(), block, depth=3)
    made: list[int] = []  # ids of every block the pipeline ever filled

    async def run() -> None:
        for c in chunks:
            made.append(id(pipe._block))
            await pipe.feed(c)
        await pipe.drain()

    try:
        asyncio.run(run())
    finally:
        pipe.close()
        writer.close()
    body = b"".join(chunks)
    assert writer.staged_path.read_bytes() == body
    assert pipe.md5.hexdigest() == hashlib.md5(body, usedforsecurity=False).hexdigest()
    assert pipe.sha.hexdigest() == hashlib.sha256(body).hexdigest()
    assert len(body) > 30 * block and len(set(made)) <= 3 + 1  # depth in flight + the one being filled


def test_nothing_received_writes_nothing(tmp_path: Path) -> None:
    writer = LocalStore(tmp_path / "images").writer("00000000-0000-4000-8000-000000000002", resume=False)
    pipe = _Pipeline(writer, hashlib.md5(usedforsecurity=False), hashlib.sha256(), 64 << 10)
    try:
        asyncio.run(pipe.drain())
    finally:
        pipe.close()
        writer.close()
    assert writer.offset == 0 and pipe.sha.hexdigest() == hashlib.sha256().hexdigest()
