"""Power actions and status sync: one work item each, the agent's report settles the status."""
from __future__ import annotations

from core.region import statemachine as sm
from core.region.models import Server
from core.region.tasks._common import release_task, server_of
from core.tasks.engine import Run, TaskBase

# action -> (progress event when dispatched, success event, failure event)
POWER = {
    "start": ("starting", "started", "start_fail"),
    "stop": ("stopping", "stopped", "stop_fail"),
    "restart": (None, "started", "start_fail"),
    "reset": (None, "started", "reset_fail"),
    "suspend": (None, "suspended", "suspend_fail"),
    "resume": (None, "started", "resume_fail"),
}
POWER_STATUS = {"started": "on", "stopped": "off", "suspended": "suspend"}


class ServerPowerTask(TaskBase):
    name = "ServerPowerTask"

    def on_init(self, run: Run) -> None:
        server = server_of(run)
        action = str(run.params["action"])
        progress, _ok, _fail = POWER[action]
        if progress:
            sm.apply_if(server, progress)
        if not server.host_id:
            run.fail(f"server {server.name} has no host")
        assert server.host_id
        run.dispatch(server.host_id, f"guest-{action}", {"server": {"id": server.id, "name": server.name},
                                                         **{k: v for k, v in run.params.items() if k != "action"}},
                     then="on_power_complete")

    def on_power_complete(self, run: Run) -> None:
        server = server_of(run)
        _p, ok, _f = POWER[str(run.params["action"])]
        sm.apply_if(server, ok)
        server.power_status = POWER_STATUS.get(ok, server.power_status)
        release_task(server, run)
        run.complete()

    def on_failed(self, run: Run, reason: str) -> None:
        server = run.session.get(Server, run.task.obj_id)
        if server is not None:
            _p, _ok, fail = POWER[str(run.params.get("action", "start"))]
            sm.apply_if(server, fail)
            release_task(server, run)


class ServerSyncstatusTask(TaskBase):
    name = "ServerSyncstatusTask"

    def on_init(self, run: Run) -> None:
        from core.region.models import Host

        server = server_of(run)
        host = run.session.get(Host, server.host_id) if server.host_id else None
        if host is None or host.host_status != "online":
            sm.apply_if(server, "synced:unknown")
            release_task(server, run)
            run.complete(note="host offline or missing")
            return
        run.dispatch(host.id, "guest-status", {"server": {"id": server.id, "name": server.name}},
                     then="on_sync_complete")

    def on_sync_complete(self, run: Run) -> None:
        server = server_of(run)
        st = str(run.result().get("status", "unknown"))
        if not sm.apply_if(server, f"synced:{st}"):
            sm.apply_if(server, "synced:unknown")
        release_task(server, run)
        run.complete()

    def on_failed(self, run: Run, reason: str) -> None:
        server = run.session.get(Server, run.task.obj_id)
        if server is not None:
            sm.apply_if(server, "sync_fail")
            release_task(server, run)
