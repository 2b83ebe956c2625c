"""Server creation: one batch task schedules every server, then one sub-task per server.

    ServerBatchCreateTask  on_init: place + claim (hosts, storages), disk rows, spawn children
                           on_children_done: complete
    ServerCreateTask       on_init (network): allocate addresses
                           on_disk: disks allocating + work item guest-deploy, in one transaction
                           on_deploy_complete[_failed]: agent's report
    on_failed (both):      *_fail status, release addresses, disks, host claim, quota
"""
from __future__ import annotations

from sqlalchemy import select

from core.audit import record_for_task
from core.host_protocol import POWER_STATUS, DeployResult, WorkKind, server_status
from core.region import ipam
from core.region import statemachine as sm
from core.region.models import Disk, Host, IpAllocation, Network, Server
from core.region.release import adjust_storage, release_server
from core.region.tasks._common import agent_payload, release_task, server_of
from core.scheduler import ScheduleInput, ScheduleInputError
from core.tasks.engine import Run, TaskBase

FAIL_EVENT = {"schedule": "sched_fail", "network": "net_fail", "disk": "disk_fail", "deploying": "deploy_fail"}


def _fail_server(run: Run, server: Server, reason: str) -> None:
    ev = FAIL_EVENT.get(server.status)
    if ev:
        sm.apply_if(server, ev)
    release_server(run.session, server)
    server.create_spec = {**server.create_spec, "fail_reason": reason[:1000]}
    if server.active_task_id in (run.task.id, run.task.parent_task_id):
        server.active_task_id = None
    # the request was audited as accepted; its outcome is a second record, so the log says it failed
    record_for_task(run.session, run.task.user_cred, service="compute", action="create", obj_type="server",
                    obj_id=server.id, obj_name=server.name, success=False, notes=reason)


class ServerBatchCreateTask(TaskBase):
    name = "ServerBatchCreateTask"

    def on_init(self, run: Run) -> None:
        from core.region.scheduling import CACHE

        s = run.session
        ids = list(run.params.get("server_ids", []))
        servers = {x.id: x for x in s.scalars(select(Server).where(Server.id.in_(ids)))}
        todo = [servers[i] for i in ids if i in servers and servers[i].status == "schedule"]
        if not todo:
            run.wait_children("on_children_done")
            return
        try:
            req = ScheduleInput.model_validate({**run.params.get("sched", {}), "count": len(todo)})
            result = CACHE.place(s, req)
            placements, why = result.placements, result.explanation()
        except (ScheduleInputError, ValueError) as e:
            placements, why = [], f"scheduling input rejected: {e}"
        hosts = {h.id: h for h in s.scalars(select(Host).where(Host.id.in_({p.host_id for p in placements})))}
        for server, p in zip(todo, placements, strict=False):
            server.host_id, server.zone_id = p.host_id, hosts[p.host_id].zone_id
            server.held = {**server.held, "host": {"host_id": p.host_id, "vcpu": p.vcpu, "vmem": p.vmem}}
            pd = [{"index": d.index, "storage_id": d.storage_id, "size": d.size} for d in p.disks]
            server.create_spec = {**server.create_spec, "placement": {
                "disks": pd, "nics": [{"index": n.index, "network_id": n.network_id} for n in p.nics]}}
            from core.region.server_create import disk_rows_for

            for d in disk_rows_for(server, pd):
                s.add(d)
                adjust_storage(s, d.storage_id, d.disk_size)
            sm.apply(server, "scheduled")
            child = run.spawn("ServerCreateTask", "server", server.id, server.name,
                              {k: run.params[k] for k in ("password_sealed", "password") if run.params.get(k)})
            s.flush()
            server.active_task_id = child.id
        for server in todo[len(placements):]:
            _fail_server(run, server, why or "no host fits")
        run.set_params(password=None, password_sealed=None, explanation=why, placed=len(placements),
                       requested=len(todo))
        run.wait_children("on_children_done")

    def on_children_done(self, run: Run) -> None:
        from core.tasks.models import FAILED, Task

        failed = run.session.scalars(select(Task.obj_name).where(Task.parent_task_id == run.task.id,
                                                                 Task.status == FAILED)).all()
        unplaced = int(run.params.get("requested", 0)) - int(run.params.get("placed", 0))
        if failed or unplaced:
            # the batch failed when any of its servers did: --wait and task-list say so, with why
            run.fail("; ".join(filter(None, [
                f"{unplaced} not scheduled: {run.params.get('explanation', '')}" if unplaced else "",
                f"{len(failed)} failed: {', '.join(failed[:10])}" if failed else ""])))
        run.complete()

    def on_failed(self, run: Run, reason: str) -> None:
        ids = list(run.params.get("server_ids", []))
        for server in run.session.scalars(select(Server).where(Server.id.in_(ids))):
            if server.status == "schedule":
                _fail_server(run, server, reason)


