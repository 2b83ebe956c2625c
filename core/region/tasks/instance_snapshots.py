"""Instance snapshots: taken in one work item on the server's host; deleted through one
``SnapshotDeleteTask`` per disk snapshot (sub-tasks). The API held the server and its disks with
this task's id; every end lets go of them."""
from __future__ import annotations

from sqlalchemy import select

from core.host_protocol import InstanceSnapshotPayload, WorkKind
from core.region import quotas
from core.region.managers.snapshot_base import members
from core.region.models import Disk, InstanceSnapshot, Server
from core.region.tasks._common import disk_payload, server_ref
from core.tasks.engine import Run, StageError, TaskBase


def _isnap(run: Run) -> InstanceSnapshot:
    row = run.session.get(InstanceSnapshot, run.task.obj_id)
    if row is None:
        raise StageError(f"instance snapshot {run.task.obj_id} no longer exists")
    return row


def _let_go(run: Run, server_id: str | None) -> None:
    server = run.session.get(Server, server_id) if server_id else None
    if server is None:
        return
    if server.active_task_id == run.task.id:
        server.active_task_id = None
    for d in run.session.scalars(select(Disk).where(Disk.active_task_id == run.task.id)):
        d.active_task_id = None


class InstanceSnapshotCreateTask(TaskBase):
    name = "InstanceSnapshotCreateTask"

    def on_init(self, run: Run) -> None:
        isnap = _isnap(run)
        server = run.session.get(Server, isnap.guest_id)
        if server is None or not server.host_id:
            raise StageError("the server is gone or no longer deployed")
        snaps = sorted(members(run.session, isnap.id), key=lambda s: s.disk_id)
        disks = {d.id: d for d in run.session.scalars(select(Disk).where(Disk.id.in_([s.disk_id for s in snaps])))}
        if len(disks) != len(snaps) or any(d.server_id != server.id for d in disks.values()):
            raise StageError("a disk of the server was detached or deleted meanwhile")
        run.dispatch(str(server.host_id), WorkKind.INSTANCE_SNAPSHOT_CREATE, InstanceSnapshotPayload(
            server=server_ref(server), disks=[disk_payload(disks[s.disk_id]) for s in snaps],
            snapshot_ids=[s.id for s in snaps]), then="on_created")

    def on_created(self, run: Run) -> None:
        isnap = _isnap(run)
        res = run.result_of(WorkKind.INSTANCE_SNAPSHOT_CREATE)
        snaps = sorted(members(run.session, isnap.id), key=lambda s: s.disk_id)
        for s, size in zip(snaps, res.sizes, strict=False):
            s.status = "ready"
            if size:
                s.size = size
        isnap.status = "ready"
        _let_go(run, isnap.guest_id)
        run.complete()

    def on_failed(self, run: Run, reason: str) -> None:
        isnap = run.session.get(InstanceSnapshot, run.task.obj_id)
        if isnap is None:
            return
        if isnap.status == "creating":
            # nothing usable on the host: the disk snapshot rows go and the quota comes back at once;
            # the instance snapshot stays to say why (instance-snapshot-delete removes it)
            snaps = members(run.session, isnap.id)
            for s in snaps:
                run.session.delete(s)
            quotas.release(run.session, isnap.tenant_id, {"snapshot": len(snaps)})
            isnap.status = "create_failed"
            isnap.description = f"create failed: {reason}"[:1000]
        _let_go(run, isnap.guest_id)


class InstanceSnapshotDeleteTask(TaskBase):
    """One ``SnapshotDeleteTask`` per disk snapshot (each removes its snapshot from its file, its row
    and its quota); the instance snapshot goes when none is left."""

    name = "InstanceSnapshotDeleteTask"

    def on_init(self, run: Run) -> None:
        isnap = _isnap(run)
        for s in members(run.session, isnap.id):
            run.spawn("SnapshotDeleteTask", "snapshot", s.id, s.name, {"disk_id": s.disk_id})
        run.wait_children("on_deleted")

    def on_deleted(self, run: Run) -> None:
        isnap = _isnap(run)
        left = members(run.session, isnap.id)
        _let_go(run, isnap.guest_id)
        if left:  # a sub-task failed: those snapshots are ready again (their rows say why); retry later
            isnap.status = "ready"
            isnap.description = f"delete failed for {', '.join(s.name for s in left)}"[:1000]
            run.complete(left=len(left))
            return
        run.session.delete(isnap)
        run.complete()

    def on_failed(self, run: Run, reason: str) -> None:
        isnap = run.session.get(InstanceSnapshot, run.task.obj_id)
        if isnap is None:
            return
        isnap.status = "ready"
        isnap.description = f"delete failed: {reason}"[:1000]
        for s in members(run.session, isnap.id):
            if s.status == "deleting":
                s.status = "ready"
        _let_go(run, isnap.guest_id)


class InstanceSnapshotResetTask(TaskBase):
    """Each disk back to its snapshot of the instance snapshot, one work item (disk-reset) after the
    other; a failure stops there and says which disks were reset already."""

    name = "InstanceSnapshotResetTask"

    def on_init(self, run: Run) -> None:
        self._next(run)

    def _next(self, run: Run) -> None:
        from core.host_protocol import DiskResetPayload

        server = run.session.get(Server, run.task.obj_id)
        done = int(run.params.get("done", 0))
        resets = list(run.params["resets"])
        if server is None or not server.host_id:
            raise StageError("the server is gone")
        if done >= len(resets):
            _let_go(run, server.id)
            if run.params.get("auto_start") and server.status == "ready":
                from core.region import statemachine as sm
                from core.tasks.engine import submit

                sm.apply(server, "start")
                t = submit(run.session, "ServerPowerTask", "server", server.id, server.name, {"action": "start"},
                           tenant_id=server.tenant_id, domain_id=server.domain_id)
                server.active_task_id = t.id
            run.complete()
            return
        disk_id, snap_id = resets[done]
        disk = run.session.get(Disk, disk_id)
        if disk is None or disk.server_id != server.id:
            raise StageError(f"disk {disk_id} is no longer on the server")
        run.dispatch(str(server.host_id), WorkKind.DISK_RESET,
                     DiskResetPayload(server=server_ref(server), disk=disk_payload(disk), snapshot_id=snap_id),
                     then="on_reset")

    def on_reset(self, run: Run) -> None:
        run.result_of(WorkKind.DISK_RESET)
        done = int(run.params.get("done", 0))
        disk = run.session.get(Disk, run.params["resets"][done][0])
        if disk is not None:
            disk.status = "ready"
        run.set_params(done=done + 1)
        self._next(run)

    def on_failed(self, run: Run, reason: str) -> None:
        done = int(run.params.get("done", 0))
        for d in run.session.scalars(select(Disk).where(Disk.active_task_id == run.task.id)):
            if d.status == "resetting":
                d.status = "ready"
        server = run.session.get(Server, run.task.obj_id)
        if server is not None:
            from core.region import statemachine as sm

            sm.set_reason(server, f"instance-snapshot-reset stopped after {done} of {len(run.params['resets'])} "
                                  f"disk(s): {reason}")
        _let_go(run, run.task.obj_id)
