"""Shared helpers of the identity routes: links, lookups with visibility, audit, list envelopes.

Visibility (what a caller may *see*; anything else is 404, API.md §3):
system scope sees everything; a domain-scoped token sees its domain's rows; a project-scoped token
sees its own project, its own user, its project's domain and the groups it belongs to.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ConfigDict
from sqlalchemy import Select, false, or_, select, true
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement

from core.api.context import Credential
from core.api.listing import ListQuery, Page, paginate, parse_bool
from core.audit import record
from core.errors import (
    CloudpodsError,
    ConflictError,
    DuplicateNameError,
    InputParameterError,
    ResourceNotFoundError,
)
from core.keystone.assignments import begin_write
from core.keystone.models import Assignment, Domain, Group, GroupMember, Project, Role, User, UserCredential
from core.keystone.policy import reach
from core.keystone.views import link

T = TypeVar("T")


class Body(BaseModel):
    """Request bodies: unknown keys are ignored (real clients send extras), types are checked."""

    model_config = ConfigDict(extra="ignore")


def list_reply(request: Request, key: str, items: list[dict[str, Any]], page: Page[Any] | None = None
               ) -> dict[str, Any]:
    """Keystone's list shape, plus Cloudpods' ``total``/``limit``/``offset`` for climc's footer."""
    out: dict[str, Any] = {key: pick_fields(request, items),
                           "links": {"self": link(request, "/" + key), "next": None, "previous": None}}
    if page is not None:
        out.update(total=page.total, limit=page.limit, offset=page.offset)
    return out


def _project_ref(session: Session, ref: str) -> Project | None:
    return session.get(Project, ref) or session.scalar(select(Project).where(Project.name == ref).limit(1))


def cloudpods_filters(session: Session, stmt: Select[Any], model: Any, q: ListQuery) -> Select[Any]:
    """Cloudpods' common list options on identity lists (its climc sends them to every ``*-list``):
    ``project``/``tenant`` (id or name) keeps users and groups holding a role there, that project,
    or its domain; ``project_domain`` keeps rows of that domain; ``tags.N.key`` matches nothing (no
    identity row carries metadata tags here) and ``no_tags`` everything; ``admin``/``system`` change
    nothing (the caller already sees all it may). They only narrow what the caller sees."""
    ref = None if {"project", "tenant"} & q.consumed else (q.get("project") or q.get("tenant"))
    if ref:
        proj = _project_ref(session, ref)
        on_project = (Assignment.target_type == "project") & (Assignment.target_id == (proj.id if proj else ""))
        if model is User:
            groups = select(Assignment.actor_id).where(on_project, Assignment.actor_type == "group")
            stmt = stmt.where(or_(
                User.id.in_(select(Assignment.actor_id).where(on_project, Assignment.actor_type == "user")),
                User.id.in_(select(GroupMember.user_id).where(GroupMember.group_id.in_(groups)))))
        elif model is Group:
            stmt = stmt.where(Group.id.in_(select(Assignment.actor_id).where(on_project,
                                                                             Assignment.actor_type == "group")))
        elif model is Project:
            stmt = stmt.where(Project.id == (proj.id if proj else ""))
        elif model is Domain:
            stmt = stmt.where(Domain.id == (proj.domain_id if proj else ""))
        else:
            raise InputParameterError(f"project: {model.__tablename__.removeprefix('ks_')} belong to no project")
    dom_ref = None if "project_domain" in q.consumed else q.get("project_domain")
    if dom_ref:
        dom = session.get(Domain, dom_ref) or session.scalar(select(Domain).where(Domain.name == dom_ref))
        if model is Domain:
            stmt = stmt.where(Domain.id == (dom.id if dom else ""))
        elif model in (User, Group, Project):
            stmt = stmt.where(model.domain_id == (dom.id if dom else ""))
        else:
            raise InputParameterError(f"project_domain: {model.__tablename__.removeprefix('ks_')} belong to no "
                                      "domain")
    if any(k.startswith("tags.") for k in q.extra):
        stmt = stmt.where(false())
    return stmt


