"""Task and work-item rows: the whole state of every long operation lives here (decision 2-3)."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.db.base import Base, new_uuid, str36, str64, str128, str255, utcnow

# task status: queued (runnable) -> running (claimed, leased) -> waiting (for an agent or
# sub-tasks) -> queued ... -> done | failed
QUEUED, RUNNING, WAITING, DONE, FAILED = "queued", "running", "waiting", "done", "failed"
FINISHED = (DONE, FAILED)


class Task(Base):
    __tablename__ = "tasks"
    __table_args__ = (
        Index("ix_tasks_runnable", "status", "run_after"),
        Index("ix_tasks_obj", "obj_type", "obj_id"),
        Index("ix_tasks_parent", "parent_task_id"),
    )

    id: Mapped[str36] = mapped_column(primary_key=True, default=new_uuid)
    task_name: Mapped[str128]
    obj_type: Mapped[str64]
    obj_id: Mapped[str36]
    obj_name: Mapped[str255] = mapped_column(default="")
    stage: Mapped[str128] = mapped_column(default="on_init")
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    parent_task_id: Mapped[str36 | None] = mapped_column(default=None)
    status: Mapped[str64] = mapped_column(String(64), default=QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    owner: Mapped[str128] = mapped_column(default="")
    lease_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    run_after: Mapped[datetime] = mapped_column(default=utcnow)
    # who asked: the user's identity, never the token (a task outlives it)
    user_cred: Mapped[dict[str, Any]] = mapped_column(default=dict)
    tenant_id: Mapped[str64] = mapped_column(default="", index=True)
    domain_id: Mapped[str64] = mapped_column(default="")
    reason: Mapped[str] = mapped_column(Text, default="")
    stages_log: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class WorkItem(Base):
    """Something a host agent must do for a task; the agent pulls it and reports to the task.

    (task_id, stage) is unique so a stage that is re-run after a crash queues the item once.
    """

    __tablename__ = "work_items"
    __table_args__ = (
        UniqueConstraint("task_id", "stage", name="uq_work_items_task_stage"),
        Index("ix_work_items_host_status", "host_id", "status"),
    )

    id: Mapped[str36] = mapped_column(primary_key=True, default=new_uuid)
    task_id: Mapped[str36] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    stage: Mapped[str128]
    host_id: Mapped[str36]
    kind: Mapped[str64]
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str64] = mapped_column(String(64), default="queued")  # queued|dispatched|done|failed
    dispatched_at: Mapped[datetime | None] = mapped_column(default=None)
    # items of executor hosts: the replica running it and until when (renewed while it runs)
    owner: Mapped[str128] = mapped_column(default="", server_default="")
    lease_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    result: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
