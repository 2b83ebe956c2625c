"""``/v3/users/<user>/application_credentials`` and ``/v3/users/<user>/access_rules`` (Keystone v3).

A user delegates a subset of their roles on the project of their current token to a named secret
that a script or service logs in with (auth method ``application_credential``). The secret is
shown once, at creation; only its scrypt hash is stored. A restricted credential's token (the
default) may not create or delete application credentials. Access rules limit such a token to the
listed (service, method, path glob) calls; a rule stays with its user until deleted and cannot be
deleted while a credential uses it (403), as in Keystone.
"""
from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import Field
from sqlalchemy import select

from core.api.context import Credential
from core.api.deps import CredentialDep, SessionDep
from core.api.inputs import check_display_name
from core.api.listing import ListDep
from core.errors import DuplicateNameError, ForbiddenError, InputParameterError, ResourceNotFoundError
from core.keystone import app_creds
from core.keystone.models import (
    AccessRule,
    AppCredAccessRule,
    AppCredRole,
    ApplicationCredential,
    Role,
    User,
)
from core.keystone.passwords import check_new_password, hash_password
from core.keystone.policy import enforce
from core.keystone.routes._common import Body, audited, exists, link, list_reply

router = APIRouter()


class RoleRef(Body):
    id: str | None = None
    name: str | None = None


class AccessRuleRef(Body):
    id: str | None = None
    service: str | None = Field(default=None, max_length=64)
    path: str | None = Field(default=None, max_length=255)
    method: str | None = Field(default=None, max_length=16)


class AppCredCreate(Body):
    name: str = Field(max_length=255)
    description: str | None = None
    secret: str | None = None
    expires_at: datetime | None = None
    roles: list[RoleRef] | None = None
    unrestricted: bool = False
    access_rules: list[AccessRuleRef] | None = Field(default=None, max_length=100)


class AppCredCreateBody(Body):
    application_credential: AppCredCreate


def naive_iso(dt: datetime | None) -> str | None:
    """Keystone writes an application credential's expiry as naive UTC ISO 8601 (what it was given)."""
    return None if dt is None else dt.astimezone(UTC).replace(tzinfo=None).isoformat()


def rule_dict(r: AccessRule) -> dict[str, Any]:
    return {"id": r.id, "service": r.service, "path": r.path, "method": r.method}


def app_cred_dict(session: SessionDep, ac: ApplicationCredential, request: Request) -> dict[str, Any]:
    roles = session.execute(select(Role.id, Role.name, Role.domain_id).join(AppCredRole, AppCredRole.role_id == Role.id)
                            .where(AppCredRole.app_cred_id == ac.id).order_by(Role.name)).all()
    rules = session.scalars(select(AccessRule)
                            .join(AppCredAccessRule, AppCredAccessRule.access_rule_id == AccessRule.id)
                            .where(AppCredAccessRule.app_cred_id == ac.id).order_by(AccessRule.id))
    return {"id": ac.id, "name": ac.name, "description": ac.description or None, "user_id": ac.user_id,
            "project_id": ac.project_id, "expires_at": naive_iso(ac.expires_at), "unrestricted": ac.unrestricted,
            "roles": [{"id": i, "name": n, "domain_id": d or None} for i, n, d in roles],
            "access_rules": [rule_dict(r) for r in rules],
            "links": {"self": link(request, f"/users/{ac.user_id}/application_credentials/{ac.id}")}}


def _own(session: SessionDep, cred: Credential, user_id: str, action: str) -> User:
    """Keystone's rule: the owner, or a system reader/admin for reads/deletes of another user's."""
    enforce(cred, f"identity:application_credentials:{action}")
    if user_id != cred.user_id:
        enforce(cred, f"identity:application_credentials:{action}_others")
    user = session.get(User, user_id)
    if user is None:
        raise ResourceNotFoundError(f"Could not find user: {user_id}.")
    return user


def _restricted_check(cred: Credential, what: str) -> None:
    if getattr(cred, "app_cred_id", "") and not getattr(cred, "app_cred_unrestricted", False):
        raise ForbiddenError(f"a token from a restricted application credential cannot {what} application "
                             "credentials: create the credential with unrestricted=true to allow it")


