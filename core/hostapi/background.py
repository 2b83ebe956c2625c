"""The executor of hosts whose driver runs in the controller (core/hostapi/executor.py), hooked into
``core.api.app.BACKGROUND`` after the region's start, which configures those hosts' runtime
(core/region/hosted.py). Its threads start once the server listens (core/api/background.py), under
the owner and the lease of the controller's tasks.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("cloudpods.region")


def start(app: Any) -> Callable[[], None]:
    from core.api.background import when_listening

    settings = app.state.settings

    def runner() -> Callable[[], None]:
        from core.hostapi.executor import Executor
        from core.region import hosted
        from core.region.background import task_owner

        r = Executor(hosted.runtime(), task_owner(settings), threads=settings.executor_threads,
                     lease_s=settings.task_lease_s, heartbeat_s=settings.executor_heartbeat_s)
        r.start()
        return r.stop

    return when_listening(app, lambda: [runner], thread="executor-start", what="the executor", log=log)
