"""Disk snapshots: create, delete and disk-reset, one work item each to the host of the disk's server.

The API held the disk and its server (``active_task_id``) when it accepted the action; every end
(success or failure) lets go of both.
"""
from __future__ import annotations

from core.host_protocol import DiskResetPayload, DiskResizePayload, SnapshotPayload, WorkKind
from core.region import quotas
from core.region.models import Disk, Server, Snapshot
from core.region.tasks._common import disk_payload, server_ref
from core.tasks.engine import Run, StageError, TaskBase


def _disk_server(run: Run, disk_id: str) -> tuple[Disk, Server]:
    disk = run.session.get(Disk, disk_id)
    server = run.session.get(Server, disk.server_id) if disk is not None and disk.server_id else None
    if disk is None or server is None or not server.host_id:
        raise StageError("the disk is gone or no longer attached to a deployed server")
    return disk, server


def _let_go(run: Run, disk_id: str) -> None:
    disk = run.session.get(Disk, disk_id)
    if disk is None:
        return
    if disk.active_task_id == run.task.id:
        disk.active_task_id = None
    server = run.session.get(Server, disk.server_id) if disk.server_id else None
    if server is not None and server.active_task_id == run.task.id:
        server.active_task_id = None


def _snapshot(run: Run) -> Snapshot:
    snap = run.session.get(Snapshot, run.task.obj_id)
    if snap is None:
        raise StageError(f"snapshot {run.task.obj_id} no longer exists")
    return snap


def _dispatch(run: Run, kind: WorkKind, then: str) -> None:
    """The snapshot's work item (take or delete) to the host of its disk's server."""
    snap = _snapshot(run)
    disk, server = _disk_server(run, run.params["disk_id"])
    run.dispatch(str(server.host_id), kind,
                 SnapshotPayload(server=server_ref(server), disk=disk_payload(disk), snapshot_id=snap.id), then=then)


class SnapshotCreateTask(TaskBase):
    name = "SnapshotCreateTask"

    def on_init(self, run: Run) -> None:
        _dispatch(run, WorkKind.SNAPSHOT_CREATE, then="on_created")

    def on_created(self, run: Run) -> None:
        snap = _snapshot(run)
        res = run.result_of(WorkKind.SNAPSHOT_CREATE)
        snap.status = "ready"
        if res.size:
            snap.size = res.size
        _let_go(run, run.params["disk_id"])
        run.complete()

    def on_failed(self, run: Run, reason: str) -> None:
        snap = run.session.get(Snapshot, run.task.obj_id)
        if snap is not None and snap.status == "creating":
            # nothing on the host to keep: the quota back at once, the row says why (snapshot-delete removes it)
            snap.status = "create_failed"
            snap.description = f"create failed: {reason}"[:1000]
            quotas.release(run.session, snap.tenant_id, {"snapshot": 1})
        _let_go(run, run.params.get("disk_id", ""))


class SnapshotDeleteTask(TaskBase):
    name = "SnapshotDeleteTask"

    def on_init(self, run: Run) -> None:
        _dispatch(run, WorkKind.SNAPSHOT_DELETE, then="on_deleted")

    def on_deleted(self, run: Run) -> None:
        snap = _snapshot(run)
        run.result_of(WorkKind.SNAPSHOT_DELETE)  # deleted False: it was gone already, fine
        quotas.release(run.session, snap.tenant_id, {"snapshot": 1})
        _let_go(run, run.params["disk_id"])
        run.session.delete(snap)
        run.complete()

    def on_failed(self, run: Run, reason: str) -> None:
        snap = run.session.get(Snapshot, run.task.obj_id)
        if snap is not None:
            snap.status = "ready"  # still there: a later delete can retry
            snap.description = f"delete failed: {reason}"[:1000]
        _let_go(run, run.params.get("disk_id", ""))


class DiskResetTask(TaskBase):
    name = "DiskResetTask"

    def on_init(self, run: Run) -> None:
        disk, server = _disk_server(run, run.task.obj_id)
        run.dispatch(str(server.host_id), WorkKind.DISK_RESET,
                     DiskResetPayload(server=server_ref(server), disk=disk_payload(disk),
                                      snapshot_id=str(run.params["snapshot_id"])), then="on_reset")

    def on_reset(self, run: Run) -> None:
        run.result_of(WorkKind.DISK_RESET)
        disk = run.session.get(Disk, run.task.obj_id)
        if disk is not None:
            disk.status = "ready"
        _let_go(run, run.task.obj_id)
        run.complete()

    def on_failed(self, run: Run, reason: str) -> None:
        disk = run.session.get(Disk, run.task.obj_id)
        if disk is not None and disk.status == "resetting":
            disk.status = "ready"  # the host changed nothing it could not finish (qemu-img applies or fails)
        _let_go(run, run.task.obj_id)


class DiskResizeTask(TaskBase):
    """The API claimed the growth (storage, quota); on success the disk holds it, on failure it goes back."""

    name = "DiskResizeTask"

    def on_init(self, run: Run) -> None:
        disk, server = _disk_server(run, run.task.obj_id)
        run.dispatch(str(server.host_id), WorkKind.DISK_RESIZE,
                     DiskResizePayload(server=server_ref(server), disk=disk_payload(disk),
                                       size=int(run.params["size"])), then="on_resized")

    def on_resized(self, run: Run) -> None:
        res = run.result_of(WorkKind.DISK_RESIZE)
        disk = run.session.get(Disk, run.task.obj_id)
        if disk is not None:
            grow = int(run.params["grow"])
            held = dict(disk.held or {})
            st = dict(held.get("storage") or {"storage_id": disk.storage_id, "size": disk.disk_size})
            st["size"] = int(st.get("size", 0)) + grow
            server = run.session.get(Server, disk.server_id) if disk.server_id else None
            if "quota" in held or server is None:  # a disk made on its own holds its quota
                q = dict(held.get("quota") or {})
                q["storage"] = int(q.get("storage", 0)) + grow
                held["quota"] = q
            else:  # a disk made with its server: the server holds the quota of its disks
                q = dict(server.held.get("quota") or {})
                q["storage"] = int(q.get("storage", 0)) + grow
                server.held = {**server.held, "quota": q}
            disk.held = {**held, "storage": st}
            disk.disk_size, disk.status = max(int(run.params["size"]), res.size), "ready"
        _let_go(run, run.task.obj_id)
        run.complete(online=res.online)

    def on_failed(self, run: Run, reason: str) -> None:
        from core.region.release import adjust_storage

        disk = run.session.get(Disk, run.task.obj_id)
        if disk is not None and disk.status == "resizing":
            grow = int(run.params.get("grow", 0))
            adjust_storage(run.session, disk.storage_id, -grow)
            quotas.release(run.session, disk.tenant_id, {"storage": grow})
            disk.status = "ready"
        _let_go(run, run.task.obj_id)
