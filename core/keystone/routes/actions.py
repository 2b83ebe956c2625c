"""``GET /actions``: the audit log, Cloudpods' logger ``actions`` resource (also in the catalog as type
``log``). Newest first; a caller sees its own tenant's records (system scope: all).

Filters: ``since``/``until`` (ISO 8601, or relative like ``15m``, ``2h``, ``7d``), ``user`` (id or
name), ``project``/``tenant`` (id or name), ``service``, ``action``, ``obj_type``, ``obj_id``,
``success``, plus the common list parameters.
"""
from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import or_, select

from core.api.deps import CredentialDep, SessionDep
from core.api.listing import ListDep, paginate
from core.audit import Action, action_to_dict
from core.errors import InputParameterError
from core.keystone.policy import enforce, restrict

router = APIRouter()
_REL = re.compile(r"^(\d+)([smhdw])$")
_UNIT = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_time(value: str, name: str) -> datetime:
    m = _REL.match(value.strip())
    if m:
        return datetime.now(UTC) - timedelta(**{_UNIT[m.group(2)]: int(m.group(1))})
    try:
        dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InputParameterError(f"{name}: {value!r} is neither ISO 8601 nor like 15m/2h/7d") from None
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


@router.get("/actions")
def list_actions(request: Request, session: SessionDep, cred: CredentialDep, q: ListDep) -> dict[str, Any]:
    enforce(cred, "identity:actions:list")
    stmt = restrict(select(Action), cred, Action, q.scope)
    if q.get("since"):
        stmt = stmt.where(Action.start_time >= parse_time(q.get("since") or "", "since"))
    if q.get("until"):
        stmt = stmt.where(Action.start_time <= parse_time(q.get("until") or "", "until"))
    for key, cols in (("user", (Action.user_id, Action.user)), ("user_id", (Action.user_id,)),
                      ("project", (Action.tenant_id, Action.tenant)), ("tenant", (Action.tenant_id, Action.tenant)),
                      ("project_id", (Action.tenant_id,)), ("service", (Action.service,)),
                      ("action", (Action.action,)), ("obj_type", (Action.obj_type,)), ("obj_id", (Action.obj_id,))):
        v = q.get(key)
        if v:
            stmt = stmt.where(or_(*(c == v for c in cols)))
    if q.get_bool("success") is not None:
        stmt = stmt.where(Action.success.is_(q.get_bool("success")))
    if not q.order_by:
        q.order_by = ["start_time"]
    page = paginate(session, stmt, Action, q, searchable=("obj_name", "notes"))
    return page.envelope("actions", [action_to_dict(a) for a in page.rows])
