"""The one CRUD skeleton of the identity routes (domains, projects, users, groups, roles, services,
endpoints, regions, policies): a ``Kind`` says what differs per resource (model, names, view, list
filters, policy target), and its methods do what every resource does the same way — list with
visibility and Keystone's paging, show, find by id or name, a checked unique name, and a change that is
enforced, audited and committed. Route modules keep only what is particular to their resource.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request, Response
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from core.api.context import Credential
from core.api.deps import CredentialDep, SessionDep
from core.api.inputs import check_display_name
from core.api.listing import ListDep, ListQuery
from core.errors import CloudpodsError, DuplicateNameError, InputParameterError, ResourceNotFoundError
from core.keystone.models import Domain
from core.keystone.policy import enforce
from core.keystone.routes._common import (
    AuditInfo,
    audited,
    bool_param,
    exists,
    keystone_page,
    list_reply,
    lookup,
    visible,
    visible_domain_id,
)

View = Callable[[Any, Request], dict[str, Any]]


def domain_of_row(row: Any) -> dict[str, Any]:
    """Policy target of a stored row that belongs to a domain (never the body's claim)."""
    return {"domain_id": row.domain_id}


@dataclass(frozen=True)
class Kind:
    model: Any
    name: str  # "user": the reply's key, the audit's object type, the word in error messages
    plural: str  # "users": the list's key and the policy's resource (identity:users:get)
    view: View
    filters: tuple[str, ...] = ()  # query keys matched by equality on the column of that name
    bool_filters: tuple[str, ...] = ()  # query keys parsed as booleans (enabled=true)
    order_by: str = "name"
    scoped: bool = True  # rows are filtered by what the caller may see (visible())
    target: Callable[[Any], dict[str, Any]] | None = None  # policy target of a stored row, for changes
    show_target: bool = False  # show enforces the target too
    label: str | None = "name"  # the attribute the audit records as the object's name
    dup_where: str = " in this domain"  # where a name must be unique, as the 409 says it

    def action(self, verb: str) -> str:
        return f"identity:{self.plural}:{verb}"

    def one(self, row: Any, request: Request) -> dict[str, Any]:
        return {self.name: self.view(row, request)}

    def find(self, session: Session, cred: Credential, ref: str) -> Any:
        """The row by id (or by name where it has one); invisible or missing is 404."""
        return lookup(session, cred, self.model, ref, self.name, check_visible=self.scoped)

    def filtered(self, stmt: Select[Any], q: ListQuery) -> Select[Any]:
        for key in self.filters:
            if q.get(key):
                stmt = stmt.where(getattr(self.model, key) == q.get(key))
        for key in self.bool_filters:
            if bool_param(q, key) is not None:
                stmt = stmt.where(getattr(self.model, key).is_(bool_param(q, key)))
        return stmt

    def list(self, request: Request, session: Session, cred: Credential, q: ListQuery,
             stmt: Select[Any] | None = None, render: Callable[[list[Any]], list[dict[str, Any]]] | None = None
             ) -> dict[str, Any]:
        enforce(cred, self.action("list"))
        if stmt is None:
            stmt = select(self.model)
        if self.scoped:
            stmt = stmt.where(visible(cred, self.model))
        page = keystone_page(session, self.filtered(stmt, q), self.model, q, order_by=self.order_by)
        rows = list(page.rows)
        items = render(rows) if render else [self.view(r, request) for r in rows]
        return list_reply(request, self.plural, items, page)

    def show(self, request: Request, session: Session, cred: Credential, ref: str) -> dict[str, Any]:
        enforce(cred, self.action("get"))
        row = self.find(session, cred, ref)
        if self.show_target and self.target:
            enforce(cred, self.action("get"), self.target(row))
        return self.one(row, request)

    def mount_list(self, router: APIRouter, path: str, stmt: Callable[[ListQuery], Select[Any]] | None = None
                   ) -> None:
        """``GET path``: the list, from ``stmt(query)`` when the resource narrows it first. The route is
        named ``list_<plural>`` as a hand-written one was (its OpenAPI operation id)."""
        def list_rows(request: Request, session: SessionDep, cred: CredentialDep, q: ListDep) -> dict[str, Any]:
            return self.list(request, session, cred, q, stmt(q) if stmt else None)

        router.add_api_route(path, list_rows, methods=["GET"], name=f"list_{self.plural}")

    def mount_show(self, router: APIRouter, path: str) -> None:
        """``GET path/{ref}``: one row, named ``get_<name>``."""
        def show_row(ref: str, request: Request, session: SessionDep, cred: CredentialDep) -> dict[str, Any]:
            return self.show(request, session, cred, ref)

        router.add_api_route(f"{path}/{{ref}}", show_row, methods=["GET"], name=f"get_{self.name}")

    def mount_reads(self, router: APIRouter, path: str) -> None:
        """The list and the show of a resource that narrows neither."""
        self.mount_list(router, path)
        self.mount_show(router, path)

    def mount_delete(self, router: APIRouter, path: str) -> None:
        """``DELETE path/{ref}`` of a row that goes with nothing to check first (what hangs off it goes by
        ON DELETE CASCADE), named ``delete_<name>``."""
        def delete_row(ref: str, session: SessionDep, cred: CredentialDep) -> Response:
            with self.changing(session, cred, "delete", ref) as (row, _):
                session.delete(row)
            return Response(status_code=204)

        router.add_api_route(f"{path}/{{ref}}", delete_row, methods=["DELETE"], status_code=204,
                             name=f"delete_{self.name}")

    def refreshed(self, session: Session, row: Any, request: Request) -> dict[str, Any]:
        """The reply of an update: the row as stored (defaults and triggers applied)."""
        session.refresh(row)
        return self.one(row, request)

    @contextmanager
    def creating(self, session: Session, cred: Credential, name: str) -> Iterator[AuditInfo]:
        """An audited, enforced create; the body adds the row with ``added``."""
        with audited(session, cred, "create", self.name, obj_name=name) as a:
            enforce(cred, self.action("create"))
            yield a

    def added(self, session: Session, a: AuditInfo, row: Any) -> Any:
        session.add(row)
        session.flush()
        self._audit_as(a, row)
        return row

    @contextmanager
    def changing(self, session: Session, cred: Credential, verb: str, ref: str) -> Iterator[tuple[Any, AuditInfo]]:
        """An audited change of one stored row (``update``, ``delete``, ...): enforced, then found,
        then enforced again on the stored row's owner; committed when the block ends."""
        with audited(session, cred, verb, self.name, obj_id=ref, obj_name=ref if self.label == "id" else "") as a:
            enforce(cred, self.action(verb))
            row = self.find(session, cred, ref)
            self._audit_as(a, row)
            self._enforce_on(cred, verb, row)
            yield row, a

    def allows(self, session: Session, cred: Credential, verb: str, ref: str) -> bool:
        """Whether ``changing`` would let the caller in, asked before costly work (a password hash) so
        a refused caller does not cost it; ``changing`` still decides (and audits a refusal)."""
        try:
            enforce(cred, self.action(verb))
            self._enforce_on(cred, verb, self.find(session, cred, ref))
        except CloudpodsError:
            return False
        return True

    def _enforce_on(self, cred: Credential, verb: str, row: Any) -> None:
        if self.target:
            enforce(cred, self.action(verb), self.target(row))

    def _audit_as(self, a: AuditInfo, row: Any) -> None:
        a.obj_id = str(row.id)
        if self.label:
            a.obj_name = str(getattr(row, self.label, "") or "")

    def checked_name(self, session: Session, name: str, *, domain_id: str | None = None,
                     exclude: str | None = None) -> str:
        """A stripped, displayable name unique in ``domain_id`` (None: unique anywhere, any case)."""
        name = name.strip()
        if not name:
            raise InputParameterError(f"{self.name} name must not be empty")
        check_display_name(name, f"{self.name} name")
        col = self.model.name
        stmt = select(self.model.id).where(func.lower(col) == name.lower()) if domain_id is None else \
            select(self.model.id).where(self.model.domain_id == domain_id, col == name)
        if exclude:
            stmt = stmt.where(self.model.id != exclude)
        if exists(session, stmt):
            raise DuplicateNameError(f"Duplicate entry: a {self.name} named {name!r} already exists{self.dup_where}.")
        return name


def owning_domain(session: Session, cred: Credential, ref: str | None) -> Domain:
    """The domain a new row goes to: the body's (id or name), else the caller's, else ``default``."""
    domain_id = ref or visible_domain_id(cred) or "default"
    dom = session.get(Domain, domain_id) or session.scalar(select(Domain).where(Domain.name == domain_id))
    if dom is None:
        raise ResourceNotFoundError(f"Could not find domain: {domain_id}.")
    return dom
