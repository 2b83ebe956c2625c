"""Images between a host and glance: the ones its guests boot from (read), and a guest's disk it saves
as an image (written through glance's intake)."""
from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from core.api.context import Credential
from core.api.deps import CredentialDep, SessionDep
from core.errors import ForbiddenError
from core.hostapi.routes.access import guard
from core.region.common import json_response
from core.region.enroll import binding_host
from core.region.models import Disk, Host, Server
from core.tasks.models import WorkItem

router = APIRouter(prefix="/agent")
# an agent's upload of a saved image: streamed into glance's intake (exempt from the gateway's body cap)
IMAGE_UPLOAD_PATH = re.compile(r"^/api/s/compute_v2/agent/hosts/[^/]+/images/[^/]+$")


def _host_images(session: Any, host: Host) -> set[str]:
    """Images the host's guests boot from (or will: migrating in), with the kernels/ramdisks those images name."""
    from core.glance.service import with_boot_files

    ids = set(session.scalars(select(Disk.template_id).join(Server, Server.id == Disk.server_id)
                              .where(Server.host_id == host.id, Disk.template_id != "")))
    # ... and those of guests migrating in, cold or live (on their source host until the move is done)
    from core.host_protocol import WorkKind

    incoming = (WorkKind.MIGRATE_IN.value, WorkKind.LIVE_MIGRATE_PREPARE.value)
    for p in session.scalars(select(WorkItem.payload).where(WorkItem.host_id == host.id,
                                                            WorkItem.kind.in_(incoming),
                                                            WorkItem.status.in_(("queued", "dispatched")))):
        ids |= {str(d["image_id"]) for d in (p or {}).get("disks") or [] if isinstance(d, dict) and d.get("image_id")}
        if (p or {}).get("cdrom_image_id"):
            ids.add(str(p["cdrom_image_id"]))
    # ISOs in its guests' CD-ROM drives (core.region.cdrom), and those going in (server-insert-iso)
    for spec in session.scalars(select(Server.create_spec).where(Server.host_id == host.id)):
        iso = (spec or {}).get("cdrom") or {}
        if iso.get("image_id"):
            ids.add(str(iso["image_id"]))
    for p in session.scalars(select(WorkItem.payload).where(WorkItem.host_id == host.id,
                                                            WorkItem.kind == WorkKind.CDROM.value,
                                                            WorkItem.status.in_(("queued", "dispatched")))):
        if (p or {}).get("image_id"):
            ids.add(str(p["image_id"]))
    return with_boot_files(session, ids)


@router.get("/hosts/{host_id}/images/{image_id}")
def image(host_id: str, image_id: str, request: Request, session: SessionDep, cred: CredentialDep) -> Response:
    from core.glance.service import open_image

    host = guard(session, cred, host_id)
    reader_cred = cred
    if binding_host(session, cred.user_id) is not None:
        if image_id not in _host_images(session, host):
            raise ForbiddenError(f"no guest of host {host.name} uses image {image_id}")
        # the agent reads a tenant's image on the region's authority, for that tenant's guest only
        reader_cred = Credential(token="", user_id=cred.user_id, user_name=cred.user_name,
                                 user_domain_id=cred.user_domain_id, user_domain_name=cred.user_domain_name,
                                 scope="system", roles=("admin", "member", "reader"))
    cm = open_image(session, image_id, reader_cred, data_dir=request.app.state.settings.data_dir)
    reader = cm.__enter__()
    info = reader.info
    session.commit()  # nothing to write; do not hold a transaction while streaming

    def chunks() -> Iterator[bytes]:
        try:
            while block := reader.read(1 << 20):
                yield block
        finally:
            cm.__exit__(None, None, None)

    headers = {"content-length": str(reader.size), "x-image-id": info.id, "x-image-name": info.name,
               "x-image-format": reader.format, "x-image-sha256": info.sha256 or "",
               "x-image-properties": json.dumps(info.properties, separators=(",", ":"))}
    if reader.format != (info.disk_format or "raw"):
        headers["x-image-sha256"] = ""  # a converted sub-format has other bytes than the upload
    return StreamingResponse(chunks(), media_type="application/octet-stream", headers=headers)


@router.put("/hosts/{host_id}/images/{image_id}")
async def upload_saved_image(host_id: str, image_id: str, request: Request, cred: CredentialDep) -> Response:
    """A host saves a guest's disk as an image: only into the image a dispatched save-image item of
    this host names, streamed through glance's own intake (size cap, quota, qemu-img inspection)."""
    from core.glance.context import glance_ctx
    from core.glance.intake import UploadRequest, content_length_of, receive
    from core.host_protocol import WorkKind

    db = request.app.state.db

    def allowed() -> None:
        with db.session() as s:
            guard(s, cred, host_id)
            for wi in s.scalars(select(WorkItem).where(WorkItem.host_id == host_id, WorkItem.status == "dispatched",
                                                       WorkItem.kind == WorkKind.SAVE_IMAGE.value)):
                if (wi.payload or {}).get("image_id") == image_id:
                    return
            raise ForbiddenError(f"host {host_id} is not saving image {image_id}")

    await run_in_threadpool(allowed)
    req = UploadRequest(image_id=image_id, declared_format="qcow2", content_length=content_length_of(request))
    img, _done = await receive(glance_ctx(request.app), request, req, cred)
    return json_response({"image": {"id": img.id, "status": img.status, "size": img.size,
                                    "disk_format": img.disk_format}})
