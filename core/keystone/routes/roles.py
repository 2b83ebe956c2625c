"""``/v3/roles`` and role inference (``/v3/roles/{prior}/implies/{implied}``, ``/v3/role_inferences``)."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import Select, select

from core.api.deps import CredentialDep, SessionDep
from core.api.listing import ListQuery
from core.errors import ConflictError, ForbiddenError, InputParameterError, ResourceNotFoundError
from core.keystone.assignments import would_cycle
from core.keystone.bootstrap import DEFAULT_ROLES
from core.keystone.models import Domain, ImpliedRole, Role
from core.keystone.policy import enforce
from core.keystone.routes._common import Body, audited, link, lookup
from core.keystone.routes._crud import Kind
from core.keystone.views import role_brief, role_view

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


ROLES = Kind(Role, "role", "roles", role_view, filters=("name",), dup_where="")


@router.post("/roles", status_code=201)
def create_role(request: Request, session: SessionDep, cred: CredentialDep, body: RoleCreateBody) -> dict[str, Any]:
    b = body.role
    with ROLES.creating(session, cred, b.name) as a:
        domain_id = b.domain_id or ""
        if domain_id and session.get(Domain, domain_id) is None:
            raise ResourceNotFoundError(f"Could not find domain: {domain_id}.")
        r = ROLES.added(session, a, Role(name=ROLES.checked_name(session, b.name, domain_id=domain_id),
                                         domain_id=domain_id, description=b.description or ""))
    return ROLES.one(r, request)


def _global_or_asked(q: ListQuery) -> Select[Any]:
    return select(Role).where(Role.domain_id == (q.get("domain_id") or ""))  # Keystone: global unless asked


ROLES.mount_list(router, "/roles", _global_or_asked)
ROLES.mount_show(router, "/roles")


@router.patch("/roles/{ref}")
def update_role(ref: str, request: Request, session: SessionDep, cred: CredentialDep, body: RoleUpdateBody
                ) -> dict[str, Any]:
    b = body.role
    with ROLES.changing(session, cred, "update", ref) as (r, _):
        if b.domain_id is not None and b.domain_id != r.domain_id:
            raise InputParameterError("domain_id is immutable")
        if b.name is not None and b.name != r.name:
            if r.domain_id == "" and r.name in DEFAULT_ROLES:
                raise ForbiddenError(f"the built-in role {r.name} cannot be renamed")
            r.name = ROLES.checked_name(session, b.name, domain_id=r.domain_id, exclude=r.id)
            request.app.state.auth.changed(session)
        if b.description is not None:
            r.description = b.description
    return ROLES.refreshed(session, r, request)


@router.delete("/roles/{ref}", status_code=204)
def delete_role(ref: str, request: Request, session: SessionDep, cred: CredentialDep) -> Response:
    with ROLES.changing(session, cred, "delete", ref) as (r, _):
        if r.domain_id == "" and r.name in DEFAULT_ROLES:
            raise ForbiddenError(f"the built-in role {r.name} cannot be deleted")
        session.delete(r)  # its assignments and inference rules go with it (ON DELETE CASCADE)
        request.app.state.auth.changed(session)
    return Response(status_code=204)


# ---- role inference ----------------------------------------------------------------------------
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
    return {"role_inference": {"prior_role": role_brief(p, request), "implies": role_brief(i, request)},
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
    return {"role_inference": {"prior_role": role_brief(p, request), "implies": role_brief(i, request)},
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
    return [{"prior_role": role_brief(roles[pid], request), "implies": [role_brief(r, request) for r in imps]}
            for pid, imps in sorted(by_prior.items(), key=lambda kv: roles[kv[0]].name)]


@router.get("/roles/{prior}/implies")
def list_implied(prior: str, request: Request, session: SessionDep, cred: CredentialDep) -> dict[str, Any]:
    enforce(cred, "identity:implied_roles:list")
    p = lookup(session, cred, Role, prior, "role")
    found = _inferences(session, request, [p.id])
    inference = found[0] if found else {"prior_role": role_brief(p, request), "implies": []}
    return {"role_inference": inference, "links": {"self": link(request, f"/roles/{p.id}/implies")}}


@router.get("/role_inferences")
def list_inferences(request: Request, session: SessionDep, cred: CredentialDep) -> dict[str, Any]:
    enforce(cred, "identity:implied_roles:list")
    return {"role_inferences": _inferences(session, request, None),
            "links": {"self": link(request, "/role_inferences"), "next": None, "previous": None}}
