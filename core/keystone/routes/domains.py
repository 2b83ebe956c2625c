"""``/v3/domains``: create, list, show, update, delete (disabled and empty first, as Keystone)."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import func, select

from core.api.deps import CredentialDep, SessionDep
from core.errors import ForbiddenError, NotEmptyError
from core.keystone.models import Assignment, Domain, Group, Project, Role, User
from core.keystone.routes._common import Body
from core.keystone.routes._crud import Kind
from core.keystone.views import domain_view

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


def _own(d: Domain) -> dict[str, Any]:
    return {"domain_id": d.id}


DOMAINS = Kind(Domain, "domain", "domains", domain_view, filters=("name",), bool_filters=("enabled",), target=_own,
               show_target=True, dup_where="")


@router.post("/domains", status_code=201)
def create_domain(request: Request, session: SessionDep, cred: CredentialDep, body: DomainCreateBody
                  ) -> dict[str, Any]:
    b = body.domain
    with DOMAINS.creating(session, cred, b.name) as a:
        d = DOMAINS.added(session, a, Domain(name=DOMAINS.checked_name(session, b.name),
                                             description=b.description or "",
                                             enabled=True if b.enabled is None else b.enabled))
    return DOMAINS.one(d, request)


DOMAINS.mount_reads(router, "/domains")


@router.patch("/domains/{ref}")
def update_domain(ref: str, request: Request, session: SessionDep, cred: CredentialDep, body: DomainUpdateBody
                  ) -> dict[str, Any]:
    b = body.domain
    with DOMAINS.changing(session, cred, "update", ref) as (d, a):
        if b.name is not None and b.name != d.name:
            d.name = DOMAINS.checked_name(session, b.name, exclude=d.id)
        if b.description is not None:
            d.description = b.description
        if b.enabled is not None and b.enabled != d.enabled:
            if d.id == "default" and not b.enabled:
                raise ForbiddenError("the default domain cannot be disabled")
            d.enabled = b.enabled
            request.app.state.auth.changed(session)  # its users' and projects' tokens die with it
        a.notes = ",".join(k for k, v in b.model_dump().items() if v is not None)
    return DOMAINS.refreshed(session, d, request)


@router.delete("/domains/{ref}", status_code=204)
def delete_domain(ref: str, request: Request, session: SessionDep, cred: CredentialDep) -> Response:
    with DOMAINS.changing(session, cred, "delete", ref) as (d, _):
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
