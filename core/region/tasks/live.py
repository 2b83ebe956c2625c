"""Live migration: a running server moves to another host without stopping.

    on_init           schedule a target that declares live_migrate (claimed there);
                      target: guest-live-migrate-prepare (disks, leases, config drive; no guest yet)
    on_prepared       source: guest-live-migrate (the hypervisor moves the running guest)
    on_migrated       the server is on the target now; target: guest-status (it confirms, and keeps
                      the guest's description for a restart)
    on_confirmed      done: running on the target
    on_migrated_failed  the guest still runs on the source: the target's preparation is undone
                      (guest-migrate-cleanup there), then the task fails with the source's reason
    on_failed         before the move: the target's claim released, the server running where it was,
                      with the reason; after the move: running on its new host, the reason says what
                      was left undone
"""
from __future__ import annotations

from core.host_protocol import (
    POWER_STATUS,
    LiveMigratePayload,
    LiveMigratePreparePayload,
    MigrateCleanupPayload,
    PowerPayload,
    WorkKind,
    server_status,
)
from core.region import statemachine as sm
from core.region.models import Host, Server
from core.region.release import release_host_claim
from core.region.tasks._common import ServerTask, agent_payload, release_task, server_of, server_ref
from core.region.tasks.config import move_to_target, schedule_target
from core.tasks.engine import Run
from drivers.base import Capability


class ServerLiveMigrateTask(ServerTask):
    name = "ServerLiveMigrateTask"

    def on_init(self, run: Run) -> None:
        server = server_of(run)
        p = schedule_target(run, server, Capability.LIVE_MIGRATE)
        if p is None:
            run.fail("no other host can take the server live (it must declare live_migrate and have room)")
        assert p is not None
        payload = agent_payload(run.session, server, model=LiveMigratePreparePayload, host_id=p.host_id,
                                source_host_id=run.params["source"])
        run.dispatch(p.host_id, WorkKind.LIVE_MIGRATE_PREPARE, payload, then="on_prepared")

    def on_prepared(self, run: Run) -> None:
        server = server_of(run)
        got = run.result_of(WorkKind.LIVE_MIGRATE_PREPARE)
        run.set_params(prepared={d.id: d.access_path for d in got.disks})
        guest = agent_payload(run.session, server)
        run.dispatch(run.params["source"], WorkKind.LIVE_MIGRATE, LiveMigratePayload(
            server=server_ref(server), target_host_id=run.params["target"], target=got.target, disks=guest.disks),
            then="on_migrated")

    def on_migrated(self, run: Run) -> None:
        server = server_of(run)
        run.result_of(WorkKind.LIVE_MIGRATE)
        move_to_target(run, server, dict(run.params.get("prepared") or {}))
        run.dispatch(run.params["target"], WorkKind.STATUS, PowerPayload(server=server_ref(server)),
                     then="on_confirmed")

    def on_confirmed(self, run: Run) -> None:
        server = server_of(run)
        res = run.result_of(WorkKind.STATUS)
        sm.apply_if(server, "live_migrated")
        to = server_status(res.guest_status)
        if to != "running":
            sm.set_reason(server, f"live-migrated, but the new host reports the guest {res.guest_status.value}")
        server.power_status = POWER_STATUS.get(to or "", server.power_status)
        release_task(server, run)
        run.complete()

    def on_confirmed_failed(self, run: Run) -> None:
        """The guest moved; only the new host's confirmation is missing (its periodic sync will settle it)."""
        server = server_of(run)
        sm.apply_if(server, "live_migrated")
        sm.set_reason(server, f"live-migrated; the new host did not confirm the guest: {run.result_reason()}")
        release_task(server, run)
        run.complete()

    def on_migrated_failed(self, run: Run) -> None:
        """The source still runs the guest: undo the target's preparation, then fail with the reason."""
        run.set_params(source_reason=run.result_reason())
        server = server_of(run)
        run.dispatch(run.params["target"], WorkKind.MIGRATE_CLEANUP, MigrateCleanupPayload(server=server_ref(server)),
                     then="on_target_undone")

    def on_target_undone(self, run: Run) -> None:
        run.fail(str(run.params.get("source_reason") or "the source host could not migrate the guest"))

    def on_target_undone_failed(self, run: Run) -> None:
        host = run.session.get(Host, run.params["target"])
        run.fail(f"{run.params.get('source_reason') or 'the source host could not migrate the guest'}; "
                 f"its preparation on host {host.name if host else run.params['target']} was not undone: "
                 f"{run.result_reason()}")

    def undo(self, run: Run, server: Server | None, reason: str) -> None:
        if server is None:
            return
        if run.params.get("moved"):  # it runs on its new host already
            sm.apply_if(server, "live_migrated")
            sm.set_reason(server, f"live-migrated; then: {reason}")
            return
        if run.params.get("target"):
            release_host_claim(run.session, run.params["target"], int(run.params.get("vcpu", 0)),
                               int(run.params.get("vmem", 0)))
        sm.apply_if(server, "live_migrate_fail")
        sm.set_reason(server, f"live migration failed, the server runs on its host: {reason}")
