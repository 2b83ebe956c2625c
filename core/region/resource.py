"""The resource base: one ``Manager`` per resource and a registry the generic router dispatches to.

A manager declares what differs between resources (model, names, policy, owner rules, list
filters, serialisation, create/update/delete, actions, specs, joints); ``routes.py`` turns the
registry into Cloudpods' URL grammar (API.md §3) once, for every resource.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from sqlalchemy import DateTime, Select, bindparam, false, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import Label

from core.api.context import Credential
from core.api.listing import ListQuery
from core.audit import record
from core.errors import ActionNotFoundError, InputParameterError, ResourceNotFoundError, SpecNotFoundError
from core.keystone.policy import enforce, owner_filter, restrict
from core.region.common import iso, owner_of

# (manager, session, cred, row, body) -> reply dict
ActionFn = Callable[[Any, Session, Credential, Any, dict[str, Any]], Any]
ClassActionFn = Callable[[Any, Session, Credential, dict[str, Any]], Any]
SpecFn = Callable[[Any, Session, Credential, Any, ListQuery], Any]


@dataclass(frozen=True)
class Joint:
    """``/<master>/<mid>/<slave>/<sid>``: attach (POST), detach (DELETE), show (GET)."""

    slave: str  # plural of the slave manager
    attach: Callable[[Session, Credential, Any, Any, dict[str, Any]], dict[str, Any]]
    detach: Callable[[Session, Credential, Any, Any], None]
    show: Callable[[Session, Any, Any], dict[str, Any] | None]


class Manager:
    keyword: ClassVar[str]
    plural: ClassVar[str]
    model: ClassVar[Any]
    owned: ClassVar[bool] = False  # tenant-owned rows: restrict lists, 404 for other tenants
    shareable: ClassVar[bool] = False  # is_public rows are visible to every project
    searchable: ClassVar[tuple[str, ...]] = ("name",)
    columns: ClassVar[tuple[str, ...]] = ()  # serialised fields; default: every column
    # context lists: /<ctx plural>/<ctx id>/<plural> filters on this column
    contexts: ClassVar[dict[str, str]] = {}
    actions: ClassVar[dict[str, str]] = {}  # kebab-case action -> method name
    class_actions: ClassVar[dict[str, str]] = {}
    specs: ClassVar[dict[str, str]] = {}
    joints: ClassVar[dict[str, Joint]] = {}
    # what may be done here to a row synced from a cloud (manager_id set): None = everything (its
    # verbs reach the cloud, e.g. servers through the host contract); else these ops/actions only
    cloud_ops: ClassVar[frozenset[str] | None] = frozenset()

    @property
    def policy(self) -> str:
        return f"compute:{self.plural}"

    # ---- access ------------------------------------------------------------------------------
    def enforce(self, cred: Credential, op: str, row: Any = None) -> None:
        target = owner_of(row) if row is not None and self.owned else None
        if op == "get" and self.shareable and getattr(row, "is_public", False):
            target = None  # a shared row: what a caller may list it may read (changing it stays the owner's)
        enforce(cred, f"{self.policy}:{op}", target)

    def visible(self, stmt: Select[Any], cred: Credential, scope: str | None = None) -> Select[Any]:
        if not self.owned:
            return stmt
        narrowed = restrict(stmt, cred, self.model, scope)
        if not self.shareable:
            return narrowed
        # shared rows (is_public) are visible to every project besides the caller's own
        own = narrowed.whereclause  # base_stmt has no WHERE of its own, so this is the tenant filter
        if own is None:
            return stmt
        return stmt.where(or_(own, self.model.is_public.is_(True)))

    def base_stmt(self) -> Select[Any]:
        return select(self.model)

    def fetch(self, session: Session, cred: Credential, ident: str, *, lock: bool = False,
              pending: bool = True) -> Any:
        """The row with id ``ident`` or else the one named ``ident``; another tenant's is 404."""
        if not isinstance(ident, str) or not ident:
            raise ResourceNotFoundError(f"{self.keyword} not found")
        by_id, by_name, params = self._fetch_stmts(cred)
        params["ident"] = ident
        row = session.scalar(by_id, params)
        if row is None and by_name is not None:  # rows without a name (rules) are found by id only
            rows = list(session.scalars(by_name, params))
            if len(rows) > 1:
                raise InputParameterError(f"{self.keyword} name {ident!r} is ambiguous: use the id")
            row = rows[0] if rows else None
        if row is None or (not pending and getattr(row, "pending_deleted", False)):
            raise ResourceNotFoundError(f"{self.keyword} {ident} not found")
        return row

    def visible_kept(self, cred: Credential, scope: str | None = None) -> tuple[Select[Any], dict[str, Any],
                                                                                 dict[Any, Any] | None]:
        """``visible(base_stmt(), cred, scope)`` with the owner as the bind parameter ``owner``: the
        select, its parameters, and a dict kept with that select for what callers build on it (None:
        built for this call only, for a manager with its own ``base_stmt``/``visible``). Kept per
        filter column: building and keying a select cost more than running it."""
        f = owner_filter(cred, self.model, scope) if self.owned else None
        if (type(self).base_stmt is not Manager.base_stmt or type(self).visible is not Manager.visible
                or (f is not None and f[1] is None)):
            return self.visible(self.base_stmt(), cred, scope), {}, None
        kept: dict[str | None, Any] = self.__dict__.setdefault("_kept", {})
        key = f[0] if f is not None else None
        if key not in kept:
            stmt = self.base_stmt()
            if f is not None:  # visible()'s filter
                own = getattr(self.model, f[0]) == bindparam("owner")
                stmt = stmt.where(or_(own, self.model.is_public.is_(True)) if self.shareable else own)
            kept[key] = (stmt, {})
        stmt, built = kept[key]
        return stmt, ({"owner": f[1]} if f is not None else {}), built

    def _fetch_stmts(self, cred: Credential) -> tuple[Select[Any], Select[Any] | None, dict[str, Any]]:
        """``fetch``'s selects by id and by name (``ident`` bound), with their parameters."""
        stmt, params, built = self.visible_kept(cred)
        stmts = built.get("fetch") if built is not None else None
        if stmts is None:
            by_name = (stmt.where(self.model.name == bindparam("ident")).limit(2)
                       if hasattr(self.model, "name") else None)
            stmts = (stmt.where(self.model.id == bindparam("ident")), by_name)
            if built is not None:
                built["fetch"] = stmts
        return stmts[0], stmts[1], params

    def lookup(self, session: Session, cred: Credential, ident: str, what: str | None = None) -> Any:
        """Like ``fetch`` but for a reference in a request body: unknown → 400 naming it."""
        try:
            return self.fetch(session, cred, ident, pending=False)
        except ResourceNotFoundError:
            raise InputParameterError(f"{what or self.keyword} {ident!r} not found") from None

    def check_cloud(self, row: Any, op: str) -> None:
        """A synced row changes in its cloud, not here (the next sync would undo a local change)."""
        if not getattr(row, "manager_id", None) or self.cloud_ops is None or op in self.cloud_ops:
            return
        raise InputParameterError(f"{self.keyword} {getattr(row, 'name', '') or row.id} is synced from a cloud "
                                  f"account: {op} it in the cloud (the next cloud-account-sync brings it here)")

    # ---- listing -----------------------------------------------------------------------------
    def list_filter(self, session: Session, cred: Credential, stmt: Select[Any], q: ListQuery) -> Select[Any]:
        """Filters beyond the plain columns (those paginate applies for every resource): joins
        such as ``?zone=`` on networks. Read keys with ``q.values`` so paginate skips them."""
        return stmt

    def ref_values(self, session: Session, cred: Credential, q: ListQuery, key: str, column: str) -> list[str]:
        """Ids given as ``?<key>=`` or ``?<column>=`` (ids or names; indexed or repeated)."""
        return [self.resolve_ref(session, cred, column, v) for v in [*q.values(key), *q.values(column)]]

    def resolve_ref(self, session: Session, cred: Credential, column: str, value: str) -> str:
        """``?zone=<id or name>``, ``?tenant=<id or name>``: the id of the row ``column`` refers
        to; an unknown value stays as given (the filter then matches nothing, as Cloudpods)."""
        from core.region.registry import manager_for_keyword

        if column in ("tenant_id", "domain_id"):
            from core.keystone.models import Domain, Project

            model = Project if column == "tenant_id" else Domain
            if session.scalar(select(model.id).where(model.id == value)) is not None:
                return value
            ids = list(session.scalars(select(model.id).where(model.name == value).limit(2)))
            return ids[0] if len(ids) == 1 else value
        m = manager_for_keyword(column.removesuffix("_id"))
        if m is None:
            return value
        try:
            return str(m.fetch(session, cred, value).id)
        except ResourceNotFoundError:
            return value

    def context_filter(self, session: Session, cred: Credential, stmt: Select[Any], ctx_plural: str,
                       ctx_id: str) -> Select[Any]:
        from core.region.registry import get_manager

        col = self.contexts.get(ctx_plural)
        if col is None:
            return stmt.where(false())
        ctx = get_manager(ctx_plural).fetch(session, cred, ctx_id)
        return stmt.where(getattr(self.model, col) == ctx.id)

    # ---- serialisation -----------------------------------------------------------------------
    def list_columns(self) -> Sequence[str | Label[Any]] | None:
        """Columns a list page loads as plain rows (None: ORM objects). Opt in by setting
        ``row_lists = True`` when ``base_dict`` and ``add_details`` read only these columns;
        ``list_extra_columns`` adds column names or labelled expressions for ``add_details``."""
        if not getattr(self, "row_lists", False):
            return None
        return [*self.field_names(), *getattr(self, "list_extra_columns", ())]

    def field_names(self) -> Sequence[str]:
        if self.columns:
            return self.columns
        return [c.key for c in self.model.__mapper__.column_attrs]

    def base_dict(self, row: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in self.field_names():
            v = getattr(row, name)
            out["metadata" if name == "meta" else name] = iso(v) if isinstance(v, datetime) else v
        return out

    def _plain_layout(self, fields: tuple[str, ...]) -> tuple[list[str], list[str]] | None:
        """For plain page rows (named tuples of ``list_columns``): the output keys of their leading
        ``field_names`` columns and which of those keys hold datetimes; None when base_dict is
        overridden or the row does not start with ``field_names``."""
        cache: dict[tuple[str, ...], Any] = self.__dict__.setdefault("_layouts", {})
        if fields not in cache:
            names = list(self.field_names())
            layout = None
            if type(self).base_dict is Manager.base_dict and list(fields[:len(names)]) == names:
                cols = self.model.__table__.columns
                keys = ["metadata" if n == "meta" else n for n in names]
                dts = [k for k, n in zip(keys, names, strict=True)
                       if n in cols and isinstance(getattr(cols[n].type, "impl", cols[n].type), DateTime)]
                layout = (keys, dts)
            cache[fields] = layout
        return cache[fields]  # type: ignore[no-any-return]

    def base_dicts(self, rows: Sequence[Any]) -> list[dict[str, Any]]:
        """``base_dict`` of each row; a plain page's rows (named tuples) in one pass of zips."""
        layout = self._plain_layout(rows[0]._fields) if rows and hasattr(rows[0], "_fields") else None
        if layout is None:
            return [self.base_dict(r) for r in rows]
        keys, dts = layout
        out = [dict(zip(keys, r, strict=False)) for r in rows]  # stops before the extra columns
        for d in out:
            for k in dts:
                v = d[k]
                if v is not None:
                    d[k] = iso(v)
        return out

    def to_dicts(self, session: Session, rows: Sequence[Any], details: bool = True) -> list[dict[str, Any]]:
        items = self.base_dicts(rows)
        if details and rows:
            self.add_details(session, rows, items)
        return items

    def add_details(self, session: Session, rows: Sequence[Any], items: list[dict[str, Any]]) -> None:
        """Batch-add joined fields (names of referenced rows...) to serialised ``items``."""

    def to_dict(self, session: Session, row: Any) -> dict[str, Any]:
        return self.to_dicts(session, [row], True)[0]

    # ---- writes ------------------------------------------------------------------------------
    def create(self, session: Session, cred: Credential, body: dict[str, Any], count: int,
               ctx: tuple[str, str] | None = None) -> list[Any]:
        raise ActionNotFoundError(f"{self.plural} cannot be created through the API")

    def update(self, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> Any:
        raise ActionNotFoundError(f"{self.plural} cannot be updated")

    def delete(self, session: Session, cred: Credential, row: Any, params: dict[str, str]) -> dict[str, Any] | None:
        """Delete ``row``; return the reply object, or None when the row is gone."""
        self.validate_delete(session, row)
        session.delete(row)
        return None

    def validate_delete(self, session: Session, row: Any) -> None:
        """Raise (NotEmptyError, InvalidStatusError...) when ``row`` cannot be deleted now."""

    def audit(self, session: Session, cred: Credential | None, action: str, row: Any, success: bool = True,
              notes: str = "") -> None:
        record(session, cred, service="compute", action=action, obj_type=self.keyword,
               obj_id=str(getattr(row, "id", "")), obj_name=str(getattr(row, "name", "") or ""),
               success=success, notes=notes)

    # ---- dispatch ----------------------------------------------------------------------------
    def action_fn(self, action: str) -> ActionFn:
        name = self.actions.get(action) or self.actions.get(action.replace("_", "-"))
        if name is None and action.replace("_", "-") in METADATA_ACTIONS and hasattr(self.model, "meta"):
            return METADATA_ACTIONS[action.replace("_", "-")]
        if name is None:
            raise ActionNotFoundError(f"{self.keyword} has no action {action}")
        return getattr(type(self), name)  # type: ignore[no-any-return]

    def class_action_fn(self, action: str) -> ClassActionFn | None:
        name = self.class_actions.get(action) or self.class_actions.get(action.replace("_", "-"))
        return getattr(type(self), name) if name else None

    def spec_fn(self, spec: str) -> SpecFn:
        name = self.specs.get(spec)
        if name is None and spec == "metadata" and hasattr(self.model, "meta"):
            return _spec_metadata
        if name is None:
            raise SpecNotFoundError(f"{self.keyword} has no spec {spec}")
        return getattr(type(self), name)  # type: ignore[no-any-return]


# ---- metadata (every resource with a ``metadata`` column, as in Cloudpods) -------------------------
_META_KEY = re.compile(r"^[A-Za-z0-9_.:/@-]{1,128}$")
META_MAX_KEYS = 64
META_MAX_VALUE = 1024
USER_PREFIX = "user:"


def _meta_changes(body: dict[str, Any], prefix: str = "") -> dict[str, str | None]:
    """``{key: value}`` checked: keys of letters, digits and ``_.:/@-``, string values up to 1 KiB;
    ``null`` or "" removes the key."""
    out: dict[str, str | None] = {}
    for k, v in body.items():
        key = f"{prefix}{k}" if prefix and not str(k).startswith(prefix) else str(k)
        if not _META_KEY.match(key):
            raise InputParameterError(f"metadata key {k!r}: 1-128 letters, digits or _ . : / @ -")
        if v is not None and not isinstance(v, str | int | float | bool):
            raise InputParameterError(f"metadata {k}: the value must be a string")
        val = None if v is None or v == "" else str(v)
        if val is not None and len(val) > META_MAX_VALUE:
            raise InputParameterError(f"metadata {k}: the value is longer than {META_MAX_VALUE} characters")
        out[key] = val
    return out


def _apply_meta(row: Any, changes: dict[str, str | None], *, replace_prefix: str | None = None) -> None:
    meta = {k: v for k, v in dict(row.meta or {}).items()
            if replace_prefix is None or not str(k).startswith(replace_prefix)}
    for k, v in changes.items():
        if v is None:
            meta.pop(k, None)
        else:
            meta[k] = v
    if len(meta) > META_MAX_KEYS:
        raise InputParameterError(f"metadata: at most {META_MAX_KEYS} keys ({len(meta)} asked)")
    row.meta = meta  # a new dict: the JSON column sees the change


def _do_metadata(m: Manager, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> Any:
    """``POST /<res>/<id>/metadata {k: v}``: add or change keys (null removes one)."""
    _apply_meta(row, _meta_changes(body))
    return {"metadata": dict(row.meta)}


def _do_user_metadata(m: Manager, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> Any:
    """``POST /<res>/<id>/user-metadata {k: v}``: add or change user tags (stored as ``user:k``)."""
    _apply_meta(row, _meta_changes(body, USER_PREFIX))
    return {"metadata": dict(row.meta)}


def _do_set_user_metadata(m: Manager, session: Session, cred: Credential, row: Any, body: dict[str, Any]) -> Any:
    """``POST /<res>/<id>/set-user-metadata {k: v}``: the user tags become exactly these."""
    _apply_meta(row, _meta_changes(body, USER_PREFIX), replace_prefix=USER_PREFIX)
    return {"metadata": dict(row.meta)}


def _spec_metadata(m: Manager, session: Session, cred: Credential, row: Any, q: ListQuery) -> Any:
    return {"metadata": dict(row.meta or {})}


METADATA_ACTIONS: dict[str, ActionFn] = {"metadata": _do_metadata, "user-metadata": _do_user_metadata,
                                         "set-user-metadata": _do_set_user_metadata}
