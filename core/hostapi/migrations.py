"""Disks of a cold migration, staged on the controller between the source's upload and the target's
download: their transfer (the staging area itself, which the region's migrate task discards, is
core/region/migration_staging.py).

Only the source host of a dispatched migrate-out item for the server may upload, only the target
host of a queued or dispatched migrate-in item may download (``may_upload`` / ``may_download``,
checked against the work items themselves).
"""
from __future__ import annotations

import asyncio
import hashlib
import os
import re
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import select

from core.errors import ForbiddenError, InputParameterError
from core.host_protocol import WorkKind
from core.region.migration_staging import disk_file
from core.tasks.models import WorkItem

_SHA = re.compile(r"^[0-9a-f]{64}$")
WRITE_CHUNK = 4 << 20  # bytes gathered before one write to the staged file
# the upload route, exempt from the gateway's body cap (core/api/app.py): it streams to disk
UPLOAD_PATH = re.compile(r"^/api/s/compute_v2/agent/hosts/[^/]+/migrations/[^/]+/disks/[^/]+$")


def _item_for(session: Any, host_id: str, kind: WorkKind, statuses: tuple[str, ...], server_id: str,
              disk_id: str) -> WorkItem | None:
    for wi in session.scalars(select(WorkItem).where(WorkItem.host_id == host_id, WorkItem.kind == kind.value,
                                                     WorkItem.status.in_(statuses))):
        p = wi.payload or {}
        if (p.get("server") or {}).get("id") == server_id and any(
                isinstance(d, dict) and d.get("id") == disk_id for d in p.get("disks") or []):
            return wi
    return None


def may_upload(session: Any, host_id: str, server_id: str, disk_id: str) -> None:
    if _item_for(session, host_id, WorkKind.MIGRATE_OUT, ("dispatched",), server_id, disk_id) is None:
        raise ForbiddenError(f"host {host_id} is not migrating disk {disk_id} of server {server_id} out")


def may_download(session: Any, host_id: str, server_id: str, disk_id: str) -> None:
    if _item_for(session, host_id, WorkKind.MIGRATE_IN, ("queued", "dispatched"), server_id, disk_id) is None:
        raise ForbiddenError(f"host {host_id} is not taking disk {disk_id} of server {server_id} in")


async def receive(data_dir: Path | str, server_id: str, disk_id: str, chunks: AsyncIterator[bytes],
                  expect_sha256: str = "") -> dict[str, Any]:
    """Stream an upload to its staged file (published only when complete and its sha256 matches)."""
    from starlette.concurrency import run_in_threadpool

    want = expect_sha256.lower()
    if want and not _SHA.match(want):
        raise InputParameterError(f"x-disk-sha256: bad sha256 {expect_sha256!r}")
    dest = disk_file(data_dir, server_id, disk_id)
    dest.parent.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    dest.parent.mkdir(mode=0o700, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{disk_id}.", suffix=".part")  # mode 0600
    h = hashlib.sha256()
    size = 0

    def put(f: Any, block: bytes) -> None:  # in a worker thread: hashing and writing release the GIL
        h.update(block)
        f.write(block)

    try:
        with os.fdopen(fd, "wb") as f:
            buf: list[bytes] = []
            pending = 0
            # one block hashed and written while the next one is received
            writing: asyncio.Future[None] | None = None
            async for chunk in chunks:
                if not chunk:
                    continue
                buf.append(chunk)
                pending += len(chunk)
                if pending >= WRITE_CHUNK:
                    block = b"".join(buf)
                    buf, pending = [], 0
                    size += len(block)
                    if writing is not None:
                        await writing
                    writing = asyncio.ensure_future(run_in_threadpool(put, f, block))
            if writing is not None:
                await writing
            if buf:
                block = b"".join(buf)
                size += len(block)
                put(f, block)
        got = h.hexdigest()
        if want and got != want:
            raise InputParameterError(f"disk {disk_id}: the upload's sha256 is {got}, the sender said {want}")
        Path(tmp + ".sha").write_text(got)
        os.replace(tmp + ".sha", str(dest) + ".sha256")
        os.replace(tmp, dest)
    except BaseException:
        for p in (tmp, tmp + ".sha"):
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass
        raise
    return {"id": disk_id, "sha256": got, "size": size}


def chunks_of(path: Path, size: int = WRITE_CHUNK) -> Iterator[bytes]:
    """A staged file in big blocks (a streaming response reads each in a worker thread)."""
    with open(path, "rb") as f:
        while block := f.read(size):
            yield block
