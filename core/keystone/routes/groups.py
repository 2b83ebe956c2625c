"""``/v3/groups`` and membership (``/v3/groups/{g}/users/{u}``)."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import delete, select

from core.api.deps import CredentialDep, SessionDep
from core.errors import InputParameterError, ResourceNotFoundError
from core.keystone.models import Assignment, Group, GroupMember, User
from core.keystone.policy import enforce
from core.keystone.routes._common import Body, audited, list_reply, lookup, visible
from core.keystone.routes._crud import Kind, domain_of_row, owning_domain
from core.keystone.views import group_view, user_view

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


GROUPS = Kind(Group, "group", "groups", group_view, filters=("name", "domain_id"), target=domain_of_row)


@router.post("/groups", status_code=201)
def create_group(request: Request, session: SessionDep, cred: CredentialDep, body: GroupCreateBody
                 ) -> dict[str, Any]:
    b = body.group
    with GROUPS.creating(session, cred, b.name) as a:
        dom = owning_domain(session, cred, b.domain_id)
        enforce(cred, "identity:groups:create", {"domain_id": dom.id})
        g = GROUPS.added(session, a, Group(name=GROUPS.checked_name(session, b.name, domain_id=dom.id),
                                           domain_id=dom.id, description=b.description or ""))
    return GROUPS.one(g, request)


GROUPS.mount_reads(router, "/groups")


@router.patch("/groups/{ref}")
def update_group(ref: str, request: Request, session: SessionDep, cred: CredentialDep, body: GroupUpdateBody
                 ) -> dict[str, Any]:
    b = body.group
    with GROUPS.changing(session, cred, "update", ref) as (g, _):
        if b.domain_id is not None and b.domain_id != g.domain_id:
            raise InputParameterError("domain_id is immutable: a group cannot move to another domain")
        if b.name is not None and b.name != g.name:
            g.name = GROUPS.checked_name(session, b.name, domain_id=g.domain_id, exclude=g.id)
        if b.description is not None:
            g.description = b.description
    return GROUPS.refreshed(session, g, request)


@router.delete("/groups/{ref}", status_code=204)
def delete_group(ref: str, request: Request, session: SessionDep, cred: CredentialDep) -> Response:
    with GROUPS.changing(session, cred, "delete", ref) as (g, _):
        session.execute(delete(Assignment).where(Assignment.actor_type == "group", Assignment.actor_id == g.id))
        session.delete(g)
        request.app.state.auth.changed(session)
    return Response(status_code=204)


@router.get("/groups/{ref}/users")
def group_users(ref: str, request: Request, session: SessionDep, cred: CredentialDep) -> dict[str, Any]:
    enforce(cred, "identity:group_users:list")
    g = lookup(session, cred, Group, ref, "group")
    users = session.scalars(select(User).join(GroupMember, GroupMember.user_id == User.id)
                            .where(GroupMember.group_id == g.id, visible(cred, User)).order_by(User.name))
    return list_reply(request, "users", [user_view(u, request) for u in users])


def _member_refs(session: SessionDep, cred: CredentialDep, gref: str, uref: str) -> tuple[Group, User]:
    g = lookup(session, cred, Group, gref, "group")
    u = lookup(session, cred, User, uref, "user")
    return g, u


@contextmanager
def _member_change(session: SessionDep, cred: CredentialDep, gref: str, uref: str, verb: str
                   ) -> Iterator[tuple[Group, User]]:
    """An audited ``add``/``remove`` of a user in a group, enforced on the caller and on the group's
    domain; committed when the block ends."""
    with audited(session, cred, f"{verb}-user", "group", obj_id=gref) as a:
        enforce(cred, f"identity:group_users:{verb}")
        g, u = _member_refs(session, cred, gref, uref)
        a.set(g)
        a.notes = f"user {u.id}"
        enforce(cred, f"identity:group_users:{verb}", {"domain_id": g.domain_id})
        yield g, u


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
    with _member_change(session, cred, gref, uref, "add") as (g, u):
        enforce(cred, "identity:group_users:add", {"domain_id": u.domain_id})
        if session.get(GroupMember, {"group_id": g.id, "user_id": u.id}) is None:
            session.add(GroupMember(group_id=g.id, user_id=u.id))
            request.app.state.auth.changed(session)  # the group's roles reach the user's tokens
    return Response(status_code=204)


@router.delete("/groups/{gref}/users/{uref}", status_code=204)
def remove_member(gref: str, uref: str, request: Request, session: SessionDep, cred: CredentialDep) -> Response:
    with _member_change(session, cred, gref, uref, "remove") as (g, u):
        m = session.get(GroupMember, {"group_id": g.id, "user_id": u.id})
        if m is None:
            raise ResourceNotFoundError(f"user {u.id} is not a member of group {g.id}")
        session.delete(m)
        request.app.state.auth.changed(session)
    return Response(status_code=204)