def pick_fields(request: Request, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``field=a&field=b`` (or ``field.0=a``): only those keys of each row, as Cloudpods answers."""
    qp = request.query_params
    fields = {f for k in qp if k == "field" or k.startswith("field.") for v in qp.getlist(k) for f in v.split(",")
              if f}
    return [{k: v for k, v in it.items() if k in fields} for it in items] if fields else items


def keystone_page(session: Session, stmt: Select[Any], model: Any, q: ListQuery,
                  order_by: str = "name") -> Page[Any]:
    """Keystone lists are name-ordered ascending unless the caller asks otherwise."""
    stmt = cloudpods_filters(session, stmt, model, q)
    if not q.order_by:
        q.order_by = [order_by]
        q.order = "asc" if "order" not in q.extra else q.order
    return paginate(session, stmt, model, q, plain_filters=False)  # Keystone's own filter grammar


def bool_param(q: ListQuery, name: str) -> bool | None:
    return parse_bool(q.get(name), name)


# ---- visibility --------------------------------------------------------------------------------
def visible_domain_id(cred: Credential) -> str | None:
    """The one domain a non-system caller lives in (None for system scope = all)."""
    if reach(cred) == "system":
        return None
    if reach(cred) == "domain":
        return cred.domain_id or ""
    if reach(cred) == "project":
        return cred.project_domain_id or ""
    return ""


def visible(cred: Credential, model: Any) -> ColumnElement[bool]:
    """SQL condition: rows of ``model`` the caller may see."""
    if reach(cred) == "system":
        return true()
    dom = visible_domain_id(cred)
    if model is Domain:
        return Domain.id == dom
    if model is Role:
        return or_(Role.domain_id == "", Role.domain_id == dom)
    if model is UserCredential:
        return UserCredential.user_id == cred.user_id
    if reach(cred) == "domain":
        if model in (Project, User, Group):
            return model.domain_id == dom
        return false()
    if reach(cred) == "project":
        if model is Project:
            return Project.id == cred.project_id
        if model is User:
            return User.id == cred.user_id
        if model is Group:
            return Group.id.in_(select(GroupMember.group_id).where(GroupMember.user_id == cred.user_id))
    return false()


def is_visible(session: Session, cred: Credential, model: Any, row_id: str) -> bool:
    return session.scalar(select(model.id).where(model.id == row_id, visible(cred, model))) is not None


def lookup(session: Session, cred: Credential, model: Any, ref: str, kind: str,
           check_visible: bool = True) -> Any:
    """A row by id, or by name (Cloudpods accepts a name wherever an id is); invisible rows are 404."""
    cond = visible(cred, model) if check_visible else true()
    row = session.scalar(select(model).where(model.id == ref, cond))
    if row is None and hasattr(model, "name"):
        rows = list(session.scalars(select(model).where(model.name == ref, cond).limit(2)))
        if len(rows) > 1:
            raise ConflictError(f"more than one {kind} is named {ref!r}: use its id")
        row = rows[0] if rows else None
    if row is None:
        raise ResourceNotFoundError(f"Could not find {kind}: {ref}.")
    return row


# ---- audit -------------------------------------------------------------------------------------
@dataclass
class AuditInfo:
    obj_id: str = ""
    obj_name: str = ""
    notes: str = ""

    def set(self, row: Any) -> None:
        self.obj_id = str(getattr(row, "id", "") or "")
        self.obj_name = str(getattr(row, "name", "") or "")


@contextmanager
def audited(session: Session, cred: Credential | None, action: str, obj_type: str,
            obj_id: str = "", obj_name: str = "") -> Iterator[AuditInfo]:
    """Run a change and record it with its result; commits on success.

    A refused or failed change is rolled back and then recorded as a failure in its own
    transaction, so attempts (403, 409, ...) are in the log too. Integrity errors become 409 here.
    """
    info = AuditInfo(obj_id, obj_name)
    begin_write(session)
    try:
        yield info
        session.flush()
    except IntegrityError:
        err: CloudpodsError = DuplicateNameError(f"{obj_type} {info.obj_name or info.obj_id} conflicts with an "
                                                 "existing one")
        _record_failure(session, cred, action, obj_type, info, err)
        raise err from None
    except CloudpodsError as e:
        _record_failure(session, cred, action, obj_type, info, e)
        raise
    record(session, cred, service="identity", action=action, obj_type=obj_type, obj_id=info.obj_id,
           obj_name=info.obj_name, success=True, notes=info.notes)
    session.commit()


def _record_failure(session: Session, cred: Credential | None, action: str, obj_type: str, info: AuditInfo,
                    e: CloudpodsError) -> None:
    session.rollback()
    record(session, cred, service="identity", action=action, obj_type=obj_type, obj_id=info.obj_id,
           obj_name=info.obj_name, success=False, notes=f"{e.code} {e.error_class}: {e.details}")
    session.commit()


def exists(session: Session, stmt: Select[Any]) -> bool:
    return session.scalar(stmt.limit(1)) is not None
