"""Change-config, migrate (out, in, cleanup: three work items), rebuild-root, attach/detach disk."""
from __future__ import annotations

from typing import Any

from sqlalchemy import select

from core.host_protocol import (
    POWER_STATUS,
    AttachDiskPayload,
    AttachDiskResult,
    DeployResult,
    DetachDiskPayload,
    MigrateCleanupPayload,
    MigrateInPayload,
    MigrateOutPayload,
    RebuildRootPayload,
    ReconfigurePayload,
    WorkKind,
    server_status,
)
from core.region import quotas
from core.region import statemachine as sm
from core.region.models import Disk, Host, HostStorage, Server
from core.region.release import release_host_claim
from core.region.tasks._common import (
    ServerTask,
    agent_payload,
    disk_of,
    disk_payload,
    release_task,
    server_of,
    server_ref,
)
from core.tasks.engine import Run
from drivers.base import Capability


class ServerChangeConfigTask(ServerTask):
    """Claim the CPU/memory delta on the host (capacity-checked), tell the agent, then commit."""

    name = "ServerChangeConfigTask"

    def on_init(self, run: Run) -> None:
        server = server_of(run)
        d = run.params["delta"]
        dc, dm = int(d.get("cpu", 0)), int(d.get("memory", 0))
        if not run.params.get("claimed") and (dc or dm):
            # the one claim path: capacity from the scheduler's snapshot (capacity.offered), written
            # generation-guarded, a conflicting writer re-read and decided again (claims.claim_delta)
            from core.region.scheduling import CACHE

            if not server.host_id:
                run.fail("the server is on no host")
            why = CACHE.claim_delta(run.session, str(server.host_id), dc, dm)
            if why:
                run.fail(why)
            hc = dict(server.held.get("host") or {})
            hc["vcpu"], hc["vmem"] = int(hc.get("vcpu", 0)) + dc, int(hc.get("vmem", 0)) + dm
            q = dict(server.held.get("quota") or {})
            q["cpu"], q["memory"] = int(q.get("cpu", 0)) + max(dc, 0), int(q.get("memory", 0)) + max(dm, 0)
            server.held = {**server.held, "host": hc, "quota": q}
            run.set_params(claimed=True)
        run.dispatch(str(server.host_id), WorkKind.RECONFIGURE,
                     ReconfigurePayload(server=server_ref(server), vcpu_count=int(run.params["vcpu_count"]),
                                        vmem_size=int(run.params["vmem_size"])), then="on_config_complete")

    def on_config_complete(self, run: Run) -> None:
        server = server_of(run)
        run.result_of(WorkKind.RECONFIGURE)
        d = run.params["delta"]
        server.vcpu_count, server.vmem_size = int(run.params["vcpu_count"]), int(run.params["vmem_size"])
        shrink = {k: -int(v) for k, v in d.items() if int(v) < 0}
        if shrink:
            quotas.release(run.session, server.tenant_id, shrink)
            q = dict(server.held.get("quota") or {})
            for k, v in shrink.items():
                q[k] = max(int(q.get(k, 0)) - v, 0)
            server.held = {**server.held, "quota": q}
        sm.apply_if(server, "configured")
        release_task(server, run)
        run.complete()

    def undo(self, run: Run, server: Server | None, reason: str) -> None:
        if server is None:
            return
        d = run.params.get("delta", {})
        dc, dm = int(d.get("cpu", 0)), int(d.get("memory", 0))
        if run.params.get("claimed") and server.host_id:
            release_host_claim(run.session, server.host_id, dc, dm)
            hc = dict(server.held.get("host") or {})
            hc["vcpu"], hc["vmem"] = int(hc.get("vcpu", 0)) - dc, int(hc.get("vmem", 0)) - dm
            server.held = {**server.held, "host": hc}
        grow = {k: int(v) for k, v in d.items() if int(v) > 0}
        if grow:  # reserved by the API when it accepted the action
            quotas.release(run.session, server.tenant_id, grow)
            if run.params.get("claimed"):
                q = dict(server.held.get("quota") or {})
                for k, v in grow.items():
                    q[k] = max(int(q.get(k, 0)) - v, 0)
                server.held = {**server.held, "quota": q}
        sm.apply_if(server, "change_config_fail")


