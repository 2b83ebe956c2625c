"""Cloudpods' image API (``/api/s/image/v1``): JSON or ``X-Image-Meta-*`` headers, octet-stream data.

    POST   /images                 JSON {"image": {...}} → queued; or octet-stream body + X-Image-Meta-*
    PUT    /images/<id>            octet-stream data (Content-Range for resumable chunks) or JSON update
    HEAD   /images/<id>            metadata as X-Image-Meta-* headers
    GET    /images/<id>            JSON; the bytes with ?download=true, ?format=<fmt> or Accept: octet-stream
    GET    /images/<id>/download   the bytes (Range supported)
    GET    /images[/detail]        list; DELETE /images/<id>; POST /images/<id>/public|private
    GET|PUT /image_quotas/<project> image bytes quota
"""
from __future__ import annotations

from typing import Any
from urllib.parse import unquote

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from core.api.deps import CredentialDep, SessionDep
from core.api.listing import ListDep, paginate
from core.api.tags import tag_filter
from core.errors import ActionNotFoundError, InputParameterError, ResourceNotFoundError
from core.glance.context import GlanceCtx, glance_ctx
from core.glance.dbutil import begin_write, write_session
from core.glance.images import (
    check_size_field,
    get_visible,
    owner_of,
    quota_bytes,
    read_target,
    to_v1,
    used_bytes,
    v1_headers,
    visible,
)
from core.glance.intake import UploadRequest, content_length_of, parse_content_range, receive
from core.glance.jsonbody import read_json
from core.glance.models import QUEUED, Image, ImageQuota
from core.glance.ops import (
    ImageFields,
    create_image,
    delete_image,
    download_response,
    parse_fields,
    set_public,
    subformats_of,
    update_image,
)
from core.keystone.policy import enforce

router = APIRouter(prefix="/v1", tags=["image"])


def _is_json(request: Request) -> bool:
    return request.headers.get("content-type", "").split(";")[0].strip().lower() in ("application/json", "text/json")


def _has_body(request: Request) -> bool:
    cl = request.headers.get("content-length")
    return (cl is not None and cl.strip() != "0") or "chunked" in request.headers.get("transfer-encoding", "").lower()


def meta_from_headers(request: Request) -> dict[str, Any]:
    """``X-Image-Meta-Name: x`` → ``{"name": "x"}``; ``X-Image-Meta-Property-Os_type`` → properties."""
    raw: dict[str, Any] = {}
    props: dict[str, str] = {}
    for k, v in request.headers.items():
        if not k.startswith("x-image-meta-"):
            continue
        rest, val = k[len("x-image-meta-"):], unquote(v)
        if rest.startswith("property-"):
            props[rest[len("property-"):].replace("-", "_")] = val
        else:
            raw[rest.replace("-", "_")] = val
    if props:
        raw["properties"] = props
    return raw


async def _json_body(request: Request, key: str = "image") -> dict[str, Any]:
    body = await read_json(request)
    if isinstance(body, dict) and isinstance(body.get(key), dict):
        body = body[key]
    if not isinstance(body, dict):
        raise InputParameterError(f"body must be a JSON object (optionally wrapped as {{\"{key}\": {{...}}}})")
    return body


def _upload_request(request: Request, image_id: str, f: ImageFields) -> UploadRequest:
    return UploadRequest(image_id, declared_format=f.values.get("disk_format"), declared_size=f.declared_size,
                         content_length=content_length_of(request),
                         crange=parse_content_range(request.headers.get("content-range")))


def _shown(ctx: GlanceCtx, img: Image) -> dict[str, Any]:
    return {"image": to_v1(img, ctx.store)}


def _drop_if_queued(ctx: GlanceCtx, image_id: str) -> None:
    with write_session(ctx.db) as s:
        img = s.get(Image, image_id)
        if img is not None and img.status == QUEUED:
            s.delete(img)


# ---- list / show -----------------------------------------------------------------------------------
@router.get("/images")
@router.get("/images/detail")
def list_images(request: Request, session: SessionDep, cred: CredentialDep, q: ListDep) -> dict[str, Any]:
    enforce(cred, "image:images:list")
    ctx = glance_ctx(request.app)
    stmt = visible(cred, q.scope)
    for key in ("status", "disk_format", "name"):
        val = q.get(key)
        if val:
            stmt = stmt.where(getattr(Image, key) == val)
    owner = q.get("owner") or q.get("tenant") or q.get("project") or q.get("project_id")
    if owner:
        stmt = stmt.where(Image.tenant_id == owner)
    pub = q.get_bool("is_public")
    if pub is not None:
        stmt = stmt.where(Image.is_public.is_(pub))
    stmt = tag_filter(stmt, Image, q, "properties")  # Cloudpods' --tags/--no-tags: an image's are its properties
    page = paginate(session, stmt, Image, q, searchable=("name", "description"))
    items = [to_v1(i, ctx.store) for i in page.rows]
    if q.fields:  # Cloudpods' --field: only these keys of each image
        items = [{k: v for k, v in it.items() if k in q.fields} for it in items]
    return page.envelope("images", items)


