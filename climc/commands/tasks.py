"""Tasks: the list and one task with its stages."""
from __future__ import annotations

from climc.commands.compute_common import make_list, make_show

task_list = make_list("task-list", "tasks", ["id", "task_name", "obj_type", "obj_name", "stage", "status", "reason",
                                             "created_at"], "List tasks",
                      [("status", "status"), ("obj-id", "obj_id"), ("obj-type", "obj_type")])
task_show = make_show("task-show", "tasks", "task", "Show a task with its stages")