class ServerMigrateTask(ServerTask):
    """Cold migration: schedule a target (claim there); the source uploads the stopped guest's disks
    to the controller (migrate-out), the target downloads them and defines the guest (migrate-in),
    the server moves, the source forgets its copy (cleanup). Staged disks go when it ends.

    Until migrate-in succeeded a failure leaves the server on its source, untouched there
    (``migrate_fail`` with the reason; the target's claim released). A cleanup that fails after the
    move leaves the server ready on its new host, the reason naming the copy left on the old one.
    """

    name = "ServerMigrateTask"

    def on_init(self, run: Run) -> None:
        server = server_of(run)
        p = schedule_target(run, server, Capability.COLD_MIGRATE)
        if p is None:
            run.fail("no other host can take the server")
        assert p is not None
        guest = agent_payload(run.session, server)
        payload = MigrateOutPayload(server=server_ref(server), target_host_id=p.host_id, disks=guest.disks)
        run.dispatch(str(run.params["source"]), WorkKind.MIGRATE_OUT, payload, then="on_migrated_out")

    def on_migrated_out(self, run: Run) -> None:
        server = server_of(run)
        out = run.result_of(WorkKind.MIGRATE_OUT)
        payload = agent_payload(run.session, server, model=MigrateInPayload, host_id=run.params["target"],
                                source_host_id=run.params["source"], source=out.source)
        run.dispatch(run.params["target"], WorkKind.MIGRATE_IN, payload, then="on_migrated_in")

    def on_migrated_in(self, run: Run) -> None:
        server = server_of(run)
        got = run.result_of(WorkKind.MIGRATE_IN)
        move_to_target(run, server, {d.id: d.access_path for d in got.disks})
        run.dispatch(run.params["source"], WorkKind.MIGRATE_CLEANUP, MigrateCleanupPayload(server=server_ref(server)),
                     then="on_cleaned_up")

    def on_cleaned_up(self, run: Run) -> None:
        server = server_of(run)
        run.result_of(WorkKind.MIGRATE_CLEANUP)
        self._finish(run, server)

    def on_cleaned_up_failed(self, run: Run) -> None:
        """The guest runs from its new host; only the old host's copy is left (say so, do not undo the move)."""
        server = server_of(run)
        self._finish(run, server)
        src = run.session.get(Host, run.params["source"])
        sm.set_reason(server, f"migrated; the old copy on host {src.name if src else run.params['source']} "
                              f"was not removed: {run.result_reason()}")

    def _finish(self, run: Run, server: Server) -> None:
        from core.region import migration_staging

        migration_staging.discard(server.id)
        sm.apply_if(server, "migrated")
        release_task(server, run)
        run.complete()

    def undo(self, run: Run, server: Server | None, reason: str) -> None:
        from core.region import migration_staging

        if server is None:
            return
        migration_staging.discard(server.id)
        if run.params.get("moved"):  # on its new host already: only the old copy may be left
            sm.apply_if(server, "migrated")
            sm.set_reason(server, f"migrated; cleaning up the old host failed: {reason}")
            return
        if run.params.get("target"):
            release_host_claim(run.session, run.params["target"], int(run.params.get("vcpu", 0)),
                               int(run.params.get("vmem", 0)))
        sm.apply_if(server, "migrate_fail")
        sm.set_reason(server, f"migration failed, the server stays on its host: {reason}")


def move_to_target(run: Run, server: Server, paths: dict[str, str]) -> None:
    """A migration's move: the server (its host claim, zone, disks' storages and files) now on the
    target the task placed it on (``params``: target, vcpu, vmem, disks), the source's claim released."""
    from core.region.release import adjust_storage

    old = server.held.get("host") or {}
    target = run.session.get(Host, run.params["target"])
    server.host_id = run.params["target"]
    server.zone_id = target.zone_id if target else server.zone_id
    # the move's flush bumps the rules of the source and the target, both locked in one id-ordered pass
    # (secgroups.touch_hosts); the source's claim is released after it, on a row already held: released
    # first, the source was locked out of that order (the deadlock class of drop_server)
    run.session.flush()
    if old.get("host_id"):
        release_host_claim(run.session, old["host_id"], int(old.get("vcpu", 0)), int(old.get("vmem", 0)))
    server.held = {**server.held, "host": {"host_id": run.params["target"], "vcpu": run.params["vcpu"],
                                           "vmem": run.params["vmem"]}}
    by_index = {d["index"]: d["storage_id"] for d in run.params.get("disks", [])}
    for d in run.session.scalars(select(Disk).where(Disk.server_id == server.id)):
        new = by_index.get(d.disk_index)
        if new and new != d.storage_id:
            adjust_storage(run.session, d.storage_id, -d.disk_size)
            adjust_storage(run.session, new, d.disk_size)
            d.storage_id = new
            d.held = {**d.held, "storage": {"storage_id": new, "size": d.disk_size}}
        if paths.get(d.id):
            d.access_path = paths[d.id][:255]
    run.set_params(moved=True)


