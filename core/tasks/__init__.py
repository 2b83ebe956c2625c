"""The persisted task engine: tasks are rows, stages are methods, workers claim with a lease.

    class ServerStartTask(TaskBase):
        name = "ServerStartTask"
        def on_init(self, run):  run.dispatch(host_id, "guest-start", {...}, then="on_start_complete")
        def on_start_complete(self, run):  run.complete()
        def on_start_complete_failed(self, run):  run.fail(run.result_reason())

    submit(session, "ServerStartTask", "server", server.id, server.name, params={}, cred=cred)
"""
from __future__ import annotations

from core.tasks.engine import Run, TaskBase, report, submit
from core.tasks.models import Task, WorkItem
from core.tasks.worker import Worker

__all__ = ["Run", "Task", "TaskBase", "Worker", "WorkItem", "report", "submit"]
