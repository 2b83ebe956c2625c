"""Save a disk as an image: one work item to the server's host, which uploads into glance itself."""
from __future__ import annotations

from core.host_protocol import SaveImagePayload, WorkKind
from core.region import statemachine as sm
from core.region.models import Disk, Server
from core.region.tasks._common import ServerTask, agent_payload, release_task, server_of, server_ref
from core.tasks.engine import Run


def _disk_let_go(run: Run) -> None:
    d = run.session.get(Disk, run.params.get("disk_id", ""))
    if d is not None and d.active_task_id == run.task.id:
        d.active_task_id = None


class ServerSaveImageTask(ServerTask):
    name = "ServerSaveImageTask"

    def on_init(self, run: Run) -> None:
        server = server_of(run)
        disks = [d for d in agent_payload(run.session, server).disks if d.id == run.params["disk_id"]]
        if not disks:
            run.fail("the disk is no longer attached to the server")
        run.dispatch(str(server.host_id), WorkKind.SAVE_IMAGE,
                     SaveImagePayload(server=server_ref(server), disks=disks, image_id=run.params["image_id"]),
                     then="on_saved")

    def on_saved(self, run: Run) -> None:
        server = server_of(run)
        res = run.result_of(WorkKind.SAVE_IMAGE)
        if res.image_status != "active":
            run.fail(f"the image is {res.image_status} after the upload, not active")
        sm.apply_if(server, "saved")
        _disk_let_go(run)
        release_task(server, run)
        run.complete(image_id=res.image_id, size=res.size)

    def undo(self, run: Run, server: Server | None, reason: str) -> None:
        from core.glance.service import discard_unfinished_image

        image_id = run.params.get("image_id")
        if image_id:  # a half image is no image: gone, the reason stays on the server and the task
            discard_unfinished_image(run.session, str(image_id))
        if server is not None and sm.apply_if(server, "save_image_fail"):
            sm.set_reason(server, f"save-image failed: {reason}")
        _disk_let_go(run)


__all__ = ["ServerSaveImageTask"]
