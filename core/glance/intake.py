"""Streaming upload: request body → staging object, hashed on the way, inspected, then committed.

Memory stays flat: the body is gathered into ``chunk_bytes`` blocks and each block is written and
hashed (md5 for Cloudpods' ``checksum``, sha256 for Glance's ``os_hash_value``) in worker threads
while the event loop receives the next block; hashlib and os.write release the GIL.

Status machine: ``queued → saving → active``, or ``→ killed`` (staged bytes removed) when the body
is truncated, refused by inspection, over quota, or the disk fills. A ranged upload
(``Content-Range: bytes S-E/T``) keeps its staged bytes when the connection drops: the image
stays ``saving`` and reports ``upload_offset``, and the client resumes from there.

The DB is touched only in short transactions in a worker thread, never during the transfer
(SQLite has one writer; a multi-GB upload must not hold it).
"""
from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
import uuid
from collections import OrderedDict, deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from sqlalchemy import select
from starlette.requests import ClientDisconnect, Request

from core import audit
from core.api.context import Credential
from core.api.inputs import int64
from core.db.base import utcnow
from core.errors import (
    CloudpodsError,
    ConflictError,
    InputParameterError,
    InvalidStatusError,
    OutOfQuotaError,
    RequestTooLargeError,
    ResourceBusyError,
    ResourceNotFoundError,
)
from core.glance.context import GlanceCtx
from core.glance.dbutil import write_session
from core.glance.formats import inspect_image
from core.glance.images import check_quota, room_for, take_upload
from core.glance.models import ACTIVE, KILLED, QUEUED, SAVING, UPLOADABLE, Image
from core.glance.storage import StagedWriter, StoreFullError

log = logging.getLogger("cloudpods.glance")
_IO = ThreadPoolExecutor(max_workers=8, thread_name_prefix="glance-io")
_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")
_HEARTBEAT_S = 60.0
# Hash state of interrupted ranged uploads, so a resume in this process need not re-read the staged
# prefix (hashlib objects cannot be persisted). Another replica re-hashes from the staged bytes.
_HASHES: OrderedDict[str, tuple[int, Any, Any]] = OrderedDict()
_HASHES_MAX = 64


class SizeContradiction(InputParameterError):
    """The size declared for an image (at create or with the upload) is not what is being sent."""


class UploadInterrupted(InputParameterError):
    """The body ended early; for a ranged upload the bytes so far are kept."""


@dataclass(frozen=True)
class ContentRange:
    start: int
    end: int
    total: int | None

    @property
    def length(self) -> int:
        return self.end - self.start + 1


def parse_content_range(value: str | None) -> ContentRange | None:
    if not value:
        return None
    m = _RANGE.match(value.strip())
    if not m:
        raise InputParameterError(f"Content-Range {value!r}: expected 'bytes START-END/TOTAL' (TOTAL may be *)")
    start, end = int(m.group(1)), int(m.group(2))
    total = None if m.group(3) == "*" else int(m.group(3))
    if end < start or (total is not None and end >= total):
        raise InputParameterError(f"Content-Range {value!r}: range is not inside the total")
    return ContentRange(start, end, total)


@dataclass(frozen=True)
class UploadRequest:
    image_id: str
    declared_format: str | None = None
    declared_size: int | None = None  # X-Image-Meta-Size / size in the create body
    content_length: int | None = None
    crange: ContentRange | None = None


def content_length_of(request: Request) -> int | None:
    raw = request.headers.get("content-length")
    if raw is None:
        return None
    return int64(raw, "Content-Length", lo=0)


