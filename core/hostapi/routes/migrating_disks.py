"""A migrating guest's disks: the source host uploads each one, the target host downloads it
(core/hostapi/migrations.py; staged in core/region/migration_staging.py)."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from core.api.deps import CredentialDep, SessionDep
from core.hostapi.routes.access import guard
from core.region.common import json_response

router = APIRouter(prefix="/agent")


@router.put("/hosts/{host_id}/migrations/{server_id}/disks/{disk_id}")
async def upload_migrating_disk(host_id: str, server_id: str, disk_id: str, request: Request,
                                cred: CredentialDep) -> Response:
    """The source host hands over one disk of a guest it migrates out (streamed to the staging dir)."""
    from core.hostapi import migrations

    db = request.app.state.db

    def allowed() -> None:
        with db.session() as s:
            guard(s, cred, host_id)
            migrations.may_upload(s, host_id, server_id, disk_id)

    await run_in_threadpool(allowed)
    out = await migrations.receive(request.app.state.settings.data_dir, server_id, disk_id, request.stream(),
                                   request.headers.get("x-disk-sha256", ""))
    return json_response({"disk": out})


@router.get("/hosts/{host_id}/migrations/{server_id}/disks/{disk_id}")
def download_migrating_disk(host_id: str, server_id: str, disk_id: str, request: Request, session: SessionDep,
                            cred: CredentialDep) -> Response:
    """The target host takes one staged disk of a guest it migrates in (streamed, x-disk-sha256)."""
    from core.hostapi import migrations
    from core.region.migration_staging import staged

    guard(session, cred, host_id)
    migrations.may_download(session, host_id, server_id, disk_id)
    path, sha = staged(request.app.state.settings.data_dir, server_id, disk_id)
    session.commit()  # nothing to write; do not hold a transaction while streaming
    return StreamingResponse(migrations.chunks_of(path), media_type="application/octet-stream",
                             headers={"x-disk-sha256": sha, "content-length": str(path.stat().st_size)})