def _roles(session: SessionDep, cred: Credential, refs: list[RoleRef] | None) -> list[str]:
    """Role ids for the new credential: a subset of the roles the caller's token holds."""
    held = dict(zip(cred.role_ids, cred.roles, strict=True))
    if not refs:
        return list(held)
    out: list[str] = []
    for ref in refs:
        if not ref.id and not ref.name:
            raise InputParameterError("roles: each role needs id or name")
        rid = ref.id or next((i for i, n in held.items() if n == ref.name), None)
        if rid is None or rid not in held:
            raise ForbiddenError(f"you do not hold role {ref.id or ref.name} on project {cred.project_name}: an "
                                 "application credential can only carry roles of the token that creates it")
        if rid not in out:
            out.append(rid)
    return out


def _rules(session: SessionDep, user_id: str, refs: list[AccessRuleRef] | None) -> list[str]:
    """Access rule ids: existing ones by id, new ones created (or the user's identical rule reused)."""
    out: list[str] = []
    for ref in refs or ():
        if ref.id:
            rule = session.get(AccessRule, ref.id)
            if rule is None or rule.user_id != user_id:
                raise ResourceNotFoundError(f"Could not find access rule: {ref.id}.")
        else:
            if not ref.service or not ref.path or not ref.method:
                raise InputParameterError("access_rules: each rule needs id, or service, path and method")
            method = ref.method.upper()
            if method not in app_creds.METHODS:
                raise InputParameterError(f"access_rules: method {ref.method!r} is not one of "
                                          f"{', '.join(app_creds.METHODS)}")
            if not ref.path.startswith("/"):
                raise InputParameterError(f"access_rules: path {ref.path!r} must start with /")
            found = session.scalar(select(AccessRule).where(AccessRule.user_id == user_id,
                                                            AccessRule.service == ref.service,
                                                            AccessRule.path == ref.path, AccessRule.method == method))
            rule = found or AccessRule(user_id=user_id, service=ref.service, path=ref.path, method=method)
            if found is None:
                session.add(rule)
                session.flush()
        if rule.id not in out:
            out.append(rule.id)
    return out


@router.post("/users/{user_id}/application_credentials", status_code=201)
def create_app_cred(user_id: str, request: Request, session: SessionDep, cred: CredentialDep,
                    body: AppCredCreateBody) -> dict[str, Any]:
    b = body.application_credential
    secret = check_new_password(b.secret) if b.secret is not None else secrets.token_urlsafe(64)
    secret_hash = hash_password(secret)  # before the write lock (tens of ms)
    with audited(session, cred, "create", "application_credential", obj_name=b.name) as a:
        enforce(cred, "identity:application_credentials:create")
        if user_id != cred.user_id:
            raise ForbiddenError("an application credential can only be created by its own user")
        _restricted_check(cred, "create")
        if cred.scope != "project" or not cred.project_id:
            raise InputParameterError("an application credential belongs to a project: create it with a "
                                      "project-scoped token")
        name = b.name.strip()
        if not name:
            raise InputParameterError("application credential name must not be empty")
        check_display_name(name, "application credential name")
        if exists(session, select(ApplicationCredential.id).where(ApplicationCredential.user_id == user_id,
                                                                  ApplicationCredential.name == name)):
            raise DuplicateNameError(f"Duplicate entry: an application credential named {name!r} already exists.")
        expires = b.expires_at.replace(tzinfo=UTC) if b.expires_at and b.expires_at.tzinfo is None else b.expires_at
        if expires is not None and expires <= datetime.now(UTC):
            raise InputParameterError("expires_at is in the past")
        ac = ApplicationCredential(name=name, user_id=user_id, project_id=cred.project_id,
                                   description=b.description or "", secret_hash=secret_hash,
                                   expires_at=expires, unrestricted=b.unrestricted)
        session.add(ac)
        session.flush()
        for rid in _roles(session, cred, b.roles):
            session.add(AppCredRole(app_cred_id=ac.id, role_id=rid))
        for rule_id in _rules(session, user_id, b.access_rules):
            session.add(AppCredAccessRule(app_cred_id=ac.id, access_rule_id=rule_id))
        a.set(ac)
        a.notes = f"user {user_id} project {cred.project_id}"  # never the secret
    return {"application_credential": {**app_cred_dict(session, ac, request), "secret": secret}}


