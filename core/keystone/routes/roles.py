"""``/v3/roles`` and role inference (``/v3/roles/{prior}/implies/{implied}``, ``/v3/role_inferences``)."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import select

from core.api.deps import CredentialDep, SessionDep
from core.api.inputs import check_display_name
from core.api.listing import ListDep
from core.errors import (
    ConflictError,
    DuplicateNameError,
    ForbiddenError,
    InputParameterError,
    ResourceNotFoundError,
)
from core.keystone.assignments import would_cycle
from core.keystone.bootstrap import DEFAULT_ROLES
from core.keystone.models import Domain, ImpliedRole, Role
from core.keystone.policy import enforce
from core.keystone.routes._common import (
    Body,
    audited,
    exists,
    keystone_page,
    link,
    list_reply,
    lookup,
    visible,
)

router = APIRouter()
PROHIBITED_IMPLIED = ("admin",)  # Keystone's default: nothing may imply admin


class RoleFields(Body):
    name: str | None = None
    domain_id: str | None = None
    description: str | None = None


class RoleCreate(RoleFields):
    name: str


class RoleCreateBody(Body):
    role: RoleCreate


class RoleUpdateBody(Body):
    role: RoleFields


def role_dict(r: Role, request: Request) -> dict[str, Any]:
    return {"id": r.id, "name": r.name, "domain_id": r.domain_id or None, "description": r.description,
            "options": {}, "links": {"self": link(request, f"/roles/{r.id}")}}


def _check_name(session: SessionDep, domain_id: str, name: str, exclude: str | None = None) -> str:
    name = name.strip()
    if not name:
        raise InputParameterError("role name must not be empty")
    check_display_name(name, "role name")
    stmt = select(Role.id).where(Role.domain_id == domain_id, Role.name == name)
    if exclude:
        stmt = stmt.where(Role.id != exclude)
    if exists(session, stmt):
        raise DuplicateNameError(f"Duplicate entry: a role named {name!r} already exists.")
    return name


@router.post("/roles", status_code=201)
def create_role(request: Request, session: SessionDep, cred: CredentialDep, body: RoleCreateBody) -> dict[str, Any]:
    b = body.role
    with audited(session, cred, "create", "role", obj_name=b.name) as a:
        enforce(cred, "identity:roles:create")
        domain_id = b.domain_id or ""
        if domain_id and session.get(Domain, domain_id) is None:
            raise ResourceNotFoundError(f"Could not find domain: {domain_id}.")
        r = Role(name=_check_name(session, domain_id, b.name), domain_id=domain_id, description=b.description or "")
        session.add(r)
        session.flush()
        a.set(r)
    return {"role": role_dict(r, request)}


@router.get("/roles")
def list_roles(request: Request, session: SessionDep, cred: CredentialDep, q: ListDep) -> dict[str, Any]:
    enforce(cred, "identity:roles:list")
    stmt = select(Role).where(visible(cred, Role))
    if q.get("name"):
        stmt = stmt.where(Role.name == q.get("name"))
    stmt = stmt.where(Role.domain_id == (q.get("domain_id") or ""))  # Keystone: global roles unless asked
    page = keystone_page(session, stmt, Role, q)
    return list_reply(request, "roles", [role_dict(r, request) for r in page.rows], page)


@router.get("/roles/{ref}")
def get_role(ref: str, request: Request, session: SessionDep, cred: CredentialDep) -> dict[str, Any]:
    enforce(cred, "identity:roles:get")
    return {"role": role_dict(lookup(session, cred, Role, ref, "role"), request)}


@router.patch("/roles/{ref}")
def update_role(ref: str, request: Request, session: SessionDep, cred: CredentialDep, body: RoleUpdateBody
                ) -> dict[str, Any]:
    b = body.role
    with audited(session, cred, "update", "role", obj_id=ref) as a:
        enforce(cred, "identity:roles:update")
        r = lookup(session, cred, Role, ref, "role")
        a.set(r)
        if b.domain_id is not None and b.domain_id != r.domain_id:
            raise InputParameterError("domain_id is immutable")
        if b.name is not None and b.name != r.name:
            if r.domain_id == "" and r.name in DEFAULT_ROLES:
                raise ForbiddenError(f"the built-in role {r.name} cannot be renamed")
            r.name = _check_name(session, r.domain_id, b.name, exclude=r.id)
            request.app.state.auth.changed(session)
        if b.description is not None:
            r.description = b.description
    session.refresh(r)
    return {"role": role_dict(r, request)}


@router.delete("/roles/{ref}", status_code=204)
def delete_role(ref: str, request: Request, session: SessionDep, cred: CredentialDep) -> Response:
    with audited(session, cred, "delete", "role", obj_id=ref) as a:
        enforce(cred, "identity:roles:delete")
        r = lookup(session, cred, Role, ref, "role")
        a.set(r)
        if r.domain_id == "" and r.name in DEFAULT_ROLES:
            raise ForbiddenError(f"the built-in role {r.name} cannot be deleted")
        session.delete(r)  # its assignments and inference rules go with it (ON DELETE CASCADE)
        request.app.state.auth.changed(session)
    return Response(status_code=204)


# ---- role inference ----------------------------------------------------------------------------
def _brief(r: Role, request: Request) -> dict[str, Any]:
    return {"id": r.id, "name": r.name, "links": {"self": link(request, f"/roles/{r.id}")}}


def _pair(session: SessionDep, cred: CredentialDep, prior: str, implied: str) -> tuple[Role, Role]:
    return lookup(session, cred, Role, prior, "role"), lookup(session, cred, Role, implied, "role")


@router.put("/roles/{prior}/implies/{implied}", status_code=201)
def create_inference(prior: str, implied: str, request: Request, session: SessionDep, cred: CredentialDep
                     ) -> dict[str, Any]:
    with audited(session, cred, "create", "implied_role", obj_id=prior) as a:
        enforce(cred, "identity:implied_roles:create")
        p, i = _pair(session, cred, prior, implied)
        a.set(p)
        a.notes = f"implies {i.name}"
        if i.name in PROHIBITED_IMPLIED and i.domain_id == "":
            raise ForbiddenError(f"no role may imply {i.name}")
        if would_cycle(session, p.id, i.id):
            raise ConflictError(f"{p.name} implying {i.name} would make a cycle")
        if session.get(ImpliedRole, {"prior_role_id": p.id, "implied_role_id": i.id}) is None:
            session.add(ImpliedRole(prior_role_id=p.id, implied_role_id=i.id))
            request.app.state.auth.changed(session)
    return {"role_inference": {"prior_role": _brief(p, request), "implies": _brief(i, request)},
            "links": {"self": link(request, f"/roles/{p.id}/implies/{i.id}")}}


def _existing(session: SessionDep, cred: CredentialDep, prior: str, implied: str) -> tuple[Role, Role]:
    p, i = _pair(session, cred, prior, implied)
    if session.get(ImpliedRole, {"prior_role_id": p.id, "implied_role_id": i.id}) is None:
        raise ResourceNotFoundError(f"{p.name} does not imply {i.name}")
    return p, i


@router.head("/roles/{prior}/implies/{implied}", status_code=204)
def check_inference(prior: str, implied: str, session: SessionDep, cred: CredentialDep) -> Response:
    enforce(cred, "identity:implied_roles:list")
    _existing(session, cred, prior, implied)
    return Response(status_code=204)


@router.get("/roles/{prior}/implies/{implied}")
def get_inference(prior: str, implied: str, request: Request, session: SessionDep, cred: CredentialDep
                  ) -> dict[str, Any]:
    enforce(cred, "identity:implied_roles:list")
    p, i = _existing(session, cred, prior, implied)
    return {"role_inference": {"prior_role": _brief(p, request), "implies": _brief(i, request)},
            "links": {"self": link(request, f"/roles/{p.id}/implies/{i.id}")}}


@router.delete("/roles/{prior}/implies/{implied}", status_code=204)
def delete_inference(prior: str, implied: str, request: Request, session: SessionDep, cred: CredentialDep
                     ) -> Response:
    with audited(session, cred, "delete", "implied_role", obj_id=prior) as a:
        enforce(cred, "identity:implied_roles:delete")
        p, i = _pair(session, cred, prior, implied)
        a.set(p)
        a.notes = f"implies {i.name}"
        row = session.get(ImpliedRole, {"prior_role_id": p.id, "implied_role_id": i.id})
        if row is None:
            raise ResourceNotFoundError(f"{p.name} does not imply {i.name}")
        session.delete(row)
        request.app.state.auth.changed(session)
    return Response(status_code=204)


def _inferences(session: SessionDep, request: Request, prior_ids: list[str] | None) -> list[dict[str, Any]]:
    roles = {r.id: r for r in session.scalars(select(Role))}
    by_prior: dict[str, list[Role]] = {}
    for row in session.scalars(select(ImpliedRole)):
        if prior_ids is None or row.prior_role_id in prior_ids:
            by_prior.setdefault(row.prior_role_id, []).append(roles[row.implied_role_id])
    return [{"prior_role": _brief(roles[pid], request), "implies": [_brief(r, request) for r in imps]}
            for pid, imps in sorted(by_prior.items(), key=lambda kv: roles[kv[0]].name)]


@router.get("/roles/{prior}/implies")
def list_implied(prior: str, request: Request, session: SessionDep, cred: CredentialDep) -> dict[str, Any]:
    enforce(cred, "identity:implied_roles:list")
    p = lookup(session, cred, Role, prior, "role")
    found = _inferences(session, request, [p.id])
    inference = found[0] if found else {"prior_role": _brief(p, request), "implies": []}
    return {"role_inference": inference, "links": {"self": link(request, f"/roles/{p.id}/implies")}}


@router.get("/role_inferences")
def list_inferences(request: Request, session: SessionDep, cred: CredentialDep) -> dict[str, Any]:
    enforce(cred, "identity:implied_roles:list")
    return {"role_inferences": _inferences(session, request, None),
            "links": {"self": link(request, "/role_inferences"), "next": None, "previous": None}}
