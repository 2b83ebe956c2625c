"""Image references in server/disk requests, checked through glance's public lookup.

Glance (``core.glance``) is built in parallel; when it exposes ``lookup_image(session, ref)``
returning a mapping with ``id``, ``name``, ``size`` (bytes), ``min_disk`` (MB), ``status`` and
``properties``, we use it and an unknown image is a 400 naming it. Until then only the form of the
reference is checked (an id or a name), and the reply says ``checked: false``.
"""
from __future__ import annotations

import importlib
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from core.errors import InputParameterError, ResourceNotFoundError

_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,254}$")


@dataclass(frozen=True)
class ImageRef:
    id: str
    name: str
    min_disk_mb: int = 0
    size_mb: int = 0
    os_type: str = ""
    checked: bool = False


def _glance_lookup() -> Any:
    try:
        mod = importlib.import_module("core.glance")
    except ImportError:
        return None
    return getattr(mod, "lookup_image", None)


def check_image(session: Session, ref: str, cred: Any = None) -> ImageRef:
    if not isinstance(ref, str) or not _REF.match(ref):
        raise InputParameterError(f"image {ref!r} is not a valid image id or name")
    lookup = _glance_lookup()
    if lookup is None:
        return ImageRef(id=ref, name=ref)
    try:
        img = lookup(session, ref) if cred is None else _call(lookup, session, ref, cred)
    except ResourceNotFoundError:
        img = None
    if not img:
        raise InputParameterError(f"image {ref!r} not found")
    get = img.get if isinstance(img, dict) else (lambda k, d=None: getattr(img, k, d))
    status = get("status", "active")
    if status not in ("active", None):
        raise InputParameterError(f"image {ref!r} is {status}, not active")
    props = get("properties", {}) or {}
    size = int(get("size", 0) or 0)
    return ImageRef(id=str(get("id")), name=str(get("name", ref)), min_disk_mb=int(get("min_disk", 0) or 0),
                    size_mb=(size + (1 << 20) - 1) >> 20, os_type=str(props.get("os_type", "")), checked=True)


def _call(lookup: Any, session: Session, ref: str, cred: Any) -> Any:
    try:
        return lookup(session, ref, cred)
    except TypeError:
        return lookup(session, ref)
