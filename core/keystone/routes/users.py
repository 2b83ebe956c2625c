"""``/v3/users``: CRUD, self-service password change, unlock, a user's groups and projects."""
from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import ConfigDict
from sqlalchemy import delete, select

from core.api.context import Credential
from core.api.deps import CredentialDep, SessionDep
from core.errors import ForbiddenError, InputParameterError, UnauthorizedError
from core.keystone.assignments import group_ids_of, projects_of
from core.keystone.auth import AUTH_FAILED
from core.keystone.auth import set_user_password as set_password
from core.keystone.models import Assignment, Group, Project, User
from core.keystone.passwords import check_password_policy, hash_password
from core.keystone.policy import enforce
from core.keystone.routes._common import Body, audited, list_reply, lookup, visible
from core.keystone.routes._crud import Kind, domain_of_row, owning_domain
from core.keystone.views import group_view, project_view, user_view

router = APIRouter()


MAX_EXTRA_KEYS = 32
MAX_EXTRA_BYTES = 8192


class UserFields(Body):
    """Keystone keeps attributes it does not know (``project_id``, Cloudpods' ``displayname`` …) and
    returns them with the user; they are stored as given, bounded in number and size."""

    model_config = ConfigDict(extra="allow")
    name: str | None = None
    domain_id: str | None = None
    password: str | None = None
    enabled: bool | None = None
    email: str | None = None
    description: str | None = None
    default_project_id: str | None = None


class UserCreate(UserFields):
    name: str


class UserCreateBody(Body):
    user: UserCreate


class UserUpdateBody(Body):
    user: UserFields


class PasswordChange(Body):
    password: str
    original_password: str


class PasswordChangeBody(Body):
    user: PasswordChange


def _extra(b: UserFields) -> dict[str, Any]:
    extra = dict(b.model_extra or {})
    if len(extra) > MAX_EXTRA_KEYS:
        raise InputParameterError(f"user: at most {MAX_EXTRA_KEYS} extra attributes")
    for k in extra:
        if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", k):
            raise InputParameterError(f"user: attribute name {k[:70]!r} must be 1-64 letters, digits or _.:-")
    if len(json.dumps(extra)) > MAX_EXTRA_BYTES:
        raise InputParameterError(f"user: extra attributes take more than {MAX_EXTRA_BYTES} bytes")
    return extra


USERS = Kind(User, "user", "users", user_view, filters=("name", "domain_id"), bool_filters=("enabled",),
             target=domain_of_row)


def _default_project(session: SessionDep, cred: Credential, ref: str | None, domain_id: str) -> str | None:
    if not ref:
        return None
    p = lookup(session, cred, Project, ref, "project")
    if p.domain_id != domain_id:
        raise InputParameterError("default_project_id must be a project of the user's domain")
    return str(p.id)


@router.post("/users", status_code=201)
def create_user(request: Request, session: SessionDep, cred: CredentialDep, body: UserCreateBody) -> dict[str, Any]:
    b = body.user
    # the KDF (tens of ms) runs before audited() takes the write lock: under SQLite's one writer
    # it serialised every user create behind it
    pw_hash = hash_password(check_password_policy(b.password)) if b.password is not None else ""
    with USERS.creating(session, cred, b.name) as a:
        dom = owning_domain(session, cred, b.domain_id)
        enforce(cred, "identity:users:create", {"domain_id": dom.id})
        name = USERS.checked_name(session, b.name, domain_id=dom.id)
        u = User(name=name, domain_id=dom.id, enabled=True if b.enabled is None else b.enabled,
                 email=b.email or "", description=b.description or "",
                 password_hash=pw_hash,
                 password_changed_at=datetime.now(UTC) if b.password is not None else None, extra=_extra(b))
        u.default_project_id = _default_project(session, cred, b.default_project_id, dom.id)
        USERS.added(session, a, u)
    return USERS.one(u, request)


USERS.mount_reads(router, "/users")


