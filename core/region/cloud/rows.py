"""How every cloud applier (apply.py, hosts.py) writes a region row: a field only when its value
changed (``setf``), so a sync of an unchanged cloud issues no UPDATE; a new row under the sync's
provider, its id remembered for the rest of the sync (``created``); the outcome counted in the
sync's stats ("created", "updated" or None).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from core.db.base import new_uuid

if TYPE_CHECKING:
    from core.region.cloud.apply import Context


def setf(row: Any, **fields: Any) -> bool:
    """Set only the fields whose value differs; True if any did."""
    changed = False
    for k, v in fields.items():
        if getattr(row, k) != v:
            setattr(row, k, v)
            changed = True
    return changed


def created(session: Session, ctx: Context, kind: str, row: Any) -> str:
    if not row.id:  # the id now, not at flush: a page of new rows is flushed once, at its end
        row.id = new_uuid()
    row.manager_id = ctx.manager_id
    session.add(row)
    ctx.remember(kind, row.external_id, row.id)
    return "created"


def updated(changed: bool) -> str | None:
    return "updated" if changed else None
