"""Routes for host agents under ``/api/s/compute_v2/agent`` (mounted by core/api/app.py's SERVICE_ROUTERS).

    POST /agent/join                          {token, host_name, access_mac}  (no auth: the token is it)
    POST /agent/hosts/<id>/register           host facts, storages, wires → the host
    POST /agent/hosts/<id>/ping               {usage} → {host_status, enabled}
    POST /agent/hosts/<id>/guests             {guests: [{id, status, reason?}], full} → servers whose status moved
    GET  /agent/hosts/<id>/guests-expected    the servers the region places on the host, last recorded status
    GET  /agent/hosts/<id>/work-items?wait=N&secgroup_version=V  long-poll: queued items, marked
                                              dispatched (≤ N s, ≤ limit), console sessions to open
                                              ({"consoles": [...]}) and the host's secgroup_version
                                              (returns early when it is not V: rules changed)
    POST /agent/hosts/<id>/work-items/ack     {ids} the items the poll's reply brought (core.host_protocol.WorkAck);
                                              unacknowledged ones are handed out again after work_item_ack_s
    GET  /agent/hosts/<id>/secgroups          every guest port of the host with its effective rules
    WS   /agent/hosts/<id>/consoles/<sid>     the agent's outbound side of a console session (core/console)
    POST /agent/tasks/<task_id>               a work item's report {work_item_id, ...result} or an ErrorResult
    GET  /agent/hosts/<id>/images/<image_id>  an image one of the host's guests boots from (streamed)
    PUT  /agent/hosts/<id>/migrations/<server_id>/disks/<disk_id>  a migrating guest's disk, from its source
    GET  /agent/hosts/<id>/migrations/<server_id>/disks/<disk_id>  the same, to its target (core/hostapi/migrations.py)

An agent's service user (core.region.enroll) may call these for its own host only (403 else);
a cloud admin may call them for any host (the tests' agent, tools). These are the ONLY routes
an agent uses: the real agent, hollow agents and the tests' agent all speak exactly this.

One module per job: access (who may act as a host's agent), hosts, guests, work (the queue),
secgroups, consoles, images, migrating_disks; each declares its routes under /agent itself (an
inclusion adds nothing, core/api/routing flattens them).
"""
from __future__ import annotations

from fastapi import APIRouter

from core.hostapi.routes import consoles, guests, hosts, images, migrating_disks, secgroups, work

router = APIRouter()
for _part in (hosts, guests, work, consoles, secgroups, images, migrating_disks):
    router.include_router(_part.router)