def schedule_target(run: Run, server: Server, capability: Capability) -> Any:
    """Place the server on another host that declares ``capability`` (claimed there); the params a
    migration keeps (target, source, claim, disks' storages); None if no host fits."""
    from core.region.scheduling import CACHE
    from core.scheduler import ScheduleInput

    if not server.host_id:
        run.fail("the server is on no host")
    disks = list(run.session.scalars(select(Disk).where(Disk.server_id == server.id)))
    req = ScheduleInput.model_validate({
        "vcpu_count": server.vcpu_count, "vmem_size": server.vmem_size, "hypervisor": server.hypervisor,
        "prefer_host": run.params.get("prefer_host"), "exclude_hosts": [server.host_id],
        "disks": [{"index": d.disk_index, "size": d.disk_size} for d in disks], "count": 1,
        "required_capabilities": [capability.value]})  # the target must take the guest in
    # claimed like a create: generation-guarded, conflicts re-placed (claims.place_and_claim)
    result = CACHE.place(run.session, req)
    if not result.placements:
        return None
    p: Any = result.placements[0]  # a scheduler Placement
    run.set_params(target=p.host_id, source=server.host_id, vcpu=p.vcpu, vmem=p.vmem,
                   disks=[{"index": d.index, "storage_id": d.storage_id} for d in p.disks])
    return p


def _disk_ready(run: Run) -> None:
    """The disk an attach or detach was about is back to ready, held by no task."""
    disk = run.session.get(Disk, run.params.get("disk_id", ""))
    if disk is not None:
        disk.status, disk.active_task_id = "ready", None


def _login_after_rebuild(server: Server, sealed: Any) -> None:
    """``server-logininfo`` after a rebuild: the new root's password, or none (a keypair only)."""
    from core.region.passwords import ACCOUNT, remember

    if sealed:
        remember(server, {"password_sealed": str(sealed)})
    elif (server.create_spec or {}).get("login"):
        server.create_spec = {**server.create_spec, "login": {"account": ACCOUNT}}


class ServerRebuildRootTask(ServerTask):
    name = "ServerRebuildRootTask"

    def on_init(self, run: Run) -> None:
        server = server_of(run)
        img = run.params.get("image_id")
        if img:
            sysd = run.session.scalar(select(Disk).where(Disk.server_id == server.id, Disk.disk_index == 0))
            if sysd is not None:
                run.set_params(old_image=sysd.template_id)
                sysd.template_id = img
        kp = run.params.get("keypair_id")
        if kp and kp != server.keypair_id:
            run.set_params(old_keypair=server.keypair_id or "")
            server.keypair_id = kp
        from core.region.passwords import unseal_password

        payload = agent_payload(run.session, server, unseal_password(run.params), model=RebuildRootPayload)
        run.dispatch(str(server.host_id), WorkKind.REBUILD_ROOT, payload, then="on_rebuild_complete")
        # the clear one in the work item only; the sealed one until the end, for server-logininfo
        run.set_params(password=None)

    def on_rebuild_complete(self, run: Run) -> None:
        server = server_of(run)
        res: DeployResult = run.result_of(WorkKind.REBUILD_ROOT)
        paths = {d.id: d.access_path for d in res.disks}
        for d in run.session.scalars(select(Disk).where(Disk.server_id == server.id)):
            if paths.get(d.id):
                d.access_path = paths[d.id][:255]
        sm.apply_if(server, "rebuilt")
        if server_status(res.guest_status) == "running":  # auto_start: the host started it again
            sm.apply_if(server, "boot")
        server.power_status = POWER_STATUS.get(server.status, "off")
        _login_after_rebuild(server, run.params.get("password_sealed"))
        run.set_params(password_sealed=None)
        release_task(server, run)
        run.complete()

    def undo(self, run: Run, server: Server | None, reason: str) -> None:
        run.set_params(password=None, password_sealed=None)
        if server is None:
            return
        if "old_image" in run.params:
            sysd = run.session.scalar(select(Disk).where(Disk.server_id == server.id, Disk.disk_index == 0))
            if sysd is not None:
                sysd.template_id = run.params["old_image"]
        if "old_keypair" in run.params:
            server.keypair_id = run.params["old_keypair"] or None
        sm.apply_if(server, "rebuild_root_fail")


