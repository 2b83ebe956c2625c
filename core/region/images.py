"""Image references in server/disk requests, resolved through glance's public functions.

An unknown (or invisible to the caller) image is a 400 naming it; an image that is not active yet
is a 400 saying so. The disk built from an image is at least its virtual size and ``min_disk``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from core.errors import InputParameterError, ResourceNotFoundError
from core.glance.service import get_image

_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,254}$")


@dataclass(frozen=True)
class ImageRef:
    id: str
    name: str
    min_disk_mb: int = 0
    size_mb: int = 0
    os_type: str = ""
    disk_format: str = ""
    checked: bool = True


def check_image(session: Session, ref: str, cred: Any) -> ImageRef:
    if not isinstance(ref, str) or not _REF.match(ref):
        raise InputParameterError(f"image {ref!r} is not a valid image id or name")
    try:
        img = get_image(session, ref, cred)
    except ResourceNotFoundError:
        cached = _cloud_image(session, ref, cred)
        if cached is not None:
            return cached
        raise InputParameterError(f"image {ref!r} not found") from None
    if img.status != "active":
        raise InputParameterError(f"image {ref!r} is {img.status}, not active")
    size = int(img.virtual_size or img.size or 0)
    return ImageRef(id=img.id, name=img.name, min_disk_mb=int(img.min_disk or 0),
                    size_mb=(size + (1 << 20) - 1) >> 20, os_type=str(img.properties.get("os_type") or ""),
                    disk_format=img.disk_format or "")


def _cloud_image(session: Session, ref: str, cred: Any) -> ImageRef | None:
    """An image a cloud has (a synced cached image, e.g. an AMI): the disk's image is its cloud id."""
    from core.region.cloud.accounts import find_cachedimage

    c = find_cachedimage(session, cred, ref)
    if c is None:
        return None
    if c.status != "active":
        raise InputParameterError(f"image {ref!r} is {c.status} in its cloud, not active")
    return ImageRef(id=c.external_id, name=c.name, size_mb=int(c.size or 0), os_type=c.os_type, disk_format="")