@router.head("/images/{image_id}")
def head_image(request: Request, image_id: str, session: SessionDep, cred: CredentialDep) -> Response:
    img = get_visible(session, cred, image_id)
    enforce(cred, "image:images:get", read_target(img))
    return Response(status_code=200, headers=v1_headers(img))


@router.get("/images/{image_id}")
async def get_image(request: Request, image_id: str, session: SessionDep, cred: CredentialDep) -> Any:
    ctx = glance_ctx(request.app)
    qp = request.query_params
    from core.api.listing import parse_bool

    wants_bytes = bool(parse_bool(qp.get("download"), "download", False)) or bool(qp.get("format")) or \
        request.headers.get("accept", "").startswith("application/octet-stream")
    img = await anyio.to_thread.run_sync(get_visible, session, cred, image_id)
    if wants_bytes:
        return await download_response(ctx, request, session, cred, img, qp.get("format"), v1_headers(img))
    enforce(cred, "image:images:get", read_target(img))
    subs = await anyio.to_thread.run_sync(subformats_of, session, img.id)
    return {"image": to_v1(img, ctx.store, subs)}


@router.get("/images/{image_id}/download")
async def download_image(request: Request, image_id: str, session: SessionDep, cred: CredentialDep) -> Any:
    ctx = glance_ctx(request.app)
    img = await anyio.to_thread.run_sync(get_visible, session, cred, image_id)
    return await download_response(ctx, request, session, cred, img, request.query_params.get("format"),
                                   v1_headers(img))


# ---- create / upload / update ----------------------------------------------------------------------
@router.post("/images", status_code=201)
async def create(request: Request, session: SessionDep, cred: CredentialDep) -> Any:
    ctx = glance_ctx(request.app)
    if _is_json(request):
        f = parse_fields(await _json_body(request))

        def work() -> Image:
            img = create_image(session, cred, f)
            session.commit()
            return img

        img = await anyio.to_thread.run_sync(work)
        return JSONResponse(_shown(ctx, img), status_code=201)
    f = parse_fields(meta_from_headers(request))
    if not f.values.get("name"):
        raise InputParameterError("X-Image-Meta-Name is required")
    if not _has_body(request):
        raise InputParameterError("the image is empty (0 bytes); send data, or create with a JSON body "
                                  "to upload later")

    def make() -> str:
        enforce(cred, "image:images:upload")
        img = create_image(session, cred, f)
        session.commit()
        return img.id

    image_id = await anyio.to_thread.run_sync(make)
    try:
        img, _done = await receive(ctx, request, _upload_request(request, image_id, f), cred)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(_drop_if_queued, ctx, image_id)  # refused before any byte
        raise
    return JSONResponse(_shown(ctx, img), status_code=201)


@router.put("/images/{image_id}")
async def put_image(request: Request, image_id: str, session: SessionDep, cred: CredentialDep) -> Any:
    ctx = glance_ctx(request.app)
    if _is_json(request):
        return await _update(request, ctx, session, cred, image_id, parse_fields(await _json_body(request)))
    f = parse_fields(meta_from_headers(request))
    if not _has_body(request) and "content-range" not in request.headers:
        return await _update(request, ctx, session, cred, image_id, f)

    def prepare() -> str:
        img = get_visible(session, cred, image_id)
        enforce(cred, "image:images:upload", owner_of(img))
        meta = ImageFields({k: v for k, v in f.values.items() if k != "disk_format"}, f.properties)
        if meta.values or meta.properties:
            update_image(session, cred, img, meta)
        session.commit()
        return img.id

    real_id = await anyio.to_thread.run_sync(prepare)
    img, _done = await receive(ctx, request, _upload_request(request, real_id, f), cred)
    return _shown(ctx, img)


@router.patch("/images/{image_id}")
async def patch_image(request: Request, image_id: str, session: SessionDep, cred: CredentialDep) -> Any:
    ctx = glance_ctx(request.app)
    return await _update(request, ctx, session, cred, image_id, parse_fields(await _json_body(request)))


async def _update(request: Request, ctx: GlanceCtx, session: Any, cred: Any, image_id: str,
                  f: ImageFields) -> dict[str, Any]:
    def work() -> Image:
        img = get_visible(session, cred, image_id)
        update_image(session, cred, img, f)
        session.commit()
        return img

    return _shown(ctx, await anyio.to_thread.run_sync(work))


@router.delete("/images/{image_id}")
def remove(request: Request, image_id: str, session: SessionDep, cred: CredentialDep) -> dict[str, Any]:
    ctx = glance_ctx(request.app)
    img = get_visible(session, cred, image_id)
    shown = to_v1(img)
    delete_image(ctx, session, cred, img)
    shown["status"] = "deleted"
    return {"image": shown}


@router.post("/images/{image_id}/{action}")
def image_action(request: Request, image_id: str, action: str, session: SessionDep,
                 cred: CredentialDep) -> dict[str, Any]:
    ctx = glance_ctx(request.app)
    if action not in ("public", "private"):
        raise ActionNotFoundError(f"image action {action!r} not found (public, private)")
    img = get_visible(session, cred, image_id)
    set_public(session, cred, img, action == "public")
    session.commit()
    return _shown(ctx, img)


