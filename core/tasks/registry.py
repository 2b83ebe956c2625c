"""Every task class by name: a static table (no scanning), imported lazily."""
from __future__ import annotations

import importlib
from typing import Any

TASKS: dict[str, str] = {
    "ServerBatchCreateTask": "core.region.tasks.create:ServerBatchCreateTask",
    "ServerCreateTask": "core.region.tasks.create:ServerCreateTask",
    "ServerDeleteTask": "core.region.tasks.delete:ServerDeleteTask",
    "ServerPowerTask": "core.region.tasks.power:ServerPowerTask",
    "ServerSyncstatusTask": "core.region.tasks.power:ServerSyncstatusTask",
    "ServerChangeConfigTask": "core.region.tasks.config:ServerChangeConfigTask",
    "ServerMigrateTask": "core.region.tasks.config:ServerMigrateTask",
    "ServerRebuildRootTask": "core.region.tasks.config:ServerRebuildRootTask",
    "ServerAttachDiskTask": "core.region.tasks.config:ServerAttachDiskTask",
    "ServerDetachDiskTask": "core.region.tasks.config:ServerDetachDiskTask",
    "DiskDeleteTask": "core.region.tasks.delete:DiskDeleteTask",
}
# tests register their own task classes here (name -> class)
EXTRA: dict[str, Any] = {}
_cache: dict[str, Any] = {}


def task_class(name: str) -> Any:
    cls = EXTRA.get(name) or _cache.get(name)
    if cls is None:
        ref = TASKS.get(name)
        if ref is None:
            raise KeyError(f"unknown task {name}")
        mod, _, attr = ref.partition(":")
        cls = _cache[name] = getattr(importlib.import_module(mod), attr)
    return cls
