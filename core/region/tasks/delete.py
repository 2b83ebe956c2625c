"""Deleting servers and disks: the agent removes the guest, then we release and drop rows."""
from __future__ import annotations

from sqlalchemy import select

from core.host_protocol import DeletePayload, DeleteResult, DiskDeletePayload, DiskPayload, WorkKind
from core.region import statemachine as sm
from core.region.models import Disk, Host, HostStorage, Server
from core.region.release import release_disk, release_server
from core.region.tasks._common import disk_payload, release_task, server_of, server_ref
from core.tasks.engine import Run, TaskBase

# statuses in which nothing exists on a host: no agent round trip needed. An agent that reports a
# failed deploy has cleaned up after itself (that is part of its answer), so deploy_fail counts too.
NOTHING_DEPLOYED = ("init", "schedule", "sched_fail", "net_fail", "disk_fail", "deploy_fail")


class ServerDeleteTask(TaskBase):
    name = "ServerDeleteTask"

    def on_init(self, run: Run) -> None:
        server = server_of(run)
        host = run.session.get(Host, server.host_id) if server.host_id else None
        before = (server.create_spec or {}).get("status_before_delete")
        deployed = host is not None and before not in NOTHING_DEPLOYED
        if deployed and host is not None and host.host_status == "online":
            rows = list(run.session.scalars(select(Disk).where(Disk.server_id == server.id)))
            keep = [DiskPayload(id=d.id, index=d.disk_index, size=d.disk_size, format=d.disk_format,
                                access_path=d.access_path) for d in rows if not d.auto_delete and d.disk_index > 0]
            run.dispatch(host.id, WorkKind.DELETE, DeletePayload(server=server_ref(server), disks=[d.id for d in rows],
                                                                 keep=keep), then="on_delete_complete")
        else:
            # never deployed, or its host is gone/offline: nothing to undo on a host
            run.next("on_delete_complete")

    def on_delete_complete(self, run: Run) -> None:
        server = server_of(run)
        if run.result():  # the host's answer (none when nothing was deployed)
            res: DeleteResult = run.result_of(WorkKind.DELETE)
            for k in res.kept:  # a kept disk's file now lives outside the gone instance
                d = run.session.get(Disk, k.id)
                if d is not None:
                    d.access_path = k.access_path
        from core.region.secgroups import drop_server

        # first: it locks the hosts it bumps, the server's own among them, in one id-ordered pass
        drop_server(run.session, server)  # peers' rules no longer name its address
        from core.region.eips import dissociate

        # the EIP stays, free, unless delete_eip or its auto_dellocate says otherwise (as Cloudpods)
        dissociate(run.session, server, auto_delete=bool(run.params.get("delete_eip")))
        release_server(run.session, server)
        run.session.flush()
        run.session.delete(server)
        run.complete()

    def on_failed(self, run: Run, reason: str) -> None:
        server = run.session.get(Server, run.task.obj_id)
        if server is not None:
            sm.apply_if(server, "delete_fail")
            release_task(server, run)


class DiskDeleteTask(TaskBase):
    name = "DiskDeleteTask"

    def on_init(self, run: Run) -> None:
        """The host that holds the disk's file removes it, then the row goes; a disk never made
        into a file (created, never attached) or on a storage no host serves goes at once."""
        d = run.session.get(Disk, run.task.obj_id)
        if d is None:
            run.complete()
            return
        host_id = run.session.scalar(select(HostStorage.host_id).where(HostStorage.storage_id == d.storage_id)
                                     .order_by(HostStorage.host_id).limit(1)) if d.access_path else None
        if host_id is None:
            run.next("on_file_deleted")
            return
        run.dispatch(host_id, WorkKind.DISK_DELETE, DiskDeletePayload(disk=disk_payload(d, index=max(d.disk_index, 0))),
                     then="on_file_deleted")

    def on_file_deleted(self, run: Run) -> None:
        if run.result():
            run.result_of(WorkKind.DISK_DELETE)
        d = run.session.get(Disk, run.task.obj_id)
        if d is not None:
            release_disk(run.session, d)
            run.session.delete(d)
        run.complete()

    def on_failed(self, run: Run, reason: str) -> None:
        d = run.session.get(Disk, run.task.obj_id)
        if d is not None:
            d.status, d.active_task_id = "dealloc_failed", None