@router.get("/users/{user_id}/application_credentials")
def list_app_creds(user_id: str, request: Request, session: SessionDep, cred: CredentialDep, q: ListDep
                   ) -> dict[str, Any]:
    _own(session, cred, user_id, "list")
    stmt = select(ApplicationCredential).where(ApplicationCredential.user_id == user_id)
    if q.get("name"):
        stmt = stmt.where(ApplicationCredential.name == q.get("name"))
    rows = session.scalars(stmt.order_by(ApplicationCredential.name))
    reply = list_reply(request, "application_credentials", [app_cred_dict(session, ac, request) for ac in rows])
    reply["links"]["self"] = link(request, f"/users/{user_id}/application_credentials")
    return reply


def _one(session: SessionDep, user_id: str, ref: str) -> ApplicationCredential:
    ac = session.get(ApplicationCredential, ref)
    if ac is None or ac.user_id != user_id:
        ac = session.scalar(select(ApplicationCredential).where(ApplicationCredential.user_id == user_id,
                                                                ApplicationCredential.name == ref))
    if ac is None:
        raise ResourceNotFoundError(f"Could not find application credential: {ref}.")
    return ac


@router.get("/users/{user_id}/application_credentials/{ref}")
def get_app_cred(user_id: str, ref: str, request: Request, session: SessionDep, cred: CredentialDep
                 ) -> dict[str, Any]:
    _own(session, cred, user_id, "get")
    return {"application_credential": app_cred_dict(session, _one(session, user_id, ref), request)}


@router.delete("/users/{user_id}/application_credentials/{ref}", status_code=204)
def delete_app_cred(user_id: str, ref: str, request: Request, session: SessionDep, cred: CredentialDep
                    ) -> Response:
    with audited(session, cred, "delete", "application_credential", obj_id=ref) as a:
        _own(session, cred, user_id, "delete")
        _restricted_check(cred, "delete")
        ac = _one(session, user_id, ref)
        a.set(ac)
        session.delete(ac)
        request.app.state.auth.changed(session)  # its tokens die with it
    return Response(status_code=204)


# ---- access rules ------------------------------------------------------------------------------
@router.get("/users/{user_id}/access_rules")
def list_access_rules(user_id: str, request: Request, session: SessionDep, cred: CredentialDep, q: ListDep
                      ) -> dict[str, Any]:
    _own(session, cred, user_id, "list")
    stmt = select(AccessRule).where(AccessRule.user_id == user_id)
    for key, col in (("service", AccessRule.service), ("path", AccessRule.path), ("method", AccessRule.method)):
        if q.get(key):
            stmt = stmt.where(col == q.get(key))
    reply = list_reply(request, "access_rules",
                       [{**rule_dict(r), "links": {"self": link(request, f"/users/{user_id}/access_rules/{r.id}")}}
                        for r in session.scalars(stmt.order_by(AccessRule.id))])
    reply["links"]["self"] = link(request, f"/users/{user_id}/access_rules")
    return reply


def _rule(session: SessionDep, user_id: str, rule_id: str) -> AccessRule:
    r = session.get(AccessRule, rule_id)
    if r is None or r.user_id != user_id:
        raise ResourceNotFoundError(f"Could not find access rule: {rule_id}.")
    return r


@router.get("/users/{user_id}/access_rules/{rule_id}")
def get_access_rule(user_id: str, rule_id: str, request: Request, session: SessionDep, cred: CredentialDep
                    ) -> dict[str, Any]:
    _own(session, cred, user_id, "get")
    r = _rule(session, user_id, rule_id)
    return {"access_rule": {**rule_dict(r), "links": {"self": link(request, f"/users/{user_id}/access_rules/{r.id}")}}}


@router.delete("/users/{user_id}/access_rules/{rule_id}", status_code=204)
def delete_access_rule(user_id: str, rule_id: str, session: SessionDep, cred: CredentialDep) -> Response:
    with audited(session, cred, "delete", "access_rule", obj_id=rule_id):
        _own(session, cred, user_id, "delete")
        r = _rule(session, user_id, rule_id)
        if exists(session, select(AppCredAccessRule.app_cred_id).where(AppCredAccessRule.access_rule_id == r.id)):
            raise ForbiddenError("this access rule is used by an application credential: delete the credential first")
        session.delete(r)
    return Response(status_code=204)
