"""Image rows as the API sees them: validation, visibility, lookup, quota, and the two wire shapes.

Handlers call these after ``enforce``; nothing here knows about HTTP except the small ``to_v1`` /
``to_v2`` renderers that both APIs share.
"""
from __future__ import annotations

import math
import re
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Select, func, or_, select, update
from sqlalchemy.orm import Session

from core.api.context import Credential
from core.api.inputs import INT64_MAX, check_display_name, int64
from core.db.base import iso, utcnow
from core.errors import DuplicateNameError, InputParameterError, OutOfQuotaError, ResourceNotFoundError
from core.glance.config import GlanceConfig
from core.glance.models import ACTIVE, SAVING, Image, ImageQuota, ImageSubformat
from core.glance.storage import ImageStore
from core.keystone.policy import restrict

OS_PROPERTIES = ("os_type", "os_distribution", "os_version", "os_arch")
_PROP_KEY = re.compile(r"^[A-Za-z0-9_.:-]{1,255}$")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
MAX_PROPERTIES = 128


def check_name(name: Any) -> str:
    """Names reach file names in other tools (downloads, caches): no paths, no control characters."""
    if not isinstance(name, str) or not name.strip():
        raise InputParameterError("name: must be a non-empty string")
    clean: str = name.strip()
    if len(clean) > 128:
        raise InputParameterError("name: at most 128 characters")
    if "/" in clean or "\\" in clean or clean in (".", "..") or any(ord(c) < 32 or ord(c) == 127 for c in clean):
        raise InputParameterError(f"name {clean!r}: must not contain '/', '\\' or control characters")
    return check_display_name(clean, max_len=128)


def check_properties(props: Any) -> dict[str, str]:
    if props is None:
        return {}
    if not isinstance(props, dict):
        raise InputParameterError("properties: must be an object of string values")
    if len(props) > MAX_PROPERTIES:
        raise InputParameterError(f"properties: at most {MAX_PROPERTIES} entries")
    out: dict[str, str] = {}
    for k, v in props.items():
        if not isinstance(k, str) or not _PROP_KEY.match(k):
            raise InputParameterError(f"property name {k!r}: letters, digits and _.:- only")
        if v is None:
            continue
        if isinstance(v, bool):
            v = "true" if v else "false"
        if not isinstance(v, str | int | float):
            raise InputParameterError(f"property {k}: value must be a string")
        s = str(v)
        if len(s) > 4096:
            raise InputParameterError(f"property {k}: value longer than 4096 characters")
        out[k] = s
    return out


def check_size_field(value: Any, name: str, hi: int = INT64_MAX) -> int:
    if value is None or isinstance(value, float | list | dict):
        raise InputParameterError(f"{name}: {value!r} is not an integer")
    return int64(value, name, lo=0, hi=hi)


# ---- ownership and visibility ---------------------------------------------------------------------
def owner_of(img: Image) -> dict[str, Any]:
    return {"project_id": img.tenant_id, "domain_id": img.domain_id}


def read_target(img: Image) -> dict[str, Any] | None:
    """Public images are readable by anyone who may read images at all."""
    return None if img.is_public else owner_of(img)


def visible(cred: Credential, scope: str | None = None) -> Select[tuple[Image]]:
    own = restrict(select(Image.id), cred, Image, scope)
    return select(Image).where(or_(Image.id.in_(own.scalar_subquery()), Image.is_public.is_(True)))


def get_visible(session: Session, cred: Credential, id_or_name: str) -> Image:
    """An image by id or name among those the caller can see; another tenant's private image is 404."""
    base = visible(cred)
    if _UUID.match(id_or_name):
        img = session.scalar(base.where(Image.id == id_or_name))
        if img is not None:
            return img
    rows = list(session.scalars(base.where(Image.name == id_or_name).limit(20)))
    if len(rows) > 1:  # prefer the caller's own project, as Cloudpods does
        own = [r for r in rows if r.tenant_id == cred.project_id]
        rows = own if len(own) == 1 else rows
    if len(rows) == 1:
        return rows[0]
    if len(rows) > 1:
        raise InputParameterError(f"image name {id_or_name!r} is ambiguous ({len(rows)} images); use the id")
    raise ResourceNotFoundError(f"image {id_or_name} not found")