@router.patch("/users/{ref}")
def update_user(ref: str, request: Request, session: SessionDep, cred: CredentialDep, body: UserUpdateBody
                ) -> dict[str, Any]:
    b = body.user
    # the hash is slow: taken before the write lock, and only for a caller who may change this user
    pw_hash = ""
    if b.password is not None and USERS.allows(session, cred, "update", ref):
        pw_hash = hash_password(check_password_policy(b.password))
    with USERS.changing(session, cred, "update", ref) as (u, a):  # enforced on the stored owner, not the body
        if b.domain_id is not None and b.domain_id != u.domain_id:
            raise InputParameterError("domain_id is immutable: a user cannot move to another domain")
        if b.name is not None and b.name != u.name:
            u.name = USERS.checked_name(session, b.name, domain_id=u.domain_id, exclude=u.id)
        for field in ("email", "description"):
            if getattr(b, field) is not None:
                setattr(u, field, getattr(b, field))
        if b.model_extra:
            merged = {**(u.extra or {}), **_extra(b)}
            u.extra = {k: v for k, v in merged.items() if v is not None}  # null removes one, as in Keystone
            _extra(UserFields.model_validate(u.extra))  # the bounds hold for the sum too
        if "default_project_id" in b.model_fields_set:
            u.default_project_id = _default_project(session, cred, b.default_project_id, u.domain_id)
        if b.enabled is not None and b.enabled != u.enabled:
            if not b.enabled and u.id == cred.user_id:
                raise ForbiddenError("you cannot disable yourself")
            u.enabled = b.enabled
            request.app.state.auth.changed(session)
        if b.password is not None:  # hashed here only if the rights changed since allows()
            set_password(u, pw_hash or hash_password(check_password_policy(b.password)))
            request.app.state.auth.changed(session)
        # which fields changed, never their values (a password must not reach the log)
        a.notes = ",".join(sorted(b.model_fields_set))
    return USERS.refreshed(session, u, request)


@router.delete("/users/{ref}", status_code=204)
def delete_user(ref: str, request: Request, session: SessionDep, cred: CredentialDep) -> Response:
    with USERS.changing(session, cred, "delete", ref) as (u, _):
        if u.id == cred.user_id:
            raise ForbiddenError("you cannot delete yourself")
        session.execute(delete(Assignment).where(Assignment.actor_type == "user", Assignment.actor_id == u.id))
        session.delete(u)
        request.app.state.auth.changed(session)
    return Response(status_code=204)


@router.post("/users/{user_id}/password", status_code=204)
def change_password(user_id: str, request: Request, session: SessionDep, body: PasswordChangeBody) -> Response:
    """Self-service change; like Keystone it needs the original password, not a token (so a user with
    an expired password can still change it). The original is checked with the login's lockout.
    """
    b = body.user
    pw_hash = hash_password(check_password_policy(b.password))  # before the write lock
    u = session.get(User, user_id)
    auth = request.app.state.auth
    # the original is checked before the write lock too (a hash, tens of ms: under SQLite's one
    # writer it held every other write back); a refusal is raised, and audited, inside it
    refused: UnauthorizedError | None = None
    checked = u.password_hash if u is not None else None
    try:
        auth.check_user_password(session, u, b.original_password)  # 401 for unknown/locked/wrong alike
    except UnauthorizedError as e:
        refused = e
    with audited(session, None, "change-password", "user", obj_id=user_id) as a:
        if refused is not None:
            raise refused
        u = session.get(User, user_id, populate_existing=True)
        if u is None or u.password_hash != checked:  # changed (or gone) since the check: refused alike
            raise UnauthorizedError(AUTH_FAILED)
        a.set(u)
        set_password(u, pw_hash)
        auth.changed(session)
    return Response(status_code=204)


@router.post("/users/{ref}/unlock")
def unlock_user(ref: str, request: Request, session: SessionDep, cred: CredentialDep) -> dict[str, Any]:
    with USERS.changing(session, cred, "unlock", ref) as (u, _):
        u.failed_logins = 0
        u.locked_until = None
    return USERS.refreshed(session, u, request)


@router.get("/users/{ref}/groups")
def user_groups(ref: str, request: Request, session: SessionDep, cred: CredentialDep) -> dict[str, Any]:
    enforce(cred, "identity:group_users:list")
    u = lookup(session, cred, User, ref, "user")
    groups = session.scalars(select(Group).where(Group.id.in_(group_ids_of(session, u.id)),
                                                 visible(cred, Group)).order_by(Group.name))
    return list_reply(request, "groups", [group_view(g, request) for g in groups])


@router.get("/users/{ref}/projects")
def user_projects(ref: str, request: Request, session: SessionDep, cred: CredentialDep) -> dict[str, Any]:
    enforce(cred, "identity:projects:list")
    u = lookup(session, cred, User, ref, "user")
    rows = projects_of(session, u.id)
    if u.id != cred.user_id:
        rows = [p for p in rows if session.scalar(select(Project.id).where(Project.id == p.id,
                                                                             visible(cred, Project)))]
    return list_reply(request, "projects", [project_view(p, request) for p in rows])
