"""The host changes the guest's CD-ROM (insert/eject) or boot order; on success the server keeps
what its drive holds and its boot order (core.region.cdrom)."""
from __future__ import annotations

from core.host_protocol import BootOrderPayload, CdromPayload, CdromResult, WorkKind
from core.region.models import Server
from core.region.tasks._common import ServerTask, agent_payload, release_task, server_of, server_ref
from core.tasks.engine import Run


def _keep(server: Server, **kw: object) -> None:
    spec = dict(server.create_spec or {})
    for k, v in kw.items():
        if v is None:
            spec.pop(k, None)
        else:
            spec[k] = v
    server.create_spec = spec


class ServerCdromTask(ServerTask):
    name = "ServerCdromTask"

    def on_init(self, run: Run) -> None:
        server = server_of(run)
        iso = run.params.get("cdrom") or {}
        run.dispatch(str(server.host_id), WorkKind.CDROM,
                     CdromPayload(server=server_ref(server), image_id=iso.get("image_id")), then="on_done")

    def on_done(self, run: Run) -> None:
        server = server_of(run)
        res: CdromResult = run.result_of(WorkKind.CDROM)
        _keep(server, cdrom=run.params.get("cdrom"))
        run.set_params(live=res.live)
        release_task(server, run)
        run.complete()



class ServerBootOrderTask(ServerTask):
    name = "ServerBootOrderTask"

    def on_init(self, run: Run) -> None:
        server = server_of(run)
        payload = agent_payload(run.session, server, model=BootOrderPayload, boot_order=list(run.params["boot_order"]))
        run.dispatch(str(server.host_id), WorkKind.BOOT_ORDER, payload, then="on_done")

    def on_done(self, run: Run) -> None:
        server = server_of(run)
        run.result_of(WorkKind.BOOT_ORDER)
        _keep(server, boot_order=list(run.params["boot_order"]))
        release_task(server, run)
        run.complete()

