"""The one list helper: Cloudpods list parameters → SQL, with a total count.

    @router.get("/servers")
    def list_servers(session: SessionDep, cred: CredentialDep, q: ListDep):
        enforce(cred, "compute:servers:list")
        stmt = restrict(select(Server), cred, Server, q.scope)
        page = paginate(session, stmt, Server, q)
        return page.envelope("servers", [to_dict(s) for s in page.rows])

Parameters (API.md §3): limit, offset, paging_marker, order_by (repeatable), order, details,
search, filter (repeatable ``field.op(args)``), filter_any, scope, field, plus any other query
key left in ``ListQuery.extra`` for the resource's own filters (status, enabled, zone, ...).

Every list-valued parameter arrives in any of the three forms Cloudpods' clients send: indexed
(``status.0=running&status.1=ready``, Go climc/SDK), repeated (``status=running&status=ready``,
Python SDKs) or bare. Every other key that names a plain column of the model (``name``,
``status``, ``zone`` for ``zone_id``, ``tenant`` for ``tenant_id`` ...) filters on it, several
values meaning IN, unless the route read the key itself (``ListQuery.get`` marks it consumed).
"""
from __future__ import annotations

import functools
import operator
import re
from collections import namedtuple
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Request
from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    Integer,
    Numeric,
    Select,
    and_,
    bindparam,
    false,
    func,
    or_,
    select,
)
from sqlalchemy.orm import Session
from sqlalchemy.sql import ColumnElement
from sqlalchemy.sql.elements import Label

from core.api.inputs import INT64_MAX, int64
from core.db.engine import plain_rows
from core.errors import InputParameterError

MAX_LIMIT = 2048
KEPT_SHAPES = 64  # built page selects kept per tenant filter, at most
_LIMIT, _OFFSET = bindparam("page_limit", type_=Integer), bindparam("page_offset", type_=Integer)
_FILTER = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)\.([a-z]+)\((.*)\)$", re.S)
_TRUE = {"true", "1", "yes", "on", "t", "y"}
_FALSE = {"false", "0", "no", "off", "f", "n"}
_KNOWN = {"limit", "offset", "paging_marker", "order_by", "order", "details", "search", "filter",
          "filter_any", "scope", "field", "with_meta", "pending_delete", "tags"}
_INDEXED = re.compile(r"^(.+)\.(\d+)$")  # status.0, filter.1, obj_type.0
# query keys Cloudpods' clients use for an ownership column of another name
_ALIASES = {"tenant": "tenant_id", "project": "tenant_id", "project_id": "tenant_id",
            "domain": "domain_id", "project_domain": "domain_id", "project_domain_id": "domain_id"}
# (column name, value as sent) -> value to compare: resolves names of referenced rows to ids
Resolver = Callable[[str, str], str]

T = TypeVar("T")


def parse_bool(value: str | bool | None, name: str, default: bool | None = None) -> bool | None:
    """Booleans arrive as true/True/TRUE/1 from real SDKs; anything else is a 400."""
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    if not isinstance(value, str):  # a JSON number/object in a body: the same 400, never an AttributeError
        raise InputParameterError(f"{name}: {value!r} is not a boolean")
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise InputParameterError(f"{name}: {value!r} is not a boolean")


def parse_int(value: str | None, name: str, default: int, lo: int, hi: int | None = None) -> int:
    """A query parameter as an int in [lo, hi] (default when absent or empty; a 400 else)."""
    if value is None or value == "":
        return default
    return int64(value, name, lo, INT64_MAX if hi is None else hi)


@dataclass
class ListQuery:
    limit: int = MAX_LIMIT
    offset: int = 0
    paging_marker: str | None = None
    order_by: list[str] = field(default_factory=list)
    order: str = "desc"
    details: bool = True
    search: str | None = None
    filters: list[str] = field(default_factory=list)
    filter_any: bool = False
    scope: str | None = None
    fields: list[str] = field(default_factory=list)
    pending_delete: str | None = None  # "true" | "false" | "all"
    with_meta: bool = False
    extra: dict[str, list[str]] = field(default_factory=dict)
    consumed: set[str] = field(default_factory=set)  # extra keys a route handled itself

    def get(self, name: str) -> str | None:
        self.consumed.add(name)
        vals = self.extra.get(name)
        return vals[-1] if vals else None

    def values(self, name: str) -> list[str]:
        """Every non-empty value of ``name`` (indexed, repeated or bare), marking it handled."""
        self.consumed.add(name)
        return [v for v in self.extra.get(name, ()) if v != ""]

    def get_bool(self, name: str) -> bool | None:
        return parse_bool(self.get(name), name)