class ServerCreateTask(TaskBase):
    name = "ServerCreateTask"

    def on_init(self, run: Run) -> None:
        s = run.session
        server = server_of(run)
        nets = {n["index"]: n for n in server.create_spec.get("nets", [])}
        placed = server.create_spec.get("placement", {}).get("nics", [])
        have = set(s.scalars(select(IpAllocation.nic_index).where(IpAllocation.owner_type == "server",
                                                                  IpAllocation.owner_id == server.id)))
        for nic in placed:
            if nic["index"] in have:
                continue  # a re-run of this stage after a crash
            want = nets.get(nic["index"], {})
            net = s.get(Network, nic["network_id"])
            if net is None:
                run.fail(f"network {nic['network_id']} no longer exists")
            assert net is not None
            ipam.allocate(s, net, "server", server.id, address=want.get("address"),
                          mac=want.get("mac") or ipam.random_mac(), ifname=f"eth{nic['index']}",
                          nic_index=nic["index"])
        from core.region.eips import allocate_for_server

        allocate_for_server(s, server)  # server-create --eip-bw: a new EIP in the host's zone
        sm.apply(server, "net_ok")
        run.next("on_disk")

    def on_disk(self, run: Run) -> None:
        """Disks allocating, the server ``deploying`` and its work item queued: one transaction."""
        server = server_of(run)
        assert server.host_id
        for d in run.session.scalars(select(Disk).where(Disk.server_id == server.id, Disk.status == "init")):
            d.status = "allocating"
        sm.apply_if(server, "disk_ok")  # a re-run of this stage after a crash finds it deploying
        from core.region.passwords import unseal_password

        payload = agent_payload(run.session, server, unseal_password(run.params))
        run.dispatch(server.host_id, WorkKind.DEPLOY, payload, then="on_deploy_complete")
        run.set_params(password=None, password_sealed=None)

    on_deploy = on_disk  # tasks recorded at this stage by an older controller resume here

    def on_deploy_complete(self, run: Run) -> None:
        server = server_of(run)
        res: DeployResult = run.result_of(WorkKind.DEPLOY)
        paths = {d.id: d.access_path for d in res.disks}
        for d in run.session.scalars(select(Disk).where(Disk.server_id == server.id)):
            d.status = "ready"
            if d.id in paths:
                d.access_path = paths[d.id][:255]
        host = run.session.get(Host, server.host_id) if server.host_id else None
        if host is not None and host.manager_id and res.guest_id:  # a cloud's zone: the instance's id there
            server.external_id, server.manager_id = res.guest_id[:255], host.manager_id
        sm.apply(server, "deployed")
        if server_status(res.guest_status) == "running":
            sm.apply_if(server, "boot")
        server.power_status = POWER_STATUS.get(server.status, "off")
        release_task(server, run)
        run.complete()

    def on_failed(self, run: Run, reason: str) -> None:
        server = run.session.get(Server, run.task.obj_id)
        if server is not None:
            _fail_server(run, server, reason)
