"""``/v3/domains``: create, list, show, update, delete (disabled and empty first, as Keystone)."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import func, select

from core.api.deps import CredentialDep, SessionDep
from core.api.inputs import check_display_name
from core.api.listing import ListDep
from core.errors import DuplicateNameError, ForbiddenError, InputParameterError, NotEmptyError
from core.keystone.models import Assignment, Domain, Group, Project, Role, User
from core.keystone.policy import enforce
from core.keystone.routes._common import (
    Body,
    audited,
    bool_param,
    exists,
    keystone_page,
    link,
    list_reply,
    lookup,
    visible,
)

router = APIRouter()


class DomainFields(Body):
    name: str | None = None
    description: str | None = None
    enabled: bool | None = None


class DomainCreate(DomainFields):
    name: str


class DomainCreateBody(Body):
    domain: DomainCreate


class DomainUpdateBody(Body):
    domain: DomainFields


def domain_dict(d: Domain, request: Request) -> dict[str, Any]:
    return {"id": d.id, "name": d.name, "description": d.description, "enabled": d.enabled, "tags": [],
            "options": {}, "links": {"self": link(request, f"/domains/{d.id}")}}


def _check_name(session: SessionDep, name: str, exclude: str | None = None) -> None:
    name = name.strip()
    if not name:
        raise InputParameterError("domain name must not be empty")
    check_display_name(name, "domain name")
    stmt = select(Domain.id).where(func.lower(Domain.name) == name.lower())
    if exclude:
        stmt = stmt.where(Domain.id != exclude)
    if exists(session, stmt):
        raise DuplicateNameError(f"Duplicate entry: a domain named {name!r} already exists.")


@router.post("/domains", status_code=201)
def create_domain(request: Request, session: SessionDep, cred: CredentialDep, body: DomainCreateBody
                  ) -> dict[str, Any]:
    b = body.domain
    with audited(session, cred, "create", "domain", obj_name=b.name) as a:
        enforce(cred, "identity:domains:create")
        _check_name(session, b.name)
        d = Domain(name=b.name.strip(), description=b.description or "",
                   enabled=True if b.enabled is None else b.enabled)
        session.add(d)
        session.flush()
        a.set(d)
    return {"domain": domain_dict(d, request)}


@router.get("/domains")
def list_domains(request: Request, session: SessionDep, cred: CredentialDep, q: ListDep) -> dict[str, Any]:
    enforce(cred, "identity:domains:list")
    stmt = select(Domain).where(visible(cred, Domain))
    if q.get("name"):
        stmt = stmt.where(Domain.name == q.get("name"))
    if bool_param(q, "enabled") is not None:
        stmt = stmt.where(Domain.enabled.is_(bool_param(q, "enabled")))
    page = keystone_page(session, stmt, Domain, q)
    return list_reply(request, "domains", [domain_dict(d, request) for d in page.rows], page)


@router.get("/domains/{ref}")
def get_domain(ref: str, request: Request, session: SessionDep, cred: CredentialDep) -> dict[str, Any]:
    enforce(cred, "identity:domains:get")
    d = lookup(session, cred, Domain, ref, "domain")
    enforce(cred, "identity:domains:get", {"domain_id": d.id})
    return {"domain": domain_dict(d, request)}


@router.patch("/domains/{ref}")
def update_domain(ref: str, request: Request, session: SessionDep, cred: CredentialDep, body: DomainUpdateBody
                  ) -> dict[str, Any]:
    b = body.domain
    with audited(session, cred, "update", "domain", obj_id=ref) as a:
        enforce(cred, "identity:domains:update")
        d = lookup(session, cred, Domain, ref, "domain")
        a.set(d)
        enforce(cred, "identity:domains:update", {"domain_id": d.id})
        if b.name is not None and b.name != d.name:
            _check_name(session, b.name, exclude=d.id)
            d.name = b.name.strip()
        if b.description is not None:
            d.description = b.description
        if b.enabled is not None and b.enabled != d.enabled:
            if d.id == "default" and not b.enabled:
                raise ForbiddenError("the default domain cannot be disabled")
            d.enabled = b.enabled
            request.app.state.auth.changed(session)  # its users' and projects' tokens die with it
        a.notes = ",".join(k for k, v in b.model_dump().items() if v is not None)
    session.refresh(d)
    return {"domain": domain_dict(d, request)}


@router.delete("/domains/{ref}", status_code=204)
def delete_domain(ref: str, request: Request, session: SessionDep, cred: CredentialDep) -> Response:
    with audited(session, cred, "delete", "domain", obj_id=ref) as a:
        enforce(cred, "identity:domains:delete")
        d = lookup(session, cred, Domain, ref, "domain")
        a.set(d)
        enforce(cred, "identity:domains:delete", {"domain_id": d.id})
        if d.id == "default":
            raise ForbiddenError("the default domain cannot be deleted")
        if d.enabled:
            raise ForbiddenError("Cannot delete a domain that is enabled, please disable it first.")
        for model, what in ((Project, "projects"), (User, "users"), (Group, "groups")):
            n = session.scalar(select(func.count()).select_from(model).where(model.domain_id == d.id)) or 0
            if n:
                raise NotEmptyError(f"domain {d.name} still owns {n} {what}; delete them first")
        session.query(Assignment).filter(Assignment.target_type == "domain", Assignment.target_id == d.id).delete()
        session.query(Role).filter(Role.domain_id == d.id).delete()
        session.delete(d)
        request.app.state.auth.changed(session)
    return Response(status_code=204)