class _Params:
    """The query string with indexed keys (``status.0``) folded into their base key, in order."""

    def __init__(self, items: Sequence[tuple[str, str]]) -> None:
        self.multi: dict[str, list[str]] = {}
        for k, v in items:
            m = _INDEXED.match(k)
            self.multi.setdefault(m.group(1) if m else k, []).append(v)

    def get(self, key: str) -> str | None:
        vals = self.multi.get(key)
        return vals[-1] if vals else None

    def getlist(self, key: str) -> list[str]:
        return self.multi.get(key, [])

    def __iter__(self) -> Any:
        return iter(self.multi)


async def list_query(request: Request) -> ListQuery:
    """The list parameters of a request: pure CPU, so on the event loop (a sync dependency is a
    thread-pool hop of its own per list request)."""
    return parse_list_query(request.query_params.multi_items())


def parse_list_query(items: Sequence[tuple[str, str]]) -> ListQuery:
    qp = _Params(items)
    limit = parse_int(qp.get("limit"), "limit", MAX_LIMIT, 0)
    order = (qp.get("order") or "desc").lower()
    if order not in ("asc", "desc"):
        raise InputParameterError(f"order: {order!r} must be asc or desc")
    scope = (qp.get("scope") or "").lower() or None
    # Cloudpods' rbacscope also has ``max`` (the caller's widest reach: no narrowing) and ``user``
    # (rows the user owns; ours are owned by projects, so the nearest is the caller's project)
    scope = {"max": None, "user": "project"}.get(scope, scope) if scope else None
    if scope is not None and scope not in ("system", "domain", "project"):
        raise InputParameterError(f"scope: {scope!r} must be system, domain, project, user or max")
    pd = qp.get("pending_delete")
    if pd is not None and pd.lower() != "all":
        pd = "true" if parse_bool(pd, "pending_delete") else "false"
    extra: dict[str, list[str]] = {}
    for k in qp:
        if k not in _KNOWN:
            extra[k] = qp.getlist(k)
    return ListQuery(
        limit=MAX_LIMIT if limit == 0 else min(limit, MAX_LIMIT),
        offset=parse_int(qp.get("offset"), "offset", 0, 0),
        paging_marker=qp.get("paging_marker") or None,
        order_by=[o for v in qp.getlist("order_by") for o in v.split(",") if o],
        order=order,
        details=bool(parse_bool(qp.get("details"), "details", True)),
        search=qp.get("search") or None,
        filters=[f for f in qp.getlist("filter") if f],
        filter_any=bool(parse_bool(qp.get("filter_any"), "filter_any", False)),
        scope=scope,
        fields=[f for v in qp.getlist("field") for f in v.split(",") if f],
        pending_delete=pd.lower() if pd else None,
        with_meta=bool(parse_bool(qp.get("with_meta"), "with_meta", False)),
        extra=extra,
    )


ListDep = Annotated[ListQuery, Depends(list_query)]


@dataclass
class Page(Generic[T]):
    rows: list[T]
    total: int
    limit: int
    offset: int
    next_marker: str | None = None

    def envelope(self, key: str, items: list[dict[str, Any]]) -> dict[str, Any]:
        """Cloudpods' list reply; zero counts are omitted as Cloudpods does."""
        out: dict[str, Any] = {key: items}
        for k, v in (("total", self.total), ("limit", self.limit), ("offset", self.offset)):
            if v:
                out[k] = v
        if self.next_marker:
            out["marker_field"] = "id"
            out["next_marker"] = self.next_marker
        return out


def _columns(model: Any) -> dict[str, Any]:
    hidden = set(getattr(model, "__list_hidden__", ()))
    return {c.key: c for c in model.__table__.columns if c.key not in hidden}


def _coerce(col: Any, raw: str, fname: str) -> Any:
    t = col.type
    try:
        if isinstance(t, Boolean):
            return parse_bool(raw, fname)
        if isinstance(t, Integer):
            return int64(raw, f"filter {fname}")
        if isinstance(t, Float | Numeric):
            return float(raw)
        if isinstance(t, DateTime) or getattr(t, "impl", None) is not None and isinstance(t.impl, DateTime):
            return datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise InputParameterError(f"filter {fname}: {raw!r} does not fit the field's type") from None
    return raw


