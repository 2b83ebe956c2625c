"""OpenStack Glance v2 (``/api/s/image/v2``), enough for python-openstackclient / openstacksdk:
create, upload (``PUT .../file``), show, list with marker paging, JSON-patch update, download, delete."""
from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import urlencode

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from sqlalchemy import and_, or_

from core.api.deps import CredentialDep, SessionDep
from core.api.inputs import INT64_MAX, int64
from core.api.listing import MAX_LIMIT, parse_bool
from core.errors import CloudpodsError, InputParameterError
from core.glance.context import glance_ctx
from core.glance.images import check_size_field, get_visible, owner_of, read_target, to_v2, visible
from core.glance.intake import UploadRequest, content_length_of, parse_content_range, receive
from core.glance.jsonbody import read_json
from core.glance.models import Image
from core.glance.ops import (
    ImageFields,
    create_image,
    delete_image,
    download_response,
    parse_fields,
    update_image,
)
from core.keystone.policy import enforce


class _V2Route(APIRoute):
    """Errors also carry ``message``: openstacksdk shows that key (our flat shape says ``details``)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        inner = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                return await inner(request)
            except CloudpodsError as e:
                e.extra.setdefault("message", e.details)
                raise

        return handler


router = APIRouter(prefix="/v2", tags=["image"], route_class=_V2Route)
SORT_KEYS = ("created_at", "updated_at", "name", "size", "status", "disk_format", "id")
_CORE_PATCH = {"name", "visibility", "protected", "min_disk", "min_ram", "disk_format", "container_format",
               "description"}
_READ_ONLY = {"id", "status", "checksum", "size", "virtual_size", "owner", "created_at", "updated_at", "self",
              "file", "schema", "os_hash_algo", "os_hash_value", "direct_url", "locations"}


def _v2_fields(body: dict[str, Any]) -> ImageFields:
    body = dict(body)
    if "min_disk" in body and body["min_disk"] is not None:  # Glance counts GB; we keep MB
        body["min_disk"] = check_size_field(body["min_disk"], "min_disk", hi=INT64_MAX // 1024) * 1024
    body.pop("tags", None)
    return parse_fields(body, extra_as_properties=True)


@router.get("/images")
def list_images(request: Request, session: SessionDep, cred: CredentialDep) -> dict[str, Any]:
    enforce(cred, "image:images:list")
    qp = request.query_params
    limit = min(int64(qp.get("limit") or 25, "limit", lo=1), MAX_LIMIT)
    key = qp.get("sort_key") or "created_at"
    direction = (qp.get("sort_dir") or "desc").lower()
    if qp.get("sort"):  # new-style sort=name:asc
        key, _, d = qp["sort"].split(",")[0].partition(":")
        direction = d or "desc"
    if key not in SORT_KEYS or direction not in ("asc", "desc"):
        raise InputParameterError(f"cannot sort by {key}:{direction}")
    stmt = visible(cred)
    for k in ("name", "status", "disk_format", "container_format"):
        if qp.get(k):
            stmt = stmt.where(getattr(Image, k) == qp[k])
    if qp.get("owner"):
        stmt = stmt.where(Image.tenant_id == qp["owner"])
    vis = qp.get("visibility")
    if vis in ("public", "private"):
        stmt = stmt.where(Image.is_public.is_(vis == "public"))
    if qp.get("protected"):
        stmt = stmt.where(Image.protected.is_(bool(parse_bool(qp["protected"], "protected"))))
    col = getattr(Image, key)
    if qp.get("marker"):
        m = session.scalar(visible(cred).where(Image.id == qp["marker"]))
        if m is None:
            raise InputParameterError(f"marker {qp['marker']} not found")
        mv = getattr(m, key)
        if direction == "desc":
            stmt = stmt.where(or_(col < mv, and_(col == mv, Image.id < m.id)))
        else:
            stmt = stmt.where(or_(col > mv, and_(col == mv, Image.id > m.id)))
    stmt = stmt.order_by(col.desc() if direction == "desc" else col.asc(),
                         Image.id.desc() if direction == "desc" else Image.id.asc())
    rows = list(session.scalars(stmt.limit(limit + 1)))
    out: dict[str, Any] = {"images": [to_v2(i) for i in rows[:limit]], "first": "/v2/images",
                           "schema": "/v2/schemas/images"}
    if len(rows) > limit:
        params = {k: v for k, v in qp.items() if k != "marker"}
        params.update({"marker": rows[limit - 1].id, "limit": str(limit)})
        out["next"] = "/v2/images?" + urlencode(params)
    return out


@router.post("/images", status_code=201)
async def create(request: Request, session: SessionDep, cred: CredentialDep) -> Any:
    body = await read_json(request)
    if not isinstance(body, dict):
        raise InputParameterError("body must be a JSON object")
    f = _v2_fields(body)

    def work() -> Image:
        img = create_image(session, cred, f)
        session.commit()
        return img

    img = await anyio.to_thread.run_sync(work)
    return JSONResponse(to_v2(img), status_code=201, headers={"Location": f"/v2/images/{img.id}"})


@router.get("/images/{image_id}")
def show(image_id: str, session: SessionDep, cred: CredentialDep) -> dict[str, Any]:
    img = get_visible(session, cred, image_id)
    enforce(cred, "image:images:get", read_target(img))
    return to_v2(img)


@router.patch("/images/{image_id}")
async def patch(request: Request, image_id: str, session: SessionDep, cred: CredentialDep) -> Any:
    ops = await read_json(request)
    if not isinstance(ops, list):
        raise InputParameterError("body must be a JSON-patch list of operations")

    def work() -> dict[str, Any]:
        img = get_visible(session, cred, image_id)
        enforce(cred, "image:images:update", owner_of(img))
        changes: dict[str, Any] = {}
        remove: list[str] = []
        for op in ops:
            if not isinstance(op, dict) or op.get("op") not in ("add", "replace", "remove") \
                    or not isinstance(op.get("path"), str) or not op["path"].startswith("/"):
                raise InputParameterError(f"unsupported patch operation {op!r}")
            attr = op["path"][1:].replace("~1", "/").replace("~0", "~")
            if attr in _READ_ONLY:
                raise InputParameterError(f"attribute {attr} is read-only")
            if attr == "tags":
                continue
            if op["op"] == "remove":
                if attr in _CORE_PATCH:
                    raise InputParameterError(f"attribute {attr} cannot be removed")
                if attr not in (img.properties or {}):
                    raise InputParameterError(f"property {attr} does not exist")
                remove.append(attr)
            else:
                if "value" not in op:
                    raise InputParameterError(f"patch {op['op']} {op['path']} needs a value")
                changes[attr] = op["value"]
        f = _v2_fields(changes)
        f.remove_properties = remove
        update_image(session, cred, img, f)
        session.commit()
        return to_v2(img)

    return await anyio.to_thread.run_sync(work)


@router.delete("/images/{image_id}", status_code=204)
def remove(request: Request, image_id: str, session: SessionDep, cred: CredentialDep) -> Response:
    img = get_visible(session, cred, image_id)
    delete_image(glance_ctx(request.app), session, cred, img)
    return Response(status_code=204)


@router.put("/images/{image_id}/file", status_code=204)
async def upload(request: Request, image_id: str, session: SessionDep, cred: CredentialDep) -> Response:
    ctx = glance_ctx(request.app)

    def prepare() -> str:
        img = get_visible(session, cred, image_id)
        enforce(cred, "image:images:upload", owner_of(img))
        session.commit()
        return img.id

    real_id = await anyio.to_thread.run_sync(prepare)
    req = UploadRequest(real_id, content_length=content_length_of(request),
                        crange=parse_content_range(request.headers.get("content-range")))
    await receive(ctx, request, req, cred)
    return Response(status_code=204)


@router.get("/images/{image_id}/file")
async def download(request: Request, image_id: str, session: SessionDep, cred: CredentialDep) -> Any:
    ctx = glance_ctx(request.app)
    img = await anyio.to_thread.run_sync(get_visible, session, cred, image_id)
    if img.status in ("queued", "saving", "killed"):
        enforce(cred, "image:images:download", read_target(img))
        return Response(status_code=204)  # Glance: no data yet
    return await download_response(ctx, request, session, cred, img, request.query_params.get("format"))


@router.get("/schemas/image")
def image_schema() -> dict[str, Any]:
    strings = ("id", "name", "status", "visibility", "disk_format", "container_format", "checksum", "owner",
               "created_at", "updated_at", "os_hash_algo", "os_hash_value")
    props: dict[str, Any] = {k: {"type": ["null", "string"]} for k in strings}
    props.update({k: {"type": ["null", "integer"]} for k in ("size", "virtual_size", "min_disk", "min_ram")})
    props["protected"] = {"type": "boolean"}
    props["tags"] = {"type": "array", "items": {"type": "string"}}
    return {"name": "image", "properties": props, "additionalProperties": {"type": "string"},
            "links": [{"rel": "self", "href": "{self}"}, {"rel": "enclosure", "href": "{file}"},
                      {"rel": "describedby", "href": "{schema}"}]}


@router.get("/schemas/images")
def images_schema() -> dict[str, Any]:
    return {"name": "images", "properties": {"images": {"type": "array", "items": image_schema()},
                                             "schema": {"type": "string"}, "first": {"type": "string"},
                                             "next": {"type": "string"}},
            "links": [{"rel": "first", "href": "{first}"}, {"rel": "next", "href": "{next}"},
                      {"rel": "describedby", "href": "{schema}"}]}