class _Pipeline:
    """Two ordered lanes per upload: md5 in one thread, sha256 + write in another (md5 is the slower
    hash, so the write rides with sha256). Up to ``depth`` blocks are in flight, so the event loop keeps
    receiving while the threads hash and write; memory stays at most (depth + 1) × block_bytes.

    The body is copied once, into fixed blocks that are reused once both lanes are done with them:
    growing a bytearray per block (``buf += chunk``) reallocated and zero-filled fresh pages all the
    way, ~0.8 s of CPU per GiB in the event loop, the upload's bottleneck (issue 22)."""

    def __init__(self, writer: StagedWriter, md5: Any, sha: Any, block_bytes: int, depth: int = 3) -> None:
        self.writer, self.md5, self.sha, self.depth = writer, md5, sha, depth
        self._md5_lane = ThreadPoolExecutor(1, thread_name_prefix="glance-md5")
        self._sha_lane = ThreadPoolExecutor(1, thread_name_prefix="glance-sha")
        self._pending: deque[tuple[Future[None], Future[None], bytearray]] = deque()
        self._free: list[bytearray] = []
        self._block = bytearray(block_bytes)
        self._filled = 0

    def _sha_write(self, block: memoryview) -> None:
        self.sha.update(block)
        self.writer.write(block)

    async def feed(self, data: bytes) -> None:
        """Copy ``data`` into the block being filled; each full block goes to the lanes."""
        src = memoryview(data)
        while src:
            block, filled = self._block, self._filled
            take = min(len(src), len(block) - filled)
            block[filled:filled + take] = src[:take]
            self._filled = filled + take
            src = src[take:]
            if self._filled == len(block):
                await self.flush_block()

    async def flush_block(self) -> None:
        """Hand the filled part of the current block to the lanes (at the end: the last, partial one)."""
        if not self._filled:
            return
        while len(self._pending) >= self.depth:
            await self._wait_oldest()
        block, view = self._block, memoryview(self._block)[:self._filled]
        self._pending.append((self._md5_lane.submit(self.md5.update, view),
                              self._sha_lane.submit(self._sha_write, view), block))
        self._block = self._free.pop() if self._free else bytearray(len(block))
        self._filled = 0

    async def _wait_oldest(self) -> None:
        # shielded: a cancellation (idle timeout) must not cancel a block between hashing and
        # writing, or the staged bytes and the hash state would disagree; the next drain() finishes it
        a, b, block = self._pending[0]
        await asyncio.shield(asyncio.wrap_future(a))
        await asyncio.shield(asyncio.wrap_future(b))
        self._pending.popleft()
        self._free.append(block)  # both lanes are done with it

    async def drain(self) -> None:
        await self.flush_block()
        while self._pending:
            await self._wait_oldest()

    def settle(self) -> None:
        """After a failure or cancellation: let blocks still in the lanes finish, then stop the lanes."""
        for md5_done, sha_done, _block in self._pending:
            for f in (md5_done, sha_done):
                try:
                    f.result()
                except Exception:
                    pass
        self._pending.clear()
        self.close()

    def close(self) -> None:
        self._md5_lane.shutdown(wait=True)
        self._sha_lane.shutdown(wait=True)


def _hashes_for(ctx: GlanceCtx, image_id: str, offset: int, staged: Path) -> tuple[Any, Any]:
    cached = _HASHES.pop(image_id, None)
    if cached is not None and cached[0] == offset:
        return cached[1], cached[2]
    md5, sha = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    if offset:
        with open(staged, "rb", buffering=0) as f:
            left = offset
            while left:
                block = f.read(min(ctx.cfg.chunk_bytes, left))
                if not block:
                    raise ConflictError("staged upload is shorter than its offset; restart the upload from 0")
                md5.update(block)
                sha.update(block)
                left -= len(block)
    return md5, sha


def _remember_hashes(image_id: str, offset: int, md5: Any, sha: Any) -> None:
    _HASHES[image_id] = (offset, md5, sha)
    while len(_HASHES) > _HASHES_MAX:
        _HASHES.popitem(last=False)


# ---- DB steps (worker thread, short transactions) ------------------------------------------------
def _begin(ctx: GlanceCtx, req: UploadRequest, owner: str) -> tuple[int, int | None, int]:
    """Claim the upload; return (start offset, expected total, byte limit for this request)."""
    with write_session(ctx.db) as s:
        img = s.get(Image, req.image_id)
        if img is None:
            raise ResourceNotFoundError(f"image {req.image_id} not found")
        if img.status == ACTIVE:
            raise InvalidStatusError(f"image {img.name} is active; its data cannot be replaced")
        if img.status not in UPLOADABLE:
            raise InvalidStatusError(f"image {img.name} is {img.status}; data cannot be uploaded")
        staged = ctx.store.staged_size(img.id) if img.status == SAVING else 0
        cr = req.crange
        start = 0
        if cr is not None:
            if cr.start not in (0, staged):
                raise ConflictError(f"upload offset of image {img.name} is {staged}, not {cr.start}",
                                    upload_offset=staged)
            start = cr.start
            if req.content_length is not None and req.content_length != cr.length:
                raise InputParameterError(f"Content-Length {req.content_length} does not match "
                                          f"Content-Range length {cr.length}")
        total = cr.total if cr is not None else req.content_length
        if cr is not None and cr.total is None:
            total = img.upload_total
        declared = req.declared_size
        if declared is None and cr is None and img.status == QUEUED:
            declared = img.upload_total  # the size given when the image was created (v1/v2 ``size``)
        if declared is not None and total is not None and declared != total:
            raise SizeContradiction(f"declared image size {declared} does not match the "
                                    f"{'Content-Range total' if cr else 'Content-Length'} {total}")
        total = total if total is not None else declared
        if total == 0:
            raise InputParameterError("the image is empty (0 bytes)")
        if total is not None and total > ctx.cfg.image_size_cap:
            raise RequestTooLargeError(f"image of {total} bytes exceeds image_size_cap "
                                       f"({ctx.cfg.image_size_cap} bytes)")
        if total is not None:
            check_quota(s, img, ctx.cfg, total)
            need = total - start
            if need > ctx.store.free_bytes() - ctx.cfg.min_free_bytes:
                raise StoreFullError(f"the image store has no room for {need} more bytes")
        room = room_for(s, img, ctx.cfg)
        if not take_upload(s, img.id, owner, UPLOADABLE):
            raise ResourceBusyError(f"another upload to image {img.name} is in progress")
        img = s.get(Image, req.image_id, populate_existing=True)
        assert img is not None
        img.upload_total = total
        if req.declared_format:
            img.disk_format = req.declared_format
        limit = ctx.cfg.image_size_cap if room is None else min(ctx.cfg.image_size_cap, room)
        return start, total, limit - start


