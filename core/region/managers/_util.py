"""Helpers the managers share: name uniqueness, names of referenced rows, simple updates."""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import DuplicateNameError, InputParameterError
from core.region.common import check_name


def names_by_id(session: Session, model: Any, ids: Iterable[str | None]) -> dict[str, str]:
    wanted = sorted({i for i in ids if i})
    if not wanted:
        return {}
    return dict(session.execute(select(model.id, model.name).where(model.id.in_(wanted))).all())  # type: ignore[arg-type]


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
        setattr(row, k, v)


def add_names(items: list[dict[str, Any]], key: str, names: dict[str, str], out: str) -> None:
    for it in items:
        it[out] = names.get(it.get(key) or "", "")