def ensure_unique_name(session: Session, tenant_id: str, name: str, exclude: str | None = None) -> None:
    stmt = select(Image.id).where(Image.tenant_id == tenant_id, Image.name == name)
    if exclude:
        stmt = stmt.where(Image.id != exclude)
    if session.scalar(stmt.limit(1)) is not None:
        raise DuplicateNameError(f"an image named {name!r} already exists in this project")


def owner_project(cred: Credential) -> tuple[str, str]:
    """The tenant that owns what this caller creates."""
    if cred.scope != "project" or not cred.project_id:
        raise InputParameterError("creating an image needs a project-scoped token")
    return cred.project_id, cred.project_domain_id or ""


# ---- quota ---------------------------------------------------------------------------------------
def quota_bytes(session: Session, tenant_id: str, cfg: GlanceConfig) -> int:
    row = session.get(ImageQuota, tenant_id)
    return row.max_bytes if row is not None else cfg.project_quota_bytes


def used_bytes(session: Session, tenant_id: str, exclude: str | None = None) -> int:
    size = func.coalesce(Image.size, Image.upload_total, 0)
    stmt = select(func.coalesce(func.sum(size), 0)).where(Image.tenant_id == tenant_id,
                                                          Image.status.in_((ACTIVE, SAVING)))
    if exclude:
        stmt = stmt.where(Image.id != exclude)
    sub = select(func.coalesce(func.sum(ImageSubformat.size), 0)).join(Image, Image.id == ImageSubformat.image_id) \
        .where(Image.tenant_id == tenant_id)
    return int(session.scalar(stmt) or 0) + int(session.scalar(sub) or 0)


def room_for(session: Session, img: Image, cfg: GlanceConfig) -> int | None:
    """Bytes this image may still take under its project's quota (None = unlimited)."""
    q = quota_bytes(session, img.tenant_id, cfg)
    if q <= 0:
        return None
    return max(0, q - used_bytes(session, img.tenant_id, exclude=img.id))


def check_quota(session: Session, img: Image, cfg: GlanceConfig, need: int) -> None:
    room = room_for(session, img, cfg)
    if room is not None and need > room:
        raise OutOfQuotaError(f"image quota exceeded: {need} bytes needed, {room} bytes left in project")


# ---- upload ownership (one writer per image, across replicas) --------------------------------------
STALE_AFTER = timedelta(minutes=5)


def take_upload(session: Session, image_id: str, owner: str, statuses: tuple[str, ...]) -> bool:
    """Compare-and-set the uploader: free, or held by an upload silent for STALE_AFTER."""
    now = utcnow()
    res = session.execute(
        update(Image).where(Image.id == image_id, Image.status.in_(statuses),
                            or_(Image.upload_owner.is_(None), Image.updated_at < now - STALE_AFTER))
        .values(upload_owner=owner, status=SAVING, updated_at=now, fail_reason="")
        .execution_options(synchronize_session=False))
    return bool(res.rowcount)  # type: ignore[attr-defined]


# ---- wire shapes ---------------------------------------------------------------------------------
def upload_offset(img: Image, store: ImageStore) -> int:
    return store.staged_size(img.id) if img.status == SAVING else (img.size or 0 if img.status == ACTIVE else 0)


