"""Grants: ``/v3/{projects|domains}/{t}/{users|groups}/{a}/roles[/{r}]`` and ``/v3/system/...``.

Who may grant (beyond the ``identity:grants:*`` rule, which needs admin):
- the target must be reachable by the caller's token: its project, its domain (or a project in
  it) for a domain admin, anything for a system admin; system grants need system scope;
  domain grants need system or domain scope;
- the actor must be visible (system: anyone; otherwise a user or group of the caller's domain);
- the role must be one the caller holds on its own scope, unless the caller is a system admin;
  a domain-specific role is only granted on targets of its domain.
So nobody raises themselves or anyone else above what they already have.
"""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import select

from core.api.context import Credential
from core.api.deps import CredentialDep, SessionDep
from core.errors import ForbiddenError, InputParameterError, ResourceNotFoundError
from core.keystone.assignments import SYSTEM
from core.keystone.models import Assignment, Domain, Group, Project, Role, User
from core.keystone.policy import enforce, is_system_admin, reach
from core.keystone.routes._common import audited, link, list_reply, lookup
from core.keystone.views import role_view

router = APIRouter()
_TARGETS = {"projects": ("project", Project), "domains": ("domain", Domain)}
_ACTORS = {"users": ("user", User), "groups": ("group", Group)}


def _target(session: SessionDep, cred: Credential, kind: str, ref: str) -> tuple[str, str, str, dict[str, Any]]:
    """(target_type, target_id, domain of the target, policy target) for a visible target."""
    if kind == "system":
        if reach(cred) != "system":
            raise ForbiddenError("system role grants need a system-scoped token")
        return "system", SYSTEM, "", {}
    ttype, model = _TARGETS[kind]
    row = lookup(session, cred, model, ref, ttype)
    if ttype == "domain":
        if reach(cred) not in ("system", "domain"):
            raise ForbiddenError("domain role grants need a system- or domain-scoped token")
        return ttype, row.id, row.id, {"domain_id": row.id}
    return ttype, row.id, row.domain_id, {"domain_id": row.domain_id, "project_id": row.id}


def _actor(session: SessionDep, cred: Credential, kind: str, ref: str) -> tuple[str, Any]:
    atype, model = _ACTORS[kind]
    if reach(cred) == "project":
        # a project admin may name any user or group of its own domain (it cannot list them)
        row = lookup(session, cred, model, ref, atype, check_visible=False)
        if row.domain_id != cred.project_domain_id:
            raise ResourceNotFoundError(f"Could not find {atype}: {ref}.")
        return atype, row
    return atype, lookup(session, cred, model, ref, atype)


def _role(session: SessionDep, cred: Credential, ref: str, target_domain: str) -> Role:
    role = lookup(session, cred, Role, ref, "role")
    if role.domain_id and role.domain_id != target_domain:
        raise InputParameterError(f"role {role.name} belongs to another domain than the target")
    return role


def _may_hand_out(cred: Credential, role: Role) -> None:
    if is_system_admin(cred):
        return
    if role.name not in cred.roles:
        raise ForbiddenError(f"you cannot grant or revoke role {role.name}: you do not hold it")


def _key(atype: str, actor_id: str, ttype: str, tid: str, role_id: str) -> dict[str, str]:
    return {"actor_type": atype, "actor_id": actor_id, "target_type": ttype, "target_id": tid, "role_id": role_id}


def _change(kind: str, tref: str, akind: str, aref: str, rref: str, request: Request, session: SessionDep,
            cred: Credential, grant: bool) -> Response:
    action = "grants:create" if grant else "grants:revoke"
    with audited(session, cred, "grant" if grant else "revoke", "role_assignment", obj_id=rref) as a:
        enforce(cred, f"identity:{action}")
        ttype, tid, tdomain, target = _target(session, cred, kind, tref)
        enforce(cred, f"identity:{action}", target)
        atype, actor = _actor(session, cred, akind, aref)
        role = _role(session, cred, rref, tdomain)
        a.set(role)
        a.notes = f"{atype} {actor.id} on {ttype} {tid}"
        _may_hand_out(cred, role)
        key = _key(atype, actor.id, ttype, tid, role.id)
        row = session.get(Assignment, key)
        if grant and row is None:
            session.add(Assignment(**key))
            request.app.state.auth.changed(session)
        elif not grant:
            if row is None:
                raise ResourceNotFoundError(f"Could not find role assignment of {role.name} to {atype} {actor.id}.")
            session.delete(row)
            request.app.state.auth.changed(session)
    return Response(status_code=204)


