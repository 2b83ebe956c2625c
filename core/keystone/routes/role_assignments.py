"""``GET /v3/role_assignments``: filters, ``effective`` (groups and implied roles expanded), names.

A caller sees assignments on targets it can see: everything in system scope, its domain and the
domain's projects in domain scope, its project in project scope.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import or_, select

from core.api.context import Credential
from core.api.deps import CredentialDep, SessionDep
from core.api.listing import parse_bool
from core.keystone.assignments import expand_implied, implied_map
from core.keystone.models import Assignment, Domain, Group, GroupMember, Project, Role, User
from core.keystone.policy import enforce, reach
from core.keystone.routes._common import link
from core.keystone.routes.grants import assignment_link

router = APIRouter()


@dataclass(frozen=True)
class Entry:
    role_id: str
    atype: str  # user | group
    actor_id: str
    ttype: str
    tid: str
    via_group: str | None = None
    prior_role: str | None = None
    direct_role: str | None = None  # the assigned role an implied one came from


def _scope_filter(cred: Credential) -> Any:
    if reach(cred) == "system":
        return None
    if reach(cred) == "domain":
        projects = select(Project.id).where(Project.domain_id == cred.domain_id)
        return or_((Assignment.target_type == "domain") & (Assignment.target_id == cred.domain_id),
                   (Assignment.target_type == "project") & Assignment.target_id.in_(projects))
    return (Assignment.target_type == "project") & (Assignment.target_id == (cred.project_id or ""))


@router.get("/role_assignments")
def list_role_assignments(request: Request, session: SessionDep, cred: CredentialDep) -> dict[str, Any]:
    enforce(cred, "identity:role_assignments:list")
    qp = request.query_params
    effective = "effective" in qp and parse_bool(qp.get("effective") or "true", "effective")
    names = "include_names" in qp and parse_bool(qp.get("include_names") or "true", "include_names")
    user_id, group_id, role_id = qp.get("user.id"), qp.get("group.id"), qp.get("role.id")
    stmt = select(Assignment)
    scope_cond = _scope_filter(cred)
    if scope_cond is not None:
        stmt = stmt.where(scope_cond)
    if qp.get("scope.project.id"):
        stmt = stmt.where(Assignment.target_type == "project", Assignment.target_id == qp["scope.project.id"])
    if qp.get("scope.domain.id"):
        stmt = stmt.where(Assignment.target_type == "domain", Assignment.target_id == qp["scope.domain.id"])
    if qp.get("scope.system"):
        stmt = stmt.where(Assignment.target_type == "system")
    if qp.get("scope.OS-INHERIT:inherited_to"):
        stmt = stmt.where(Assignment.inherited.is_(True))
    if group_id:
        stmt = stmt.where(Assignment.actor_type == "group", Assignment.actor_id == group_id)
    elif user_id and not effective:
        stmt = stmt.where(Assignment.actor_type == "user", Assignment.actor_id == user_id)
    elif user_id:  # effective: the user's own and its groups'
        groups = select(GroupMember.group_id).where(GroupMember.user_id == user_id)
        stmt = stmt.where(or_((Assignment.actor_type == "user") & (Assignment.actor_id == user_id),
                              (Assignment.actor_type == "group") & Assignment.actor_id.in_(groups)))
    rows = list(session.scalars(stmt))
    entries = [Entry(r.role_id, r.actor_type, r.actor_id, r.target_type, r.target_id) for r in rows]
    if effective:
        entries = _effective(session, entries, user_id)
    if role_id:
        entries = [e for e in entries if e.role_id == role_id]
    entries.sort(key=lambda e: (e.ttype, e.tid, e.atype, e.actor_id, e.role_id))
    namer = _Namer(session) if names else None
    items = [_entry_dict(request, e, namer) for e in entries]
    return {"role_assignments": items, "links": {"self": link(request, "/role_assignments"), "next": None,
                                                 "previous": None}}


def _effective(session: SessionDep, entries: list[Entry], only_user: str | None) -> list[Entry]:
    """Groups replaced by their members; implied roles added (each once per actor and target)."""
    imap = implied_map(session)
    out: dict[tuple[str, str, str, str], Entry] = {}
    for e in entries:
        if e.atype == "group":
            members = session.scalars(select(GroupMember.user_id).where(GroupMember.group_id == e.actor_id))
            users: list[tuple[str, str | None]] = [(u, e.actor_id) for u in members
                                                   if only_user is None or u == only_user]
        else:
            users = [(e.actor_id, None)]
        for uid, via in users:
            for rid, prior in expand_implied([e.role_id], imap).items():
                key = (uid, e.ttype, e.tid, rid)
                if key in out and prior is not None:
                    continue  # a direct assignment wins over an implied duplicate
                out[key] = Entry(rid, "user", uid, e.ttype, e.tid, via, prior, e.role_id)
    return list(out.values())


class _Namer:
    def __init__(self, session: SessionDep) -> None:
        self.s = session
        self.domains = {d.id: d.name for d in session.scalars(select(Domain))}

    def domain(self, did: str) -> dict[str, str]:
        return {"id": did, "name": self.domains.get(did, "")}

    def actor(self, atype: str, aid: str) -> dict[str, Any]:
        row: User | Group | None = self.s.get(User, aid) if atype == "user" else self.s.get(Group, aid)
        if row is None:
            return {"id": aid}
        return {"id": aid, "name": row.name, "domain": self.domain(row.domain_id)}

    def role(self, rid: str) -> dict[str, Any]:
        r = self.s.get(Role, rid)
        out: dict[str, Any] = {"id": rid, "name": r.name if r else ""}
        if r is not None and r.domain_id:
            out["domain"] = self.domain(r.domain_id)
        return out

    def target(self, ttype: str, tid: str) -> dict[str, Any]:
        if ttype == "project":
            p = self.s.get(Project, tid)
            return {"id": tid, "name": p.name if p else "", "domain": self.domain(p.domain_id if p else "")}
        return self.domain(tid)


def _entry_dict(request: Request, e: Entry, namer: _Namer | None) -> dict[str, Any]:
    out: dict[str, Any] = {"role": namer.role(e.role_id) if namer else {"id": e.role_id}}
    out[e.atype] = namer.actor(e.atype, e.actor_id) if namer else {"id": e.actor_id}
    if e.ttype == "system":
        out["scope"] = {"system": {"all": True}}
    else:
        out["scope"] = {e.ttype: namer.target(e.ttype, e.tid) if namer else {"id": e.tid}}
    direct_actor = ("group", e.via_group) if e.via_group else (e.atype, e.actor_id)
    links = {"assignment": assignment_link(request, e.ttype, e.tid, direct_actor[0], direct_actor[1],
                                           e.direct_role or e.role_id)}
    if e.via_group:
        links["membership"] = link(request, f"/groups/{e.via_group}/users/{e.actor_id}")
    if e.prior_role:
        out["prior_role"] = namer.role(e.prior_role) if namer else {"id": e.prior_role}
        links["prior_role"] = link(request, f"/roles/{e.prior_role}/implies/{e.role_id}")
    out["links"] = links
    return out

