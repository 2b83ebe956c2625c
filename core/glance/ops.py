"""What both image APIs do, once: create, update, publish, delete, and the download reply."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import anyio
from fastapi import Request
from fastapi.responses import StreamingResponse
from sqlalchemy import delete, select
from sqlalchemy.exc import InvalidRequestError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from core import audit
from core.api.context import Credential
from core.errors import (
    ConflictError,
    ForbiddenError,
    InputParameterError,
    InvalidStatusError,
    ResourceBusyError,
    ResourceNotFoundError,
)
from core.glance.context import GlanceCtx
from core.glance.dbutil import begin_write, write_session
from core.glance.download import parse_range, stream_file
from core.glance.formats import check_container_format, check_disk_format
from core.glance.images import (
    check_name,
    check_properties,
    check_size_field,
    ensure_unique_name,
    owner_of,
    owner_project,
    read_target,
)
from core.glance.models import ACTIVE, SAVING, Image, ImageSubformat
from core.glance.subformats import ensure_subformat, same_format
from core.keystone.policy import enforce

UPDATABLE = ("name", "description", "min_disk", "min_ram", "protected", "is_public", "properties",
             "disk_format", "container_format")


@dataclass
class ImageFields:
    """Metadata as either API delivers it, validated once."""

    values: dict[str, Any] = field(default_factory=dict)
    properties: dict[str, str] = field(default_factory=dict)
    remove_properties: list[str] = field(default_factory=list)
    declared_size: int | None = None


def parse_fields(raw: dict[str, Any], *, extra_as_properties: bool = False) -> ImageFields:
    """Validate a metadata dict (``{"name":..., "properties": {...}}``); unknown keys become properties
    for Glance v2 (where custom properties sit at the top level) and are refused otherwise."""
    out = ImageFields()
    if not isinstance(raw.get("properties", {}), dict | None):
        raise InputParameterError("properties: must be an object")
    props: dict[str, Any] = dict(raw.get("properties") or {})
    for k, v in raw.items():
        if k == "properties":
            continue
        if k == "name":
            out.values["name"] = check_name(v)
        elif k == "description":
            if v is not None and not isinstance(v, str):
                raise InputParameterError("description: must be a string")
            out.values["description"] = "" if v is None else v[:4096]
        elif k == "disk_format":
            out.values["disk_format"] = check_disk_format(v)
        elif k == "container_format":
            out.values["container_format"] = check_container_format(v)
        elif k in ("min_disk", "min_ram"):
            out.values[k] = check_size_field(v, k)
        elif k in ("protected", "is_public"):
            out.values[k] = _bool(v, k)
        elif k == "visibility":
            if v not in ("public", "private", "shared", "community"):
                raise InputParameterError(f"visibility {v!r}: public, private, shared or community")
            out.values["is_public"] = v == "public"
        elif k == "size":
            out.declared_size = None if v in (None, "") else check_size_field(v, "size")
        elif k in ("os_type", "os_distribution", "os_version", "os_arch"):
            props[k] = v
        elif k in ("id", "status", "checksum", "owner", "tenant_id", "created_at", "updated_at", "virtual_size",
                   "tags", "os_hidden", "generate_name", "tenant", "project", "project_id", "domain_id"):
            continue  # read-only or not ours to set: ignored as real clients send them back
        elif extra_as_properties:
            props[k] = v
        else:
            raise InputParameterError(f"unknown image field {k!r}")
    out.properties = check_properties(props)
    return out


def _bool(v: Any, name: str) -> bool:
    from core.api.listing import parse_bool

    b = parse_bool(v if isinstance(v, bool | str) else str(v), name)
    return bool(b)


def create_image(session: Session, cred: Credential, f: ImageFields) -> Image:
    enforce(cred, "image:images:create")
    tenant, domain = owner_project(cred)
    begin_write(session)
    name = f.values.get("name")
    if not name:
        raise InputParameterError("name is required")
    if f.values.get("is_public"):
        enforce(cred, "image:images:publicize", {"project_id": tenant, "domain_id": domain})
    ensure_unique_name(session, tenant, name)
    img = Image(name=name, tenant_id=tenant, domain_id=domain, owner_user_id=cred.user_id,
                properties=f.properties, status="queued")
    for k, v in f.values.items():
        if k != "name":
            setattr(img, k, v)
    if f.declared_size is not None:
        img.upload_total = f.declared_size
    session.add(img)
    session.flush()
    audit.record(session, cred, service="image", action="create", obj_type="image", obj_id=img.id, obj_name=name)
    return img


def _reload(session: Session, img: Image) -> None:
    """Re-read ``img`` inside the write transaction, its row locked (PostgreSQL/MariaDB: a parallel
    change waits here until this one commits; SQLite's writer lock already serialises); deleted
    meanwhile (a parallel delete) is a 404."""
    ident = img.__dict__.get("id", "")  # read before: a deleted row's attributes cannot load
    try:
        session.refresh(img, with_for_update=True)
    except InvalidRequestError:
        raise ResourceNotFoundError(f"image {ident} not found") from None


def update_image(session: Session, cred: Credential, img: Image, f: ImageFields) -> Image:
    enforce(cred, "image:images:update", owner_of(img))
    if "is_public" in f.values and f.values["is_public"] != img.is_public:
        enforce(cred, "image:images:publicize", owner_of(img))
    begin_write(session)
    _reload(session, img)
    if img.status == ACTIVE:
        for k in ("disk_format", "container_format"):
            if k in f.values and f.values[k] != getattr(img, k):
                raise InvalidStatusError(f"{k} of an active image cannot change")
    if "name" in f.values and f.values["name"] != img.name:
        ensure_unique_name(session, img.tenant_id, f.values["name"], exclude=img.id)
    changed = []
    for k, v in f.values.items():
        if getattr(img, k) != v:
            setattr(img, k, v)
            changed.append(k)
    if f.properties or f.remove_properties:
        props = dict(img.properties or {})
        props.update(f.properties)
        for k in f.remove_properties:
            props.pop(k, None)
        img.properties = check_properties(props)
        changed.append("properties")
    if changed:
        audit.record(session, cred, service="image", action="update", obj_type="image", obj_id=img.id,
                     obj_name=img.name, notes=",".join(changed))
    return img


def set_public(session: Session, cred: Credential, img: Image, public: bool) -> Image:
    enforce(cred, "image:images:publicize", owner_of(img))
    begin_write(session)
    _reload(session, img)
    if img.is_public != public:
        img.is_public = public
        audit.record(session, cred, service="image", action="public" if public else "private",
                     obj_type="image", obj_id=img.id, obj_name=img.name)
    return img


def delete_image(ctx: GlanceCtx, session: Session, cred: Credential, img: Image) -> None:
    enforce(cred, "image:images:delete", owner_of(img))
    begin_write(session)
    _reload(session, img)
    if img.protected:
        raise ForbiddenError(f"image {img.name} is protected; unset protected first")
    if img.status == SAVING and img.upload_owner:
        raise ResourceBusyError(f"image {img.name} is being uploaded")
    subs = list(session.scalars(select(ImageSubformat).where(ImageSubformat.image_id == img.id)))
    keys = [img.id] + [f"{img.id}.{s.format}" for s in subs]
    session.execute(delete(ImageSubformat).where(ImageSubformat.image_id == img.id))
    audit.record(session, cred, service="image", action="delete", obj_type="image", obj_id=img.id, obj_name=img.name)
    session.delete(img)
    try:
        session.commit()  # the row goes first: a crash between the two leaves an orphan file, never a dangling row
    except StaleDataError:  # a parallel delete won
        session.rollback()
        raise ResourceNotFoundError(f"image {keys[0]} not found") from None
    for k in keys:
        ctx.store.delete(k)


async def download_response(ctx: GlanceCtx, request: Request, session: Session, cred: Credential, img: Image,
                            fmt: str | None, headers: dict[str, str] | None = None) -> StreamingResponse:
    """Stream an active image (or a converted sub-format of it), honouring a single ``Range``."""
    enforce(cred, "image:images:download", read_target(img))
    if img.status != ACTIVE or not img.location:
        raise InvalidStatusError(f"image {img.name} is {img.status}; only active images can be downloaded")
    image_id, checksum = img.id, img.checksum
    session.commit()  # release the connection: the transfer may take hours
    key = img.location
    if fmt:
        fmt = fmt.lower()
        if not same_format(img, fmt):
            checksum = None
            key = await anyio.to_thread.run_sync(ensure_subformat, lambda: write_session(ctx.db), ctx.store, ctx.cfg,
                                                 image_id, fmt)
            sub_sum = await anyio.to_thread.run_sync(_sub_checksum, ctx, image_id, fmt)
            checksum = sub_sum
    try:
        f = await anyio.to_thread.run_sync(ctx.store.open, key)
    except FileNotFoundError:  # e.g. restored from a backup made without --with-images
        raise ConflictError(f"image {img.name}: its data is missing from the image store (restored from a "
                                 "backup without --with-images?): upload it again") from None
    size = await anyio.to_thread.run_sync(lambda: ctx.store.size(key))
    if size is None:
        f.close()
        raise InvalidStatusError(f"image {image_id} data is missing from the store")
    try:
        rng = parse_range(request.headers.get("range"), size)
    except Exception:
        f.close()
        raise
    start, end = rng if rng else (0, size - 1)
    length = end - start + 1
    h = dict(headers or {})
    h.update({"Content-Length": str(length), "Accept-Ranges": "bytes",
              "Content-Disposition": f"attachment; filename*=UTF-8''{quote(img.name)}"})
    if checksum and rng is None:
        h["Content-MD5"] = checksum
    if rng is not None:
        h["Content-Range"] = f"bytes {start}-{end}/{size}"
    return StreamingResponse(stream_file(f, start, length, ctx.cfg.chunk_bytes), status_code=206 if rng else 200,
                             media_type="application/octet-stream", headers=h)


def _sub_checksum(ctx: GlanceCtx, image_id: str, fmt: str) -> str | None:
    with ctx.db.session() as s:
        return s.scalar(select(ImageSubformat.checksum).where(ImageSubformat.image_id == image_id,
                                                              ImageSubformat.format == fmt))


def subformats_of(session: Session, image_id: str) -> list[ImageSubformat]:
    return list(session.scalars(select(ImageSubformat).where(ImageSubformat.image_id == image_id)
                                .order_by(ImageSubformat.format)))
