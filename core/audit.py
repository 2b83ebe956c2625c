"""Audit log: one record for every change, written in the same transaction as the change.

Cloudpods' logger service calls these records *actions*; ``GET /actions`` lists them.
Callers pass what happened, never request bodies, so secrets cannot leak into the log.
"""
from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Index, String, Text
from sqlalchemy.orm import Mapped, Session, mapped_column

from core.db.base import Base, new_uuid, str36, str64, str128, str255, utcnow

if TYPE_CHECKING:
    from core.api.context import Credential


class Action(Base):
    __tablename__ = "actions"
    __table_args__ = (Index("ix_actions_obj", "obj_type", "obj_id"),)

    id: Mapped[str36] = mapped_column(primary_key=True, default=new_uuid)
    start_time: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    service: Mapped[str64] = mapped_column(default="")
    action: Mapped[str64]
    obj_type: Mapped[str64]
    obj_id: Mapped[str128] = mapped_column(default="")
    obj_name: Mapped[str255] = mapped_column(default="")
    success: Mapped[bool] = mapped_column(default=True)
    notes: Mapped[str] = mapped_column(Text, default="")
    user_id: Mapped[str64] = mapped_column(default="", index=True)
    user: Mapped[str255] = mapped_column(default="")
    tenant_id: Mapped[str64] = mapped_column(default="", index=True)
    tenant: Mapped[str255] = mapped_column(default="")
    domain_id: Mapped[str64] = mapped_column(default="")
    request_id: Mapped[str64] = mapped_column(String(64), default="")


def record(
    session: Session,
    cred: Credential | None,
    *,
    service: str,
    action: str,
    obj_type: str,
    obj_id: str = "",
    obj_name: str = "",
    success: bool = True,
    notes: str = "",
    request_id: str = "",
) -> Action:
    """Add an audit record to ``session`` (committed with the change it describes)."""
    row = Action(
        service=service,
        action=action,
        obj_type=obj_type,
        obj_id=obj_id,
        obj_name=obj_name[:255],
        success=success,
        notes=notes[:4000],
        request_id=request_id or (cred.request_id if cred else ""),
        user_id=cred.user_id if cred else "",
        user=cred.user_name if cred else "",
        tenant_id=(cred.project_id or "") if cred else "",
        tenant=(cred.project_name or "") if cred else "",
        domain_id=(cred.owner_domain_id or "") if cred else "",
    )
    session.add(row)
    return row


def record_for_task(session: Session, user_cred: dict[str, Any], *, service: str, action: str, obj_type: str,
                    obj_id: str = "", obj_name: str = "", success: bool = True, notes: str = "") -> Action:
    """An audit record written by a task on behalf of who asked (its ``user_cred`` snapshot), e.g. the
    failure of a create whose request was recorded as accepted."""
    uc = user_cred or {}
    row = Action(service=service, action=action, obj_type=obj_type, obj_id=obj_id, obj_name=obj_name[:255],
                 success=success, notes=notes[:4000], request_id=str(uc.get("request_id") or ""),
                 user_id=str(uc.get("user_id") or ""), user=str(uc.get("user") or ""),
                 tenant_id=str(uc.get("project_id") or ""), tenant=str(uc.get("project") or ""),
                 domain_id=str(uc.get("domain_id") or ""))
    session.add(row)
    return row


def _utc(dt: datetime) -> str:
    """The one time format of every API answer: ISO 8601 in UTC with a ``Z`` (as region rows)."""
    text = dt.isoformat(timespec="microseconds")
    return text.replace("+00:00", "Z") if dt.tzinfo is not None else text + "Z"


def action_to_dict(a: Action) -> dict[str, Any]:
    return {
        "id": a.id, "start_time": _utc(a.start_time), "service": a.service, "action": a.action,
        "obj_type": a.obj_type, "obj_id": a.obj_id, "obj_name": a.obj_name, "success": a.success,
        "notes": a.notes, "user_id": a.user_id, "user": a.user, "tenant_id": a.tenant_id,
        "tenant": a.tenant, "domain_id": a.domain_id, "request_id": a.request_id,
    }
