"""``/tasks``: list and show tasks (an agent reports through ``POST /agent/tasks/<id>``, core/hostapi)."""
from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from core.api.context import Credential
from core.region.common import iso
from core.region.resource import Manager
from core.tasks.models import Task


def task_dict(t: Task) -> dict[str, Any]:
    params = {k: v for k, v in (t.params or {}).items() if k not in ("password", "password_sealed")}
    return {"id": t.id, "task_name": t.task_name, "obj_type": t.obj_type, "obj_id": t.obj_id,
            "obj_name": t.obj_name, "stage": t.stage, "status": t.status, "attempts": t.attempts,
            "parent_task_id": t.parent_task_id, "reason": t.reason, "params": params, "owner": t.owner,
            "tenant_id": t.tenant_id, "user": (t.user_cred or {}).get("user", ""),
            "created_at": iso(t.created_at), "updated_at": iso(t.updated_at), "finished_at": iso(t.finished_at),
            "stages": t.stages_log}


class TaskManager(Manager):
    keyword, plural, model = "task", "tasks", Task
    owned = True
    searchable = ("task_name", "obj_name")

    def fetch(self, session: Session, cred: Credential, ident: str, *, lock: bool = False,
              pending: bool = True) -> Any:
        from core.errors import ResourceNotFoundError

        row = session.scalar(self.visible(self.base_stmt(), cred).where(Task.id == ident))
        if row is None:
            raise ResourceNotFoundError(f"task {ident} not found")
        return row

    def to_dicts(self, session: Session, rows: Any, details: bool = True) -> list[dict[str, Any]]:
        return [task_dict(t) for t in rows]
