"""Who holds which role where: direct and group grants, implied roles expanded transitively.

The one place that answers "effective roles of user U on target T" (token scope, grant checks,
``role_assignments?effective``), and the token-cache revision counter every such change bumps.
"""
from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import or_, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from core.db.engine import begin_write  # noqa: F401  (re-exported for keystone's routes)
from core.keystone.models import Assignment, Domain, GroupMember, ImpliedRole, Project, Revision, Role

SYSTEM = "all"  # target_id of system assignments


def group_ids_of(session: Session, user_id: str) -> list[str]:
    return list(session.scalars(select(GroupMember.group_id).where(GroupMember.user_id == user_id)))


def _held_target_ids(session: Session, user_id: str, target_type: str) -> set[str]:
    """Ids of the ``target_type`` rows where the user holds a role directly or through a group."""
    actors = [("user", user_id), *(("group", g) for g in group_ids_of(session, user_id))]
    ids: set[str] = set()
    for actor_type, actor_id in actors:
        ids.update(session.scalars(select(Assignment.target_id).where(
            Assignment.actor_type == actor_type, Assignment.actor_id == actor_id,
            Assignment.target_type == target_type)))
    return ids


def projects_of(session: Session, user_id: str) -> list[Project]:
    """Enabled projects where the user holds a role directly or through a group."""
    ids = _held_target_ids(session, user_id, "project")
    if not ids:
        return []
    return list(session.scalars(select(Project).where(Project.id.in_(ids), Project.enabled.is_(True))
                                .order_by(Project.name)))


def domains_of(session: Session, user_id: str) -> list[Domain]:
    """Enabled domains where the user holds a role directly or through a group."""
    ids = _held_target_ids(session, user_id, "domain")
    if not ids:
        return []
    return list(session.scalars(select(Domain).where(Domain.id.in_(ids), Domain.enabled.is_(True))
                                .order_by(Domain.name)))


def implied_map(session: Session) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for prior, implied in session.execute(select(ImpliedRole.prior_role_id, ImpliedRole.implied_role_id)):
        out.setdefault(prior, set()).add(implied)
    return out


def expand_implied(role_ids: Iterable[str], imap: dict[str, set[str]]) -> dict[str, str | None]:
    """role id -> the prior role id it was implied by (None for the directly held ones)."""
    out: dict[str, str | None] = {r: None for r in role_ids}
    todo = list(out)
    while todo:
        rid = todo.pop()
        for implied in imap.get(rid, ()):
            if implied not in out:  # cycles are refused at creation; this also guards old data
                out[implied] = rid
                todo.append(implied)
    return out


def effective_roles(session: Session, user_id: str, target_type: str, target_id: str) -> list[tuple[str, str]]:
    """Effective (role id, role name) of a user on a target: direct + via groups, implied expanded."""
    groups = group_ids_of(session, user_id)
    cond: ColumnElement[bool] = (Assignment.actor_type == "user") & (Assignment.actor_id == user_id)
    if groups:
        cond = or_(cond, (Assignment.actor_type == "group") & Assignment.actor_id.in_(groups))
    direct = set(session.scalars(select(Assignment.role_id).where(
        cond, Assignment.target_type == target_type, Assignment.target_id == target_id)))
    if not direct:
        return []
    ids = expand_implied(direct, implied_map(session))
    rows = session.execute(select(Role.id, Role.name).where(Role.id.in_(list(ids)))).all()
    return sorted(((rid, name) for rid, name in rows), key=lambda r: r[1])


def bump_revision(session: Session) -> None:
    """Tell every replica's token cache that roles, users or revocations changed (same transaction)."""
    res = session.execute(update(Revision).where(Revision.id == 1).values(revision=Revision.revision + 1))
    if isinstance(res, CursorResult) and not res.rowcount:
        session.add(Revision(id=1, revision=1))


def current_revision(session: Session) -> int:
    return int(session.scalar(select(Revision.revision).where(Revision.id == 1)) or 0)


def would_cycle(session: Session, prior_id: str, implied_id: str) -> bool:
    """True if adding prior ⊃ implied creates a cycle (implied already reaches prior)."""
    if prior_id == implied_id:
        return True
    return prior_id in expand_implied([implied_id], implied_map(session))