def _heartbeat(ctx: GlanceCtx, image_id: str, owner: str) -> None:
    from sqlalchemy import update

    with write_session(ctx.db) as s:
        s.execute(update(Image).where(Image.id == image_id, Image.upload_owner == owner).values(updated_at=utcnow()))


def _release(ctx: GlanceCtx, image_id: str, owner: str) -> None:
    from sqlalchemy import update

    with write_session(ctx.db) as s:
        s.execute(update(Image).where(Image.id == image_id, Image.upload_owner == owner)
                  .values(upload_owner=None, updated_at=utcnow()))


def _kill(ctx: GlanceCtx, image_id: str, owner: str, reason: str, cred: Credential) -> None:
    with write_session(ctx.db) as s:
        img = s.get(Image, image_id)
        if img is not None and img.upload_owner not in (owner, None):
            return  # a newer upload took over (ours went stale): its staged bytes are not ours to drop
        ctx.store.discard_staged(image_id)
        _HASHES.pop(image_id, None)
        if img is None:
            return
        img.status, img.upload_owner, img.fail_reason = KILLED, None, reason[:1000]
        img.size = img.checksum = img.os_hash_value = img.os_hash_algo = None
        img.upload_total = None
        audit.record(s, cred, service="image", action="upload", obj_type="image", obj_id=img.id,
                     obj_name=img.name, success=False, notes=reason[:500])