def _check(kind: str, tref: str, akind: str, aref: str, rref: str, session: SessionDep, cred: Credential
           ) -> Response:
    enforce(cred, "identity:grants:list")
    ttype, tid = _target_for_read(session, cred, kind, tref)
    atype, actor = _actor(session, cred, akind, aref)
    role = lookup(session, cred, Role, rref, "role")
    if session.get(Assignment, _key(atype, actor.id, ttype, tid, role.id)) is None:
        raise ResourceNotFoundError(f"Could not find role assignment of {role.name} to {atype} {actor.id}.")
    return Response(status_code=204)


def _target_for_read(session: SessionDep, cred: Credential, kind: str, ref: str) -> tuple[str, str]:
    if kind == "system":
        if reach(cred) != "system":
            raise ForbiddenError("system grants are visible to system-scoped tokens")
        return "system", SYSTEM
    ttype, model = _TARGETS[kind]
    return ttype, lookup(session, cred, model, ref, ttype).id


def _list(kind: str, tref: str, akind: str, aref: str, request: Request, session: SessionDep, cred: Credential
          ) -> dict[str, Any]:
    enforce(cred, "identity:grants:list")
    ttype, tid = _target_for_read(session, cred, kind, tref)
    atype, actor = _actor(session, cred, akind, aref)
    roles = session.scalars(select(Role).join(Assignment, Assignment.role_id == Role.id).where(
        Assignment.actor_type == atype, Assignment.actor_id == actor.id, Assignment.target_type == ttype,
        Assignment.target_id == tid).order_by(Role.name))
    return list_reply(request, "roles", [role_view(r, request) for r in roles])


def _register(kind: str, akind: str) -> None:
    base = f"/{kind}/{{tref}}/{akind}/{{aref}}/roles" if kind != "system" else f"/system/{akind}/{{aref}}/roles"

    def tref_of(params: dict[str, str]) -> str:
        return params.get("tref", SYSTEM)

    # the handlers read request.path_params (one body for the three target kinds), so the path
    # parameters are declared here for the OpenAPI document (schema tools skip undeclared ones)
    def declared(*names: str) -> dict[str, Any]:
        what = {"tref": kind[:-1], "aref": akind[:-1], "rref": "role"}
        return {"parameters": [{"name": n, "in": "path", "required": True, "schema": {"type": "string"},
                                "description": f"{what[n]} id or name"}
                               for n in (("tref",) if kind != "system" else ()) + names]}

    one, many = declared("aref", "rref"), declared("aref")

    @router.put(base + "/{rref}", status_code=204, openapi_extra=one)
    def put_grant(request: Request, session: SessionDep, cred: CredentialDep) -> Response:
        p = request.path_params
        return _change(kind, tref_of(p), akind, p["aref"], p["rref"], request, session, cred, True)

    @router.delete(base + "/{rref}", status_code=204, openapi_extra=one)
    def delete_grant(request: Request, session: SessionDep, cred: CredentialDep) -> Response:
        p = request.path_params
        return _change(kind, tref_of(p), akind, p["aref"], p["rref"], request, session, cred, False)

    @router.head(base + "/{rref}", status_code=204, openapi_extra=one)
    @router.get(base + "/{rref}", status_code=204, openapi_extra=one)
    def check_grant(request: Request, session: SessionDep, cred: CredentialDep) -> Response:
        p = request.path_params
        return _check(kind, tref_of(p), akind, p["aref"], p["rref"], session, cred)

    @router.get(base, openapi_extra=many)
    def list_grants(request: Request, session: SessionDep, cred: CredentialDep) -> dict[str, Any]:
        p = request.path_params
        return _list(kind, tref_of(p), akind, p["aref"], request, session, cred)

    for f in (put_grant, delete_grant, check_grant, list_grants):
        f.__name__ = f"{f.__name__}_{kind}_{akind}"


for _kind in ("projects", "domains", "system"):
    for _akind in ("users", "groups"):
        _register(_kind, _akind)


def assignment_link(request: Request, ttype: str, tid: str, atype: str, aid: str, rid: str) -> str:
    if ttype == "system":
        return link(request, f"/system/{atype}s/{aid}/roles/{rid}")
    return link(request, f"/{ttype}s/{tid}/{atype}s/{aid}/roles/{rid}")
