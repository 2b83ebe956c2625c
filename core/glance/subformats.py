"""Conversions on request (``?format=qcow2|raw|vmdk``), kept as sub-formats of the image.

The first request converts (qemu-img with explicit ``-f``/``-O`` on an image that passed intake)
into the store's staging area and commits it as ``<image id>.<format>``; later requests stream the
cached copy. A second request while one converts gets 409 ResourceBusyError and can retry.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.db.base import utcnow
from core.errors import CloudpodsError, InvalidStatusError, NotSupportedError, ResourceBusyError
from core.glance.config import GlanceConfig
from core.glance.formats import CONVERTIBLE, convert
from core.glance.models import ACTIVE, Image, ImageSubformat
from core.glance.storage import ImageStore

SessionFactory = Callable[[], AbstractContextManager[Session]]
_STALE = timedelta(hours=6)


def same_format(img: Image, fmt: str) -> bool:
    return fmt == img.disk_format or (fmt == "raw" and img.disk_format == "iso")


def ensure_subformat(sessions: SessionFactory, store: ImageStore, cfg: GlanceConfig, image_id: str,
                     fmt: str) -> str:
    """Return the storage key holding ``image_id`` in ``fmt``, converting once if needed."""
    if fmt not in CONVERTIBLE:
        raise NotSupportedError(f"format {fmt!r} is not available (choose {', '.join(CONVERTIBLE)})")
    key = f"{image_id}.{fmt}"
    with sessions() as s:
        img = s.get(Image, image_id)
        if img is None or img.status != ACTIVE or not img.location:
            raise InvalidStatusError(f"image {image_id} is not active")
        if same_format(img, fmt):
            return img.location
        src_key, src_fmt = img.location, img.disk_format or "raw"
        sub = s.scalar(select(ImageSubformat).where(ImageSubformat.image_id == image_id, ImageSubformat.format == fmt))
        if sub is not None and sub.status == "active" and store.size(key) is not None:
            return key
        if sub is not None and sub.status == "converting" and sub.updated_at > utcnow() - _STALE:
            raise ResourceBusyError(f"image {image_id} is being converted to {fmt}; retry shortly")
        if sub is None:
            sub = ImageSubformat(image_id=image_id, format=fmt)
            s.add(sub)
        sub.status, sub.fail_reason, sub.updated_at = "converting", "", utcnow()
        try:
            s.flush()
        except IntegrityError:
            raise ResourceBusyError(f"image {image_id} is being converted to {fmt}; retry shortly") from None
    try:
        w = store.writer(key, resume=False)
        w.close()
        convert(store.path(src_key), src_fmt, w.staged_path, fmt, binary=cfg.qemu_img, timeout=cfg.convert_timeout_s)
        md5 = hashlib.md5(usedforsecurity=False)
        with open(w.staged_path, "rb", buffering=0) as f:
            while block := f.read(cfg.chunk_bytes):
                md5.update(block)
        size = store.commit(key)
    except BaseException as e:
        store.discard_staged(key)
        with sessions() as s:
            row = s.scalar(select(ImageSubformat).where(ImageSubformat.image_id == image_id,
                                                        ImageSubformat.format == fmt))
            if row is not None:
                row.status = "failed"
                row.fail_reason = e.details if isinstance(e, CloudpodsError) else type(e).__name__
        raise
    with sessions() as s:
        row = s.scalar(select(ImageSubformat).where(ImageSubformat.image_id == image_id, ImageSubformat.format == fmt))
        if row is None:  # the image was deleted meanwhile
            store.delete(key)
            raise InvalidStatusError(f"image {image_id} was deleted during conversion")
        row.status, row.size, row.checksum, row.location = "active", size, md5.hexdigest(), key
    return key
