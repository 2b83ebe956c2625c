"""``/v3/groups`` and membership (``/v3/groups/{g}/users/{u}``)."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import delete, select

from core.api.deps import CredentialDep, SessionDep
from core.api.inputs import check_display_name
from core.api.listing import ListDep
from core.errors import DuplicateNameError, InputParameterError, ResourceNotFoundError
from core.keystone.models import Assignment, Domain, Group, GroupMember, User
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
    visible_domain_id,
)

router = APIRouter()


class GroupFields(Body):
    name: str | None = None
    domain_id: str | None = None
    description: str | None = None


class GroupCreate(GroupFields):
    name: str


class GroupCreateBody(Body):
    group: GroupCreate


class GroupUpdateBody(Body):
    group: GroupFields


def group_dict(g: Group, request: Request) -> dict[str, Any]:
    return {"id": g.id, "name": g.name, "domain_id": g.domain_id, "description": g.description,
            "links": {"self": link(request, f"/groups/{g.id}")}}


def _check_name(session: SessionDep, domain_id: str, name: str, exclude: str | None = None) -> str:
    name = name.strip()
    if not name:
        raise InputParameterError("group name must not be empty")
    check_display_name(name, "group name")
    stmt = select(Group.id).where(Group.domain_id == domain_id, Group.name == name)
    if exclude:
        stmt = stmt.where(Group.id != exclude)
    if exists(session, stmt):
        raise DuplicateNameError(f"Duplicate entry: a group named {name!r} already exists in this domain.")
    return name


@router.post("/groups", status_code=201)
def create_group(request: Request, session: SessionDep, cred: CredentialDep, body: GroupCreateBody
                 ) -> dict[str, Any]:
    b = body.group
    with audited(session, cred, "create", "group", obj_name=b.name) as a:
        enforce(cred, "identity:groups:create")
        domain_id = b.domain_id or visible_domain_id(cred) or "default"
        dom = session.get(Domain, domain_id) or session.scalar(select(Domain).where(Domain.name == domain_id))
        if dom is None:
            raise ResourceNotFoundError(f"Could not find domain: {domain_id}.")
        enforce(cred, "identity:groups:create", {"domain_id": dom.id})
        g = Group(name=_check_name(session, dom.id, b.name), domain_id=dom.id, description=b.description or "")
        session.add(g)
        session.flush()
        a.set(g)
    return {"group": group_dict(g, request)}


@router.get("/groups")
def list_groups(request: Request, session: SessionDep, cred: CredentialDep, q: ListDep) -> dict[str, Any]:
    enforce(cred, "identity:groups:list")
    stmt = select(Group).where(visible(cred, Group))
    for key, col in (("name", Group.name), ("domain_id", Group.domain_id)):
        if q.get(key):
            stmt = stmt.where(col == q.get(key))
    page = keystone_page(session, stmt, Group, q)
    return list_reply(request, "groups", [group_dict(g, request) for g in page.rows], page)


@router.get("/groups/{ref}")
def get_group(ref: str, request: Request, session: SessionDep, cred: CredentialDep) -> dict[str, Any]:
    enforce(cred, "identity:groups:get")
    return {"group": group_dict(lookup(session, cred, Group, ref, "group"), request)}


@router.patch("/groups/{ref}")
def update_group(ref: str, request: Request, session: SessionDep, cred: CredentialDep, body: GroupUpdateBody
                 ) -> dict[str, Any]:
    b = body.group
    with audited(session, cred, "update", "group", obj_id=ref) as a:
        enforce(cred, "identity:groups:update")
        g = lookup(session, cred, Group, ref, "group")
        a.set(g)
        enforce(cred, "identity:groups:update", {"domain_id": g.domain_id})
        if b.domain_id is not None and b.domain_id != g.domain_id:
            raise InputParameterError("domain_id is immutable: a group cannot move to another domain")
        if b.name is not None and b.name != g.name:
            g.name = _check_name(session, g.domain_id, b.name, exclude=g.id)
        if b.description is not None:
            g.description = b.description
    session.refresh(g)
    return {"group": group_dict(g, request)}


@router.delete("/groups/{ref}", status_code=204)
def delete_group(ref: str, request: Request, session: SessionDep, cred: CredentialDep) -> Response:
    with audited(session, cred, "delete", "group", obj_id=ref) as a:
        enforce(cred, "identity:groups:delete")
        g = lookup(session, cred, Group, ref, "group")
        a.set(g)
        enforce(cred, "identity:groups:delete", {"domain_id": g.domain_id})
        session.execute(delete(Assignment).where(Assignment.actor_type == "group", Assignment.actor_id == g.id))
        session.delete(g)
        request.app.state.auth.changed(session)
    return Response(status_code=204)


@router.get("/groups/{ref}/users")
def group_users(ref: str, request: Request, session: SessionDep, cred: CredentialDep) -> dict[str, Any]:
    enforce(cred, "identity:group_users:list")
    g = lookup(session, cred, Group, ref, "group")
    from core.keystone.routes.users import user_dict

    users = session.scalars(select(User).join(GroupMember, GroupMember.user_id == User.id)
                            .where(GroupMember.group_id == g.id, visible(cred, User)).order_by(User.name))
    return list_reply(request, "users", [user_dict(u, request) for u in users])


def _member_refs(session: SessionDep, cred: CredentialDep, gref: str, uref: str) -> tuple[Group, User]:
    g = lookup(session, cred, Group, gref, "group")
    u = lookup(session, cred, User, uref, "user")
    return g, u


@router.head("/groups/{gref}/users/{uref}", status_code=204)
@router.get("/groups/{gref}/users/{uref}", status_code=204)
def check_member(gref: str, uref: str, session: SessionDep, cred: CredentialDep) -> Response:
    enforce(cred, "identity:group_users:list")
    g, u = _member_refs(session, cred, gref, uref)
    if session.get(GroupMember, {"group_id": g.id, "user_id": u.id}) is None:
        raise ResourceNotFoundError(f"user {u.id} is not a member of group {g.id}")
    return Response(status_code=204)


@router.put("/groups/{gref}/users/{uref}", status_code=204)
def add_member(gref: str, uref: str, request: Request, session: SessionDep, cred: CredentialDep) -> Response:
    with audited(session, cred, "add-user", "group", obj_id=gref) as a:
        enforce(cred, "identity:group_users:add")
        g, u = _member_refs(session, cred, gref, uref)
        a.set(g)
        a.notes = f"user {u.id}"
        enforce(cred, "identity:group_users:add", {"domain_id": g.domain_id})
        enforce(cred, "identity:group_users:add", {"domain_id": u.domain_id})
        if session.get(GroupMember, {"group_id": g.id, "user_id": u.id}) is None:
            session.add(GroupMember(group_id=g.id, user_id=u.id))
            request.app.state.auth.changed(session)  # the group's roles reach the user's tokens
    return Response(status_code=204)


@router.delete("/groups/{gref}/users/{uref}", status_code=204)
def remove_member(gref: str, uref: str, request: Request, session: SessionDep, cred: CredentialDep) -> Response:
    with audited(session, cred, "remove-user", "group", obj_id=gref) as a:
        enforce(cred, "identity:group_users:remove")
        g, u = _member_refs(session, cred, gref, uref)
        a.set(g)
        a.notes = f"user {u.id}"
        enforce(cred, "identity:group_users:remove", {"domain_id": g.domain_id})
        m = session.get(GroupMember, {"group_id": g.id, "user_id": u.id})
        if m is None:
            raise ResourceNotFoundError(f"user {u.id} is not a member of group {g.id}")
        session.delete(m)
        request.app.state.auth.changed(session)
    return Response(status_code=204)
