"""Power actions and status sync: one work item each, the agent's report settles the status."""
from __future__ import annotations

from core.host_protocol import POWER_STATUS as SERVER_POWER
from core.host_protocol import GuestResult, PowerPayload, StatusResult, StopPayload, WorkKind, server_status
from core.region import statemachine as sm
from core.region.models import Server
from core.region.tasks._common import ServerTask, release_task, server_of, server_ref
from core.tasks.engine import Run

# action -> (progress event when dispatched, success event, failure event)
POWER = {
    "start": ("starting", "started", "start_fail"),
    "stop": ("stopping", "stopped", "stop_fail"),
    "restart": (None, "started", "start_fail"),
    "reset": (None, "started", "reset_fail"),
    "suspend": (None, "suspended", "suspend_fail"),
    "resume": (None, "started", "resume_fail"),
}


class ServerPowerTask(ServerTask):
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
        kind = WorkKind(f"guest-{action}")
        if kind is WorkKind.STOP:
            payload: PowerPayload = StopPayload(server=server_ref(server), is_force=bool(run.params.get("is_force")),
                                                timeout_secs=int(run.params.get("timeout_secs") or 30))
        else:
            payload = PowerPayload(server=server_ref(server))
        run.dispatch(server.host_id, kind, payload, then="on_power_complete")

    def on_power_complete(self, run: Run) -> None:
        server = server_of(run)
        action = str(run.params["action"])
        res: GuestResult = run.result_of(WorkKind(f"guest-{action}"))
        _p, ok, _f = POWER[action]
        want = {"started": "running", "stopped": "ready", "suspended": "suspend"}[ok]
        got = server_status(res.guest_status)
        if got != want:  # the host did it, but the guest is not where the action leads
            run.fail(f"{action}: the guest is {res.guest_status.value} afterwards, not {want}")
        sm.apply_if(server, ok)
        server.power_status = SERVER_POWER.get(server.status, server.power_status)
        release_task(server, run)
        run.complete()

    def undo(self, run: Run, server: Server | None, reason: str) -> None:
        if server is not None:
            action = str(run.params.get("action", "start"))
            _p, _ok, fail = POWER[action]
            if sm.apply_if(server, fail):
                sm.set_reason(server, f"{action} failed: {reason}")


class ServerSyncstatusTask(ServerTask):
    name = "ServerSyncstatusTask"

    def on_init(self, run: Run) -> None:
        from core.region.models import Host

        server = server_of(run)
        host = run.session.get(Host, server.host_id) if server.host_id else None
        if host is None or host.host_status != "online":
            sm.apply_if(server, "synced:unknown")
            sm.set_reason(server, f"host {host.name} is {host.host_status}" if host else "the server has no host")
            release_task(server, run)
            run.complete(note="host offline or missing")
            return
        run.dispatch(host.id, WorkKind.STATUS, PowerPayload(server=server_ref(server)), then="on_sync_complete")

    def on_sync_complete(self, run: Run) -> None:
        server = server_of(run)
        res: StatusResult = run.result_of(WorkKind.STATUS)
        st = server_status(res.guest_status) or "unknown"
        if not sm.apply_if(server, f"synced:{st}"):
            sm.apply_if(server, "synced:unknown")
        if server.status == "unknown":
            sm.set_reason(server, res.reason or f"the host says the guest is {res.guest_status.value}")
        server.power_status = SERVER_POWER.get(server.status, server.power_status)
        release_task(server, run)
        run.complete()

    def undo(self, run: Run, server: Server | None, reason: str) -> None:
        if server is not None:
            sm.apply_if(server, "sync_fail")