def _activate(ctx: GlanceCtx, req: UploadRequest, staged: Path, cred: Credential, md5: str, sha: str) -> Image:
    key = req.image_id
    with ctx.db.session() as s:
        declared = s.scalar(select(Image.disk_format).where(Image.id == key))
    # inspection runs outside any transaction: qemu-img may take a while
    insp = inspect_image(staged, declared, max_virtual_size=ctx.cfg.max_virtual_size,
                         binary=ctx.cfg.qemu_img, timeout=ctx.cfg.qemu_img_timeout_s)
    if req.declared_size is not None and insp.actual_size != req.declared_size:
        raise InputParameterError(f"received {insp.actual_size} bytes but the declared size is {req.declared_size}")
    with write_session(ctx.db) as s:
        img = s.get(Image, key)
        if img is None:
            raise ResourceNotFoundError(f"image {key} was deleted during the upload")
        check_quota(s, img, ctx.cfg, insp.actual_size)
        size = ctx.store.commit(key)
        img.status, img.upload_owner, img.location = ACTIVE, None, key
        img.size, img.virtual_size, img.disk_format = size, insp.virtual_size, insp.format
        img.checksum, img.os_hash_algo, img.os_hash_value = md5, "sha256", sha
        img.fail_reason, img.upload_total = "", None
        if not img.min_disk and insp.virtual_size:
            img.min_disk = -(-insp.virtual_size // (1 << 20))
        audit.record(s, cred, service="image", action="upload", obj_type="image", obj_id=img.id, obj_name=img.name,
                     notes=f"{size} bytes, {insp.format}, virtual {insp.virtual_size}")
        s.flush()
        s.expunge(img)
        return img


# ---- the transfer --------------------------------------------------------------------------------
async def receive(ctx: GlanceCtx, request: Request, req: UploadRequest, cred: Credential) -> tuple[Image, bool]:
    """Stream the request body into the image. Returns (image, finished) — unfinished for a ranged
    chunk that is not the last one."""
    owner = f"{(cred.request_id or 'up')[:48]}:{uuid.uuid4().hex[:12]}"  # fits String(64)
    try:
        start, total, limit = await anyio.to_thread.run_sync(_begin, ctx, req, owner)
    except SizeContradiction as e:  # the image cannot become what was declared: killed, as Glance
        await anyio.to_thread.run_sync(_kill, ctx, req.image_id, owner, e.details, cred)
        raise
    cr = req.crange
    ranged = cr is not None
    writer: StagedWriter | None = None
    pipe: _Pipeline | None = None
    received = 0
    interrupted = ""
    try:
        writer = await anyio.to_thread.run_sync(lambda: ctx.store.writer(req.image_id, resume=start > 0))
        if writer.offset != start:  # a fresh start truncates; a resume must match the staged size
            raise ConflictError(f"upload offset is {writer.offset}, not {start}", upload_offset=writer.offset)
        md5, sha = await anyio.to_thread.run_sync(_hashes_for, ctx, req.image_id, start, writer.staged_path)
        pipe = _Pipeline(writer, md5, sha, ctx.cfg.chunk_bytes)
        idle = ctx.cfg.idle_timeout_s
        loop = asyncio.get_running_loop()
        last_beat = last_poke = time.monotonic()
        try:
            async with asyncio.timeout_at(loop.time() + idle) as deadline:
                async for chunk in request.stream():
                    if not chunk:
                        continue
                    received += len(chunk)
                    if received > limit:
                        raise _over_limit(ctx, received + start, limit + start)
                    await pipe.feed(chunk)
                    now = time.monotonic()
                    if now - last_poke > 1.0:  # rescheduling per chunk would cost more than the check
                        deadline.reschedule(loop.time() + idle)
                        last_poke = now
                        if now - last_beat > _HEARTBEAT_S:
                            await anyio.to_thread.run_sync(_heartbeat, ctx, req.image_id, owner)
                            last_beat = now
        except TimeoutError:
            interrupted = f"no data for {idle:.0f}s"
        except ClientDisconnect:
            interrupted = "the client disconnected"
        await pipe.drain()
        await anyio.to_thread.run_sync(writer.flush)
        offset = writer.offset
        expected = cr.length if cr is not None else req.content_length
        if not interrupted and expected is not None and received != expected:
            interrupted = f"body ended after {received} of {expected} bytes"
        if interrupted:
            if ranged:
                _remember_hashes(req.image_id, offset, md5, sha)
                await anyio.to_thread.run_sync(_release, ctx, req.image_id, owner)
                raise UploadInterrupted(f"upload interrupted ({interrupted}) at byte {offset}; resume with "
                                        f"Content-Range: bytes {offset}-...", upload_offset=offset)
            raise UploadInterrupted(f"upload truncated: {interrupted} (received {received} bytes"
                                    f"{f' of {expected}' if expected is not None else ''})")
        if ranged and (total is None or offset < total):
            _remember_hashes(req.image_id, offset, md5, sha)
            await anyio.to_thread.run_sync(_release, ctx, req.image_id, owner)
            img = await anyio.to_thread.run_sync(_load, ctx, req.image_id)
            return img, False
        if total is not None and offset != total:
            raise InputParameterError(f"received {offset} bytes but the image size is {total}")
        writer.close()
        img = await anyio.to_thread.run_sync(_activate, ctx, req, writer.staged_path, cred, md5.hexdigest(),
                                             sha.hexdigest())
        return img, True
    except UploadInterrupted as e:
        if not ranged:
            await _fail(ctx, req.image_id, owner, e.details, cred, pipe, writer)
        raise
    except BaseException as e:
        reason = e.details if isinstance(e, CloudpodsError) else f"upload failed: {type(e).__name__}"
        if isinstance(e, asyncio.CancelledError):
            reason = "upload cancelled"
        elif not isinstance(e, CloudpodsError):
            log.exception("image %s upload failed", req.image_id)
        await _fail(ctx, req.image_id, owner, reason, cred, pipe, writer)
        raise
    finally:
        if pipe is not None:
            pipe.close()
        if writer is not None:
            writer.close()


def _over_limit(ctx: GlanceCtx, got: int, limit: int) -> CloudpodsError:
    if limit >= ctx.cfg.image_size_cap:
        return RequestTooLargeError(f"image exceeds image_size_cap ({ctx.cfg.image_size_cap} bytes)")
    return OutOfQuotaError(f"image quota exceeded: {got} bytes received, {limit} allowed for this image")


async def _fail(ctx: GlanceCtx, image_id: str, owner: str, reason: str, cred: Credential,
                pipe: _Pipeline | None, writer: StagedWriter | None) -> None:
    def work() -> None:
        if pipe is not None:
            pipe.settle()
        if writer is not None:
            writer.close()
        _kill(ctx, image_id, owner, reason, cred)

    # shielded: the cleanup must finish even when the request task is being cancelled
    with anyio.CancelScope(shield=True):
        await anyio.to_thread.run_sync(work)


def _load(ctx: GlanceCtx, image_id: str) -> Image:
    with ctx.db.session() as s:
        img = s.get(Image, image_id)
        if img is None:
            raise ResourceNotFoundError(f"image {image_id} not found")
        s.expunge(img)
        return img