def to_v1(img: Image, store: ImageStore | None = None,
          subformats: list[ImageSubformat] | None = None) -> dict[str, Any]:
    """Cloudpods' image object (glance v1 fields plus Cloudpods' own)."""
    out: dict[str, Any] = {
        "id": img.id, "name": img.name, "description": img.description, "status": img.status,
        "disk_format": img.disk_format, "container_format": img.container_format,
        "size": img.size, "virtual_size": img.virtual_size, "checksum": img.checksum,
        "os_hash_algo": img.os_hash_algo, "os_hash_value": img.os_hash_value,
        "min_disk": img.min_disk, "min_ram": img.min_ram, "protected": img.protected,
        "is_public": img.is_public, "public_scope": "system" if img.is_public else "none",
        "tenant_id": img.tenant_id, "owner": img.tenant_id, "domain_id": img.domain_id,
        "properties": dict(img.properties or {}),
        "created_at": iso(img.created_at), "updated_at": iso(img.updated_at),
    }
    for k in OS_PROPERTIES:
        if k in out["properties"]:
            out[k] = out["properties"][k]
    if img.status == SAVING and store is not None:
        out["upload_offset"] = store.staged_size(img.id)
        out["upload_total"] = img.upload_total
    if img.fail_reason:
        out["fail_reason"] = img.fail_reason
    if subformats is not None:
        out["subformats"] = [{"format": s.format, "status": s.status, "size": s.size, "checksum": s.checksum}
                             for s in subformats]
    return out


V2_CORE = {"id", "name", "status", "visibility", "protected", "disk_format", "container_format", "size",
           "virtual_size", "checksum", "os_hash_algo", "os_hash_value", "min_disk", "min_ram", "owner",
           "created_at", "updated_at", "tags", "self", "file", "schema", "os_hidden", "direct_url", "locations"}
V2_STATUS = {"queued": "queued", "saving": "saving", "active": "active", "killed": "killed"}


def _v2_time(dt: datetime | None) -> str | None:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ") if dt else None


def to_v2(img: Image) -> dict[str, Any]:
    """Glance v2's image: custom properties flattened at the top level, min_disk in GB."""
    out: dict[str, Any] = {k: v for k, v in (img.properties or {}).items() if k not in V2_CORE}
    out.update({
        "id": img.id, "name": img.name, "status": V2_STATUS.get(img.status, img.status),
        "visibility": "public" if img.is_public else "private", "protected": img.protected,
        "disk_format": img.disk_format, "container_format": img.container_format,
        "size": img.size, "virtual_size": img.virtual_size, "checksum": img.checksum,
        "os_hash_algo": img.os_hash_algo, "os_hash_value": img.os_hash_value,
        "min_disk": math.ceil(img.min_disk / 1024) if img.min_disk else 0, "min_ram": img.min_ram,
        "owner": img.tenant_id, "os_hidden": False, "tags": [],
        "created_at": _v2_time(img.created_at), "updated_at": _v2_time(img.updated_at),
        "self": f"/v2/images/{img.id}", "file": f"/v2/images/{img.id}/file", "schema": "/v2/schemas/image",
    })
    if img.description:
        out.setdefault("description", img.description)
    return out


def v1_headers(img: Image) -> dict[str, str]:
    """HEAD /v1/images/<id>: metadata as ``X-Image-Meta-*`` headers (glance v1 / Cloudpods)."""
    from urllib.parse import quote

    h = {
        "x-image-meta-id": img.id, "x-image-meta-name": quote(img.name), "x-image-meta-status": img.status,
        "x-image-meta-disk_format": img.disk_format or "", "x-image-meta-container_format": img.container_format,
        "x-image-meta-size": str(img.size or 0), "x-image-meta-checksum": img.checksum or "",
        "x-image-meta-min_disk": str(img.min_disk), "x-image-meta-min_ram": str(img.min_ram),
        "x-image-meta-protected": str(img.protected), "x-image-meta-is_public": str(img.is_public),
        "x-image-meta-owner": img.tenant_id, "x-image-meta-created_at": iso(img.created_at) or "",
        "x-image-meta-updated_at": iso(img.updated_at) or "",
    }
    if img.virtual_size is not None:
        h["x-image-meta-virtual_size"] = str(img.virtual_size)
    for k, v in (img.properties or {}).items():
        h[f"x-image-meta-property-{k}"] = quote(str(v))
    return h
