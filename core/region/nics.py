"""``server-attach-network`` / ``server-detach-network``: a NIC more or less on a server.

The API allocates the address (IPAM's unique constraint: an address is never held twice) and the
``ips`` quota when it accepts an attach, so a taken address is a 409 before any task; the host then
plugs the NIC (hot when the guest runs and the host declares attach_nic_hot). A detach releases the
address only once the host has taken the NIC out. A failed attach gives the address back.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.api.context import Credential
from core.errors import InputParameterError
from core.region import ipam, quotas
from core.region.models import IpAllocation, Server
from core.region.sizes import MAX_NICS


def _nics(session: Session, server: Server) -> list[IpAllocation]:
    return list(session.scalars(select(IpAllocation).where(IpAllocation.owner_type == "server",
                                                           IpAllocation.owner_id == server.id)
                                .order_by(IpAllocation.nic_index)))


def attach_network(m: Any, session: Session, cred: Credential, server: Server, body: dict[str, Any]) -> None:
    from core.region.registry import get_manager

    ref = body.get("network") or body.get("network_id") or body.get("net_desc")
    if not isinstance(ref, str) or not ref:
        raise InputParameterError("network: required (NETWORK or NETWORK:ADDRESS)")
    ref, _, addr = ref.partition(":")
    addr = str(body.get("address") or addr or "")
    net = get_manager("networks").lookup(session, cred, ref, "network")
    if net.server_type != "guest":
        raise InputParameterError(f"network {net.name} is for {net.server_type}, not guests")
    used = {a.nic_index for a in _nics(session, server)}
    index = next(i for i in range(64) if i not in used)
    if index >= MAX_NICS:
        raise InputParameterError(f"server {server.name} has {len(used)} NICs already (at most {MAX_NICS})")
    # one transaction: a refusal below (busy, wrong status, capability, quota, address taken) undoes it all
    quotas.reserve(session, server.tenant_id, server.domain_id, ips=1)
    a = ipam.allocate(session, net, "server", server.id, address=addr or None, mac=ipam.random_mac(),
                      ifname=f"eth{index}", nic_index=index)
    server.held = {**server.held, "quota": {**(server.held.get("quota") or {}),
                                            "ips": int((server.held.get("quota") or {}).get("ips", 0)) + 1}}
    m._task(session, cred, server, "attachnetwork", "ServerAttachNetworkTask", {"allocation_id": a.id})


def detach_network(m: Any, session: Session, cred: Credential, server: Server, body: dict[str, Any]) -> None:
    from core.region.registry import get_manager

    nics = _nics(session, server)
    ip, mac, net_ref = body.get("ip_addr"), body.get("mac"), body.get("network") or body.get("net_id")
    if not (ip or mac or net_ref):
        raise InputParameterError("give ip_addr, mac or network: which NIC to detach")
    net_id = get_manager("networks").lookup(session, cred, str(net_ref), "network").id if net_ref else None
    hits = [a for a in nics if (not ip or a.ip_addr == ip) and (not mac or a.mac.lower() == str(mac).lower())
            and (not net_id or a.network_id == net_id)]
    if not hits:
        raise InputParameterError(f"server {server.name} has no such NIC")
    if len(hits) > 1:
        raise InputParameterError(f"server {server.name} has {len(hits)} NICs on that network: give ip_addr or mac")
    m._task(session, cred, server, "detachnetwork", "ServerDetachNetworkTask", {"allocation_id": hits[0].id})