class ServerAttachDiskTask(ServerTask):
    name = "ServerAttachDiskTask"

    def on_init(self, run: Run) -> None:
        server = server_of(run)
        disk = disk_of(run)
        if disk.storage_id and not run.session.scalar(select(HostStorage.id).where(
                HostStorage.host_id == server.host_id, HostStorage.storage_id == disk.storage_id)):
            run.fail(f"disk {disk.name} is on a storage host {server.host_id} cannot reach")
        used = set(run.session.scalars(select(Disk.disk_index).where(Disk.server_id == server.id)))
        index = next(i for i in range(64) if i not in used)
        run.set_params(index=index)
        run.dispatch(str(server.host_id), WorkKind.ATTACH_DISK, AttachDiskPayload(
            server=server_ref(server), disk=disk_payload(disk, index=index, with_image=True)),
            then="on_attach_complete")

    def on_attach_complete(self, run: Run) -> None:
        server = server_of(run)
        res: AttachDiskResult = run.result_of(WorkKind.ATTACH_DISK)
        disk = run.session.get(Disk, run.params["disk_id"])
        if disk is not None:
            disk.access_path = res.disk.access_path[:255] or disk.access_path
            disk.server_id, disk.disk_index, disk.status, disk.active_task_id = (
                server.id, int(run.params["index"]), "ready", None)
            disk.auto_delete = bool(run.params.get("auto_delete", False))  # server-create-disk: goes with it
        sm.apply_if(server, "attachdisk")
        release_task(server, run)
        run.complete()

    def undo(self, run: Run, server: Server | None, reason: str) -> None:
        _disk_ready(run)


class ServerDetachDiskTask(ServerTask):
    name = "ServerDetachDiskTask"

    def on_init(self, run: Run) -> None:
        server = server_of(run)
        disk = disk_of(run)
        run.dispatch(str(server.host_id), WorkKind.DETACH_DISK, DetachDiskPayload(
            server=server_ref(server), keep_disk=bool(run.params.get("keep_disk", True)), disk=disk_payload(disk)),
            then="on_detach_complete")

    def on_detach_complete(self, run: Run) -> None:
        server = server_of(run)
        run.result_of(WorkKind.DETACH_DISK)
        disk = run.session.get(Disk, run.params["disk_id"])
        if disk is not None:
            disk.server_id, disk.status, disk.active_task_id = None, "ready", None
        release_task(server, run)
        run.complete()

    def undo(self, run: Run, server: Server | None, reason: str) -> None:
        _disk_ready(run)


class ServerResetPasswordTask(ServerTask):
    """The host sets the new password (a running guest through the qemu guest agent) and rewrites the
    guest's config drive with it; on success the server keeps it (sealed) for ``server-logininfo``."""

    name = "ServerResetPasswordTask"

    def on_init(self, run: Run) -> None:
        from core.host_protocol import ResetPasswordPayload
        from core.region.passwords import unseal_password

        server = server_of(run)
        payload = agent_payload(run.session, server, unseal_password(run.params), model=ResetPasswordPayload)
        run.dispatch(str(server.host_id), WorkKind.RESET_PASSWORD, payload, then="on_reset")

    def on_reset(self, run: Run) -> None:
        from core.region.passwords import remember

        server = server_of(run)
        res = run.result_of(WorkKind.RESET_PASSWORD)
        remember(server, {"password_sealed": str(run.params["password_sealed"])})
        run.set_params(password_sealed=None, live=bool(getattr(res, "live", False)))
        release_task(server, run)
        run.complete()

    def undo(self, run: Run, server: Server | None, reason: str) -> None:
        run.set_params(password_sealed=None)