def _like_escape(s: str) -> str:
    return s.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def parse_filter(model: Any, expr: str) -> ColumnElement[bool]:
    m = _FILTER.match(expr.strip())
    if not m:
        raise InputParameterError(f"filter {expr!r}: expected field.op(args)")
    name, op, argstr = m.groups()
    cols = _columns(model)
    if name not in cols:
        raise InputParameterError(f"filter {expr!r}: unknown field {name}")
    col = getattr(model, name)
    args = [a.strip().strip("'\"") for a in argstr.split(",")] if argstr != "" else []
    vals = [_coerce(cols[name], a, name) for a in args]

    def one() -> Any:
        if len(vals) != 1:
            raise InputParameterError(f"filter {expr!r}: {op} takes one argument")
        return vals[0]

    if op == "in":
        return col.in_(vals) if vals else false()
    if op == "notin":
        return col.not_in(vals) if vals else ~false()
    if op == "between":
        if len(vals) != 2:
            raise InputParameterError(f"filter {expr!r}: between takes two arguments")
        return col.between(vals[0], vals[1])
    if op in ("ge", "gt", "le", "lt", "equals", "notequals"):
        v = one()
        if op == "equals":
            return col.is_(v) if isinstance(v, bool) else col == v
        if op == "notequals":
            return col.is_not(v) if isinstance(v, bool) else col != v
        if isinstance(v, bool):
            raise InputParameterError(f"filter {expr!r}: {op} does not apply to a boolean")
        return {"ge": operator.ge, "gt": operator.gt, "le": operator.le, "lt": operator.lt}[op](col, v)
    if op in ("like", "contains", "startswith", "endswith"):
        s = str(one())
        pat = {"like": s, "contains": f"%{_like_escape(s)}%", "startswith": f"{_like_escape(s)}%",
               "endswith": f"%{_like_escape(s)}"}[op]
        return col.like(pat, escape="\\") if op != "like" else col.like(pat)
    if op == "isnull":
        return col.is_(None)
    if op == "isnotnull":
        return col.is_not(None)
    raise InputParameterError(f"filter {expr!r}: unknown operator {op}")


def field_column(cols: dict[str, Any], key: str) -> str | None:
    """The column a plain query key filters on: itself, an ownership alias, or ``<key>_id``."""
    if key in cols:
        return key
    alias = _ALIASES.get(key)
    if alias in cols:
        return alias
    if f"{key}_id" in cols:
        return f"{key}_id"
    return None


def field_conditions(model: Any, q: ListQuery, resolve: Resolver | None = None) -> list[ColumnElement[bool]]:
    """``name=web``, ``status.0=a&status.1=b``, ``zone=z1``: one IN per plain column key."""
    cols = _columns(model)
    conds: list[ColumnElement[bool]] = []
    for key, raw in q.extra.items():
        if key in q.consumed:
            continue
        name = field_column(cols, key)
        vals = [v for v in raw if v != ""]
        if name is None or not vals or isinstance(cols[name].type, JSON):
            continue  # JSON columns (metadata, specs) are not comparable to a string
        if resolve is not None and name.endswith("_id"):
            vals = [resolve(name, v) for v in vals]
        typed = [_coerce(cols[name], v, key) for v in vals]
        col = getattr(model, name)
        if len(typed) == 1:
            conds.append(col.is_(typed[0]) if isinstance(typed[0], bool) else col == typed[0])
        else:
            conds.append(col.in_(typed))
    return conds


@functools.cache
def _row_maker(columns: tuple[str, ...]) -> Callable[[Iterable[Any]], Any]:
    """Makes the rows of a plain list page: named tuples, attribute access by column name."""
    return namedtuple("PageRow", columns)._make  # type: ignore[misc,attr-defined,no-any-return]


