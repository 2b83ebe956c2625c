"""Helpers the managers share: name uniqueness, names of referenced rows, simple updates."""
from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Select, bindparam, select
from sqlalchemy.orm import Session

from core.api.inputs import int64
from core.api.listing import parse_bool
from core.db.engine import plain_rows
from core.errors import DuplicateNameError, InputParameterError
from core.region.common import check_name


@functools.cache
def _names_stmt(model: Any) -> Select[Any]:
    return select(model.id, model.name).where(model.id.in_(bindparam("ids", expanding=True)))


def names_by_id(session: Session, model: Any, ids: Iterable[str | None]) -> dict[str, str]:
    wanted = sorted({i for i in ids if i})
    if not wanted:
        return {}
    return dict(plain_rows(session, _names_stmt(model), {"ids": wanted}).tuples().all())


def unique_name(session: Session, model: Any, name: str, *, scope: dict[str, Any] | None = None,
                exclude_id: str | None = None) -> str:
    check_name(name)
    stmt = select(model.id).where(model.name == name)
    for k, v in (scope or {}).items():
        stmt = stmt.where(getattr(model, k) == v)
    if exclude_id:
        stmt = stmt.where(model.id != exclude_id)
    if session.scalar(stmt.limit(1)) is not None:
        raise DuplicateNameError(f"{model.__tablename__[:-1]} name {name!r} is already in use")
    return name


def apply_update(row: Any, data: dict[str, Any], allowed: Sequence[str]) -> None:
    """Set only ``allowed`` fields; an unknown or read-only field is a 400 naming it."""
    for k, v in data.items():
        if k in ("id", "created_at", "updated_at"):
            continue
        if k not in allowed:
            raise InputParameterError(f"{k}: cannot be updated")
        setattr(row, k, _fits_column(row, k, v))


def _fits_column(row: Any, key: str, v: Any) -> Any:
    """``v`` if it has the JSON type of column ``key`` (a string for text, a number for integers,
    a boolean for flags); else a 400 instead of a stored ``"[]"`` or a database error. A manager
    that accepts other spellings converts them before calling ``apply_update``."""
    col = row.__table__.columns.get(key) if hasattr(row, "__table__") else None
    if col is None or v is None:
        return v
    if key == "name":
        return check_name(v)
    try:
        py = col.type.python_type
    except NotImplementedError:
        return v
    if py not in (bool, int, float, str):
        return v
    if py is str:
        if not isinstance(v, str):
            raise InputParameterError(f"{key}: expected a string, not {type(v).__name__}")
        return v
    if py is bool:  # "true"/"false" as a CLI sends them
        if isinstance(v, bool | str):
            return bool(parse_bool(v if isinstance(v, str) else str(v).lower(), key))
        raise InputParameterError(f"{key}: expected a boolean, not {type(v).__name__}")
    if isinstance(v, bool) or not isinstance(v, int | float | str):
        raise InputParameterError(f"{key}: expected a number, not {type(v).__name__}")
    if py is int:
        return int64(v, key)
    try:
        return float(v)
    except ValueError:
        raise InputParameterError(f"{key}: {v!r} is not a number") from None


def add_names(items: list[dict[str, Any]], key: str, names: dict[str, str], out: str) -> None:
    for it in items:
        it[out] = names.get(it.get(key) or "", "")
