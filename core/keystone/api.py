"""Keystone v3 routes (``/api/s/identity/v3``): version, tokens, catalog."""
from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import func, select

from core.api.context import Credential
from core.api.deps import CredentialDep, SessionDep
from core.api.jsonio import json_response
from core.db.base import iso
from core.errors import InputParameterError, ResourceNotFoundError, UnauthorizedError
from core.keystone.assignments import domains_of, projects_of
from core.keystone.auth import KeystoneCredential, role_names_for
from core.keystone.catalog import build_catalog
from core.keystone.models import Domain, Group, Policy, Project, Role, User
from core.keystone.policy import enforce
from core.keystone.routes import (
    actions,
    app_creds,
    catalog,
    credentials,
    domains,
    ec2,
    grants,
    groups,
    policies,
    projects,
    role_assignments,
    roles,
    users,
)
from core.keystone.routes._common import audited, list_reply, visible
from core.keystone.views import domain_view, link, project_view

router = APIRouter(tags=["identity"])


def _v3(request: Request) -> dict[str, Any]:
    return {
        "id": "v3.14", "status": "stable", "updated": "2020-04-07T00:00:00Z",
        "links": [{"rel": "self", "href": link(request, "/")}],
        "media-types": [{"base": "application/json", "type": "application/vnd.openstack.identity-v3+json"}],
    }


@router.get("/")  # the bare /v3 reaches here too (the gateway middleware adds the slash)
def version_document(request: Request) -> dict[str, Any]:
    return {"version": _v3(request)}


# Keystone's version discovery at the identity root (keystoneauth, Tempest and SDKs given an
# unversioned auth URL ask there): 300 Multiple Choices listing the one version served.
discovery_router = APIRouter()


@discovery_router.get("/api/s/identity", include_in_schema=False)
@discovery_router.get("/api/s/identity/", include_in_schema=False)
def versions_document(request: Request) -> JSONResponse:
    return JSONResponse({"versions": {"values": [_v3(request)]}}, status_code=300)


@router.get("/usages")
def identity_usages(session: SessionDep, cred: CredentialDep) -> dict[str, Any]:
    """Counts of what the caller can see (Cloudpods' keystone usage), per identity resource."""
    enforce(cred, "identity:usages:get")
    out: dict[str, int] = {}
    for key, model in (("domains", Domain), ("projects", Project), ("users", User), ("groups", Group),
                       ("roles", Role), ("policies", Policy)):
        out[key] = int(session.scalar(select(func.count()).select_from(model).where(visible(cred, model))) or 0)
    return {"usage": out}


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
        tok["is_admin_project"] = bool(getattr(cred, "is_admin_project", False))
    elif cred.scope == "domain":
        tok["domain"] = {"id": cred.domain_id, "name": cred.domain_name}
    elif cred.scope == "system":
        tok["system"] = {"all": True}
    if isinstance(cred, KeystoneCredential) and cred.app_cred_id:
        tok["application_credential"] = {
            "id": cred.app_cred_id, "name": cred.app_cred_name, "restricted": not cred.app_cred_unrestricted,
            "access_rules": [{"id": i, "service": s, "path": p, "method": m} for i, s, p, m in cred.access_rules]}
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


@router.post("/ec2tokens")
async def ec2_token(request: Request) -> JSONResponse:
    """Keystone's EC2 login: an EC2/S3 front end hands over a signed request; if the stored OS-EC2
    secret gives the same signature, the credential's user gets a token on the credential's project."""
    try:
        body = json.loads(await request.body() or b"null")
    except (ValueError, UnicodeDecodeError):
        raise InputParameterError("malformed JSON body") from None
    db = request.app.state.db

    def work() -> tuple[str, dict[str, Any]]:
        with db.session() as s:
            user_id, project_id = ec2.ec2_login(s, request, body)
            token, cred = request.app.state.auth.issue_project_token(s, user_id, project_id, ("ec2credential",))
            return token, token_body(cred, build_catalog(s))

    from starlette.concurrency import run_in_threadpool

    token, reply = await run_in_threadpool(work)
    return JSONResponse(reply, status_code=200, headers={"X-Subject-Token": token})


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


def _validated(subject: Credential, cred: Credential, catalog: list[dict[str, Any]] | None) -> Response:
    if subject.user_id != cred.user_id:
        enforce(cred, "identity:tokens:validate")
    return json_response(token_body(subject, catalog), headers={"X-Subject-Token": subject.token})


def _validate_reply(request: Request, cred: Credential) -> Response:
    with request.app.state.db.session() as session:
        subject = _subject(request, session, cred)
        return _validated(subject, cred, None if "nocatalog" in request.query_params else build_catalog(session))


@router.get("/auth/tokens")
async def validate_token(request: Request, cred: CredentialDep) -> Response:
    """A service's hottest call. Without a catalog and with the subject token in the validation cache
    nothing is read, so it answers on the event loop with no database session (the thread-pool hop
    was half its CPU, an unused session a fifth of the rest); anything else reads in the pool."""
    tok = request.headers.get("x-subject-token")
    if tok and "nocatalog" in request.query_params:
        subject = cred if tok == cred.token else request.app.state.auth.cached(tok)
        if subject is not None:
            return _validated(subject, cred, None)
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(_validate_reply, request, cred)


@router.head("/auth/tokens")
def check_token(request: Request, session: SessionDep, cred: CredentialDep) -> Response:
    subject = _subject(request, session, cred)
    if subject.user_id != cred.user_id:
        enforce(cred, "identity:tokens:validate")
    return Response(status_code=200, headers={"X-Subject-Token": subject.token})


@router.delete("/auth/tokens", status_code=204)
def revoke_token(request: Request, session: SessionDep, cred: CredentialDep) -> Response:
    with audited(session, cred, "revoke", "token") as a:
        subject = _subject(request, session, cred)
        a.obj_id, a.obj_name = subject.audit_id, subject.user_name  # the audit id, never the token
        if subject.user_id != cred.user_id:
            enforce(cred, "identity:tokens:revoke")
        request.app.state.auth.revoke(session, subject)
    return Response(status_code=204)


@router.get("/auth/catalog")
def get_catalog(request: Request, session: SessionDep, cred: CredentialDep) -> dict[str, Any]:
    return {"catalog": build_catalog(session), "links": {"self": link(request, "/auth/catalog")}}


@router.get("/auth/projects")
def auth_projects(request: Request, session: SessionDep, cred: CredentialDep) -> dict[str, Any]:
    """Projects the caller may scope a token to (works with an unscoped token, as in Keystone)."""
    return list_reply(request, "projects", [project_view(p, request)
                                            for p in projects_of(session, cred.user_id)])


@router.get("/auth/domains")
def auth_domains(request: Request, session: SessionDep, cred: CredentialDep) -> dict[str, Any]:
    return list_reply(request, "domains", [domain_view(d, request)
                                           for d in domains_of(session, cred.user_id)])


@router.get("/auth/system")
def auth_system(request: Request, session: SessionDep, cred: CredentialDep) -> dict[str, Any]:
    system = [{"all": True}] if role_names_for(session, cred.user_id, "system", "all") else []
    return {"system": system, "links": {"self": link(request, "/auth/system")}}


for _sub in (domains, projects, users, groups, roles, grants, role_assignments, catalog, credentials, ec2,
             app_creds, policies, actions):
    router.include_router(_sub.router)
