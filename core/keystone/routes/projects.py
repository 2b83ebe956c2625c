"""``/v3/projects``: create, list, show, update, delete. A project never changes domain."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import Field
from sqlalchemy import delete, func, select

from core.api.context import Credential
from core.api.deps import CredentialDep, SessionDep
from core.errors import ForbiddenError, InputParameterError, NotEmptyError, ResourceNotFoundError
from core.keystone.holdings import refusal
from core.keystone.models import Assignment, Project
from core.keystone.policy import enforce
from core.keystone.routes._common import Body
from core.keystone.routes._crud import Kind, owning_domain
from core.keystone.views import project_view

router = APIRouter()


class ProjectFields(Body):
    name: str | None = None
    description: str | None = None
    enabled: bool | None = None
    domain_id: str | None = None
    parent_id: str | None = None
    is_domain: bool | None = None
    tags: list[str] | None = Field(default=None, max_length=80)


def _tags(tags: list[str]) -> list[str]:
    """Keystone's project tags: unique strings of 1..255 characters without ``/`` or ``,``."""
    for t in tags:
        if not t or len(t) > 255 or "/" in t or "," in t:
            raise InputParameterError(f"tags: {t!r} must be 1 to 255 characters without '/' or ','")
    if len(set(tags)) != len(tags):
        raise InputParameterError("tags: duplicates are not allowed")
    return list(tags)


class ProjectCreate(ProjectFields):
    name: str


class ProjectCreateBody(Body):
    project: ProjectCreate


class ProjectUpdateBody(Body):
    project: ProjectFields


def owner_target(p: Project) -> dict[str, Any]:
    """Policy target of a stored project: its own id and its domain."""
    return {"domain_id": p.domain_id, "project_id": p.id}


PROJECTS = Kind(Project, "project", "projects", project_view, filters=("name", "domain_id", "parent_id"),
                bool_filters=("enabled",), target=owner_target, show_target=True)


def _create_domain(session: SessionDep, cred: Credential, b: ProjectCreate) -> tuple[str, str | None]:
    parent_id: str | None = None
    domain_id = b.domain_id
    if b.parent_id and b.parent_id != b.domain_id:
        parent = session.get(Project, b.parent_id)
        if parent is None:
            raise ResourceNotFoundError(f"Could not find project: {b.parent_id}.")
        if domain_id and domain_id != parent.domain_id:
            raise InputParameterError("a project's parent must be in the same domain")
        domain_id, parent_id = parent.domain_id, parent.id
    return owning_domain(session, cred, domain_id).id, parent_id


@router.post("/projects", status_code=201)
def create_project(request: Request, session: SessionDep, cred: CredentialDep, body: ProjectCreateBody
                   ) -> dict[str, Any]:
    b = body.project
    with PROJECTS.creating(session, cred, b.name) as a:
        if b.is_domain:
            raise InputParameterError("projects acting as domains are not supported; create a domain")
        domain_id, parent_id = _create_domain(session, cred, b)
        enforce(cred, "identity:projects:create", {"domain_id": domain_id})  # the caller's domain only
        name = PROJECTS.checked_name(session, b.name, domain_id=domain_id)
        p = Project(name=name, domain_id=domain_id, parent_id=parent_id, description=b.description or "",
                    enabled=True if b.enabled is None else b.enabled,
                    extra={"tags": _tags(b.tags)} if b.tags else {})
        PROJECTS.added(session, a, p)
    return PROJECTS.one(p, request)


PROJECTS.mount_reads(router, "/projects")


@router.patch("/projects/{ref}")
def update_project(ref: str, request: Request, session: SessionDep, cred: CredentialDep, body: ProjectUpdateBody
                   ) -> dict[str, Any]:
    b = body.project
    with PROJECTS.changing(session, cred, "update", ref) as (p, a):  # target from the stored row
        if b.domain_id is not None and b.domain_id != p.domain_id:
            raise InputParameterError("domain_id is immutable: a project cannot move to another domain")
        if b.parent_id is not None and b.parent_id != (p.parent_id or p.domain_id):
            raise InputParameterError("parent_id is immutable")
        if b.is_domain:
            raise InputParameterError("is_domain is immutable")
        if b.name is not None and b.name != p.name:
            p.name = PROJECTS.checked_name(session, b.name, domain_id=p.domain_id, exclude=p.id)
        if b.description is not None:
            p.description = b.description
        if b.tags is not None:
            p.extra = {**(p.extra or {}), "tags": _tags(b.tags)}
        if b.enabled is not None and b.enabled != p.enabled:
            p.enabled = b.enabled
            request.app.state.auth.changed(session)
        a.notes = ",".join(k for k, v in b.model_dump().items() if v is not None)
    return PROJECTS.refreshed(session, p, request)


@router.delete("/projects/{ref}", status_code=204)
def delete_project(ref: str, request: Request, session: SessionDep, cred: CredentialDep) -> Response:
    with PROJECTS.changing(session, cred, "delete", ref) as (p, _):
        n = session.scalar(select(func.count()).select_from(Project).where(Project.parent_id == p.id)) or 0
        if n:
            raise NotEmptyError(f"project {p.name} has {n} sub-projects; delete them first")
        why = refusal(session, p)
        if why:
            raise ForbiddenError(why)
        session.execute(delete(Assignment).where(Assignment.target_type == "project", Assignment.target_id == p.id))
        session.delete(p)
        request.app.state.auth.changed(session)
    return Response(status_code=204)
