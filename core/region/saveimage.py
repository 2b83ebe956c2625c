"""``server-save-image`` / ``disk-save``: a stopped server's disk becomes a glance image.

The API creates the image (queued, in the caller's project, through glance's public function) and
a ``ServerSaveImageTask``; the host flattens the disk and streams it through the controller's
agent route into glance's intake (the same size cap, quota and qemu-img inspection as any upload).
The server is ``save_image`` meanwhile and ``ready`` again afterwards, either way.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from core.api.context import Credential
from core.errors import InputParameterError
from core.region import statemachine as sm
from core.region.models import Disk, Server
from core.tasks.engine import submit

# what a saved system disk keeps from the image it was made from: how it boots and what it is
INHERITED = ("kernel_id", "ramdisk_id", "os_command_line", "os_type", "os_distribution", "os_version", "os_arch")


def _inherited_properties(session: Session, cred: Credential, server: Server, disk: Disk) -> dict[str, str]:
    from core.errors import CloudpodsError
    from core.glance.service import get_image

    if disk.disk_index != 0:
        return {}
    props: dict[str, str] = {"os_type": server.os_type} if server.os_type else {}
    if disk.template_id:
        try:
            src = get_image(session, disk.template_id, cred)
        except CloudpodsError:  # deleted since, or not visible to the caller: nothing to inherit
            return props
        props.update({k: str(v) for k, v in src.properties.items() if k in INHERITED and v})
    return props


def save_image(session: Session, cred: Credential, server: Server, disk: Disk, body: dict[str, Any]) -> dict[str, Any]:
    from core.glance.service import create_queued_image
    from core.region.guards import guard_capability, guard_host_online

    name = body.get("name") or body.get("image_name")
    if not isinstance(name, str) or not name:
        raise InputParameterError("name: required (the new image's name)")
    if disk.server_id != server.id:
        raise InputParameterError(f"disk {disk.name} is not attached to server {server.name}")
    if server.pending_deleted:
        from core.errors import InvalidStatusError

        raise InvalidStatusError(f"server {server.name} is in the recycle bin: cancel-delete it first")
    sm.guard_busy(server)
    sm.guard_busy(disk, "disk")
    guard_host_online(session, server)
    guard_capability(session, server, "save-image")
    sm.check(server, "save-image")  # 400 naming the status: stop the server first
    props = _inherited_properties(session, cred, server, disk)
    os_type = body.get("os_type")  # Cloudpods' disk-save ID NAME OSTYPE: what the saved disk holds
    if os_type is not None:
        if not isinstance(os_type, str) or not 0 < len(os_type) <= 36:
            raise InputParameterError("os_type: a name such as Linux or Windows (at most 36 characters)")
        props["os_type"] = os_type
    img = create_queued_image(session, cred, name, properties=props)
    sm.apply(server, "save-image")
    t = submit(session, "ServerSaveImageTask", "server", server.id, server.name,
               {"image_id": img.id, "disk_id": disk.id}, cred=cred, tenant_id=server.tenant_id,
               domain_id=server.domain_id)
    server.active_task_id = disk.active_task_id = t.id
    return {"image_id": img.id, "image_name": img.name, "task_id": t.id}
