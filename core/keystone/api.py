"""Keystone v3 routes (``/api/s/identity/v3``): version, tokens, catalog."""
from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import select

from core.api.context import Credential
from core.api.deps import CredentialDep, SessionDep
from core.api.listing import ListDep, paginate
from core.errors import InputParameterError, ResourceNotFoundError, UnauthorizedError
from core.keystone.catalog import build_catalog
from core.keystone.models import Endpoint, Service
from core.keystone.policy import enforce

router = APIRouter(tags=["identity"])


def iso(dt: datetime | None) -> str | None:
    if dt is None:
        return None
    return dt.isoformat(timespec="microseconds").replace("+00:00", "Z")


def _link(request: Request, path: str = "") -> str:
    return str(request.base_url).rstrip("/") + "/api/s/identity/v3" + path


@router.get("")
@router.get("/")
def version_document(request: Request) -> dict[str, Any]:
    return {"version": {
        "id": "v3.14", "status": "stable", "updated": "2020-04-07T00:00:00Z",
        "links": [{"rel": "self", "href": _link(request, "/")}],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}],
    }}


def token_body(cred: Credential, catalog: list[dict[str, Any]] | None) -> dict[str, Any]:
    tok: dict[str, Any] = {
        "methods": list(cred.methods),
        "user": {"id": cred.user_id, "name": cred.user_name,
                 "domain": {"id": cred.user_domain_id, "name": cred.user_domain_name},
                 "password_expires_at": None},
        "audit_ids": [cred.audit_id, *cred.audit_chain],
        "expires_at": iso(cred.expires_at),
        "issued_at": iso(cred.issued_at),
    }
    if cred.scope == "project":
        tok["project"] = {"id": cred.project_id, "name": cred.project_name,
                          "domain": {"id": cred.project_domain_id, "name": cred.project_domain_name}}
        tok["is_domain"] = False
    elif cred.scope == "domain":
        tok["domain"] = {"id": cred.domain_id, "name": cred.domain_name}
    elif cred.scope == "system":
        tok["system"] = {"all": True}
    if cred.scope != "unscoped":
        tok["roles"] = [{"id": i, "name": n} for i, n in zip(cred.role_ids, cred.roles, strict=True)]
        if catalog is not None:
            tok["catalog"] = catalog
    return {"token": tok}


@router.post("/auth/tokens")
async def issue_token(request: Request) -> JSONResponse:
    try:
        body = json.loads(await request.body() or b"null")
    except (ValueError, UnicodeDecodeError):
        raise InputParameterError("malformed JSON body") from None
    if not isinstance(body, dict):
        raise InputParameterError("body must be a JSON object with an `auth` key")
    db = request.app.state.db

    def work() -> tuple[str, dict[str, Any]]:
        with db.session() as s:
            token, cred = request.app.state.auth.login(s, body)
            nocatalog = "nocatalog" in request.query_params
            return token, token_body(cred, None if nocatalog else build_catalog(s))

    from starlette.concurrency import run_in_threadpool

    token, reply = await run_in_threadpool(work)  # the password hash is CPU-bound: keep the loop free
    # Keystone answers 201; Cloudpods' Go SDK insists on 200 (API.md §2).
    status = 200 if request.headers.get("user-agent", "").startswith("yunioncloud-go") else 201
    return JSONResponse(reply, status_code=status, headers={"X-Subject-Token": token})


def _subject(request: Request, session: SessionDep, cred: Credential) -> Credential:
    subject = request.headers.get("x-subject-token")
    if not subject:
        raise InputParameterError("X-Subject-Token header is required")
    if subject == cred.token:
        return cred
    try:
        return request.app.state.auth.validate(session, subject)
    except UnauthorizedError as e:
        raise ResourceNotFoundError(f"token not found: {e.details}") from None


@router.get("/auth/tokens")
def validate_token(request: Request, session: SessionDep, cred: CredentialDep) -> JSONResponse:
    subject = _subject(request, session, cred)
    if subject.user_id != cred.user_id:
        enforce(cred, "identity:tokens:validate")
    catalog = None if "nocatalog" in request.query_params else build_catalog(session)
    return JSONResponse(token_body(subject, catalog), headers={"X-Subject-Token": subject.token})


@router.head("/auth/tokens")
def check_token(request: Request, session: SessionDep, cred: CredentialDep) -> Response:
    subject = _subject(request, session, cred)
    if subject.user_id != cred.user_id:
        enforce(cred, "identity:tokens:validate")
    return Response(status_code=200, headers={"X-Subject-Token": subject.token})


@router.delete("/auth/tokens", status_code=204)
def revoke_token(request: Request, session: SessionDep, cred: CredentialDep) -> Response:
    subject = _subject(request, session, cred)
    if subject.user_id != cred.user_id:
        enforce(cred, "identity:tokens:revoke")
    request.app.state.auth.revoke(session, subject)
    return Response(status_code=204)


@router.get("/auth/catalog")
def get_catalog(request: Request, session: SessionDep, cred: CredentialDep) -> dict[str, Any]:
    return {"catalog": build_catalog(session), "links": {"self": _link(request, "/auth/catalog")}}


def service_dict(s: Service, request: Request) -> dict[str, Any]:
    return {"id": s.id, "type": s.type, "name": s.name, "description": s.description, "enabled": s.enabled,
            "links": {"self": _link(request, f"/services/{s.id}")}}


@router.get("/services")
def list_services(request: Request, session: SessionDep, cred: CredentialDep, q: ListDep) -> dict[str, Any]:
    enforce(cred, "identity:services:list")
    stmt = select(Service)
    if q.get("type"):
        stmt = stmt.where(Service.type == q.get("type"))
    if q.get("name"):
        stmt = stmt.where(Service.name == q.get("name"))
    q.order = "asc"
    q.order_by = q.order_by or ["type"]
    page = paginate(session, stmt, Service, q)
    return {"services": [service_dict(s, request) for s in page.rows],
            "links": {"self": _link(request, "/services"), "next": None, "previous": None},
            "total": page.total}


@router.get("/endpoints")
def list_endpoints(request: Request, session: SessionDep, cred: CredentialDep, q: ListDep) -> dict[str, Any]:
    enforce(cred, "identity:endpoints:list")
    stmt = select(Endpoint).join(Service, Service.id == Endpoint.service_id)
    for key, col in (("interface", Endpoint.interface), ("service_id", Endpoint.service_id),
                     ("region_id", Endpoint.region_id)):
        if q.get(key):
            stmt = stmt.where(col == q.get(key))
    q.order = "asc"
    q.order_by = q.order_by or ["url"]
    page = paginate(session, stmt, Endpoint, q)
    services = {s.id: s for s in session.scalars(select(Service))}
    items = []
    for e in page.rows:
        svc = services.get(e.service_id)
        items.append({"id": e.id, "interface": e.interface, "region": e.region_id, "region_id": e.region_id,
                      "url": e.url, "enabled": e.enabled, "service_id": e.service_id,
                      "service_name": svc.name if svc else "", "service_type": svc.type if svc else "",
                      "links": {"self": _link(request, f"/endpoints/{e.id}")}})
    return {"endpoints": items, "links": {"self": _link(request, "/endpoints"), "next": None, "previous": None},
            "total": page.total}