def paginate(session: Session, stmt: Select[Any], model: Any, q: ListQuery,
             searchable: tuple[str, ...] = ("name",), count: bool = True,
             columns: Sequence[str | Label[Any]] | None = None, plain_filters: bool = True,
             resolve: Resolver | None = None, params: Mapping[str, Any] | None = None,
             kept: dict[Any, Any] | None = None) -> Page[Any]:
    """Apply search/filter/order/paging to ``stmt`` (already tenant-restricted) and run it.

    With ``columns``, the page is loaded as plain rows of just those columns (attribute access
    like an ORM object, without the ORM's per-object cost: lists of thousands stay cheap); a
    labelled expression among them is read by its label (e.g. one key of a JSON column).
    ``plain_filters`` turns every unconsumed query key naming a column into a filter (Keystone's
    grammar differs, ``name__contains`` / ``lt:``, so its lists turn it off); ``resolve`` maps a
    referenced row's name to its id for ``*_id`` columns. ``params``: values of ``stmt``'s bind
    parameters. ``kept``: a dict the caller keeps with this very ``stmt`` (same parameters only);
    a query of order and paging only (no filter, search or marker) keeps its built selects there.
    """
    shape = None
    if kept is not None and not q.extra and not q.search and not q.filters and q.paging_marker is None:
        shape = ("page", q.order, tuple(q.order_by), q.pending_delete, count,
                 tuple(c if isinstance(c, str) else c.name for c in columns or ()))
    built = kept.get(shape) if kept is not None and shape is not None else None
    if built is None:
        built = _page_selects(stmt, model, q, searchable, count, columns, plain_filters, resolve)
        if kept is not None and shape is not None and len(kept) < KEPT_SHAPES:  # order_by combinations are many
            kept[shape] = built
    count_stmt, page_stmt, make = built
    args = dict(params or {})
    total = (plain_rows(session, count_stmt, args).scalar() or 0) if count_stmt is not None else 0

    def run(st: Select[Any], limit: int, offset: int) -> list[Any]:
        values = {**args, "page_limit": limit, "page_offset": offset}
        if make is not None:
            # on the session's connection: plain rows without the ORM's per-row loading machinery;
            # SQLAlchemy Row attribute access costs ~1.5 us, a named tuple's is C (and making one is
            # a tenth of a namespace's cost). All rows in one fetch: iterating a result fetches one
            # row per Python call.
            return [make(r) for r in plain_rows(session, st, values).all()]
        return list(session.scalars(st, values))

    if q.paging_marker is not None:
        # keyset paging over id: stable under concurrent inserts, O(limit) per page
        args["page_marker"] = q.paging_marker
        rows = run(page_stmt, q.limit + 1, 0)
        nxt = rows[q.limit - 1].id if len(rows) > q.limit else None
        return Page(rows[: q.limit], total, q.limit, 0, nxt)
    rows = run(page_stmt, q.limit, q.offset)
    return Page(rows, total, q.limit, q.offset)


def _page_selects(stmt: Select[Any], model: Any, q: ListQuery, searchable: tuple[str, ...], count: bool,
                  columns: Sequence[str | Label[Any]] | None, plain_filters: bool,
                  resolve: Resolver | None) -> tuple[Any, Select[Any], Callable[[Iterable[Any]], Any] | None]:
    """paginate's count select (None: not counted), its page select (limit, offset and marker bound
    as ``page_limit``, ``page_offset``, ``page_marker``) and the row maker of a plain page."""
    cols = _columns(model)
    if plain_filters:
        conds = field_conditions(model, q, resolve)
        if conds:
            stmt = stmt.where(and_(*conds))
    if q.search:
        terms = [getattr(model, c).like(f"%{_like_escape(q.search)}%", escape="\\")
                 for c in searchable if c in cols]
        if terms:
            stmt = stmt.where(or_(*terms))
    if q.filters:
        conds = [parse_filter(model, f) for f in q.filters]
        stmt = stmt.where(or_(*conds) if q.filter_any else and_(*conds))
    if q.pending_delete is not None and "pending_deleted" in cols:
        if q.pending_delete != "all":
            stmt = stmt.where(model.pending_deleted.is_(q.pending_delete == "true"))
    elif "pending_deleted" in cols:
        stmt = stmt.where(model.pending_deleted.is_(False))
    count_stmt = select(func.count()).select_from(stmt.order_by(None).subquery()) if count else None
    make = None
    if columns:
        make = _row_maker(tuple(c if isinstance(c, str) else c.name for c in columns))
        stmt = stmt.with_only_columns(*[getattr(model, c) if isinstance(c, str) else c for c in columns])
    if q.paging_marker is not None:
        stmt = stmt.where(model.id > bindparam("page_marker")).order_by(model.id.asc())
        return count_stmt, stmt.limit(_LIMIT), make
    order_cols = q.order_by or (["created_at"] if "created_at" in cols else [])
    for name in order_cols:
        if name not in cols:
            raise InputParameterError(f"order_by: unknown field {name}")
        c = getattr(model, name)
        stmt = stmt.order_by(c.desc() if q.order == "desc" else c.asc())
    if "id" in cols:
        stmt = stmt.order_by(model.id.desc() if q.order == "desc" else model.id.asc())
    return count_stmt, stmt.offset(_OFFSET).limit(_LIMIT), make