# ---- quotas --------------------------------------------------------------------------------------
# Cloudpods' quota paths: GET /image_quotas (the caller's project), /image_quotas/projects (every
# project with its own limit), /image_quotas[/projects]/<project>; set with POST there or PUT.
def _quota_row(session: Any, ctx: GlanceCtx, tenant: str) -> dict[str, Any]:
    return {"tenant_id": tenant, "max_bytes": quota_bytes(session, tenant, ctx.cfg),
            "used_bytes": used_bytes(session, tenant)}


def _quota_dict(session: Any, ctx: GlanceCtx, tenant: str) -> dict[str, Any]:
    row = _quota_row(session, ctx, tenant)
    return {"image_quota": row, "image_quotas": [row]}


def _project_id(session: Any, cred: Any, ref: str, action: str) -> str:
    """A project by id or name (Cloudpods' quota paths take either), checked against ``action``;
    an unknown one is a 404 only for callers who may act on any project (others get the 403
    an existing foreign project gives)."""
    from sqlalchemy import select

    from core.keystone.models import Project

    row = session.get(Project, ref) or session.scalar(select(Project).where(Project.name == ref).limit(1))
    enforce(cred, action, {"project_id": row.id if row is not None else ref})
    if row is None:
        raise ResourceNotFoundError(f"project {ref} not found")
    return str(row.id)


@router.get("/image_quotas")
def get_own_quota(request: Request, session: SessionDep, cred: CredentialDep) -> dict[str, Any]:
    if not cred.project_id:
        raise InputParameterError("project: required with a token that is not project-scoped")
    enforce(cred, "image:quotas:get", {"project_id": cred.project_id})
    return _quota_dict(session, glance_ctx(request.app), cred.project_id)


@router.get("/image_quotas/projects")
def list_quotas(request: Request, session: SessionDep, cred: CredentialDep) -> dict[str, Any]:
    from sqlalchemy import select

    enforce(cred, "image:quotas:update")  # every project's: the admins who may set them
    ctx = glance_ctx(request.app)
    ids = list(session.scalars(select(ImageQuota.tenant_id).order_by(ImageQuota.tenant_id).limit(2048)))
    items = [_quota_row(session, ctx, t) for t in ids]
    return {"image_quotas": items, "total": len(items)}


@router.get("/image_quotas/projects/{project_id}")
@router.get("/image_quotas/{project_id}")
def get_quota(request: Request, project_id: str, session: SessionDep, cred: CredentialDep) -> dict[str, Any]:
    project_id = _project_id(session, cred, project_id, "image:quotas:get")
    return _quota_dict(session, glance_ctx(request.app), project_id)


@router.post("/image_quotas/projects/{project_id}")
@router.post("/image_quotas/{project_id}")
@router.put("/image_quotas/{project_id}")
async def set_quota(request: Request, project_id: str, session: SessionDep, cred: CredentialDep) -> dict[str, Any]:
    project_id = await anyio.to_thread.run_sync(_project_id, session, cred, project_id, "image:quotas:update")
    raw = await read_json(request)
    key = "image_quotas" if isinstance(raw, dict) and isinstance(raw.get("image_quotas"), dict) else "image_quota"
    body = raw.get(key) if isinstance(raw, dict) and isinstance(raw.get(key), dict) else raw
    if not isinstance(body, dict):
        raise InputParameterError('body must be a JSON object (optionally wrapped as {"image_quota": {...}})')
    max_bytes = check_size_field(body.get("max_bytes"), "max_bytes")
    ctx = glance_ctx(request.app)

    def work() -> dict[str, Any]:
        from core.keystone.models import Project

        begin_write(session)
        if session.get(Project, project_id) is None:
            raise ResourceNotFoundError(f"project {project_id} not found")
        row = session.get(ImageQuota, project_id)
        if row is None:
            session.add(ImageQuota(tenant_id=project_id, max_bytes=max_bytes))
        else:
            row.max_bytes = max_bytes
        from core import audit

        audit.record(session, cred, service="image", action="set-quota", obj_type="image_quota", obj_id=project_id,
                     notes=f"max_bytes={max_bytes}")
        session.commit()
        return _quota_dict(session, ctx, project_id)

    return await anyio.to_thread.run_sync(work)




@router.get("/usages")
def usages(request: Request, session: SessionDep, cred: CredentialDep) -> dict[str, Any]:
    """Image count and bytes: the caller's project, or the whole store for a system-scoped token."""
    from sqlalchemy import func, select

    from core.glance.models import ACTIVE

    enforce(cred, "image:quotas:get", {"project_id": cred.project_id} if cred.project_id else None)
    whole = cred.scope == "system"
    where = [Image.status == ACTIVE] + ([] if whole else [Image.tenant_id == cred.project_id])
    n, size = session.execute(select(func.count(), func.coalesce(func.sum(Image.size), 0)).where(*where)).one()
    return {"usage": {"images": int(n), "image_size": int(size)}}
