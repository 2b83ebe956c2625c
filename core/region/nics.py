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
from core.region.models import HostWire, IpAllocation, Server
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


def _nic_of(server: Server, nics: list[IpAllocation], body: dict[str, Any]) -> IpAllocation:
    """The NIC ``body`` names by exactly one of mac, ip_addr or index (Cloudpods' MAC-or-IP argument)."""
    keys = [k for k in ("mac", "ip_addr", "index") if body.get(k) not in (None, "")]
    if len(keys) != 1:
        raise InputParameterError("name the NIC by exactly one of mac, ip_addr or index")
    want = body[keys[0]]
    for a in nics:
        if keys[0] == "mac" and isinstance(want, str) and a.mac.lower() == want.lower() or \
                keys[0] == "ip_addr" and a.ip_addr == want or \
                keys[0] == "index" and str(a.nic_index) == str(want):
            return a
    raise InputParameterError(f"server {server.name} has no NIC with {keys[0]} {want!r}")


def change_ipaddr(session: Session, cred: Credential, server: Server, body: dict[str, Any]) -> None:
    """``server-change-ipaddr SERVER MAC|IP|INDEX NETWORK[:ADDRESS] [--reserve]`` (Cloudpods' change-ipaddr):
    the NIC of a ready or running server gets another address, of its own network or of another guest
    network (the given one, else one by the network's policy); it keeps its MAC and device. The new
    address is held at once (taken or reserved: 409), the old one given back (or reserved, ``reserve``)
    once the host re-leased it. A running guest moved to another network is moved to that network's
    bridge live (a host that cannot change a running guest's devices: 400, stop it first); its guest
    OS takes the new address when its DHCP client next asks (renewal or reboot), as in Cloudpods."""
    from core.errors import InvalidStatusError
    from core.region import statemachine as sm
    from core.region.guards import guard_capability, guard_host_online
    from core.region.models import Network
    from core.region.registry import get_manager
    from core.tasks.engine import submit

    unknown = sorted(set(body) - {"mac", "ip_addr", "index", "net_desc", "reserve"})
    if unknown:
        raise InputParameterError(f"change-ipaddr: unknown parameter(s) {', '.join(unknown)}")
    nic = _nic_of(server, _nics(session, server), body)
    desc = body.get("net_desc")
    if isinstance(desc, list) and len(desc) == 1:
        desc = desc[0]
    if isinstance(desc, str):
        head, _, tail = desc.partition(":")
        desc = {"network": head, "address": tail}
    if not isinstance(desc, dict) or not (desc.get("network") or desc.get("network_id") or desc.get("address")):
        raise InputParameterError("net_desc: required (NETWORK[:ADDRESS])")
    ref = desc.get("network") or desc.get("network_id")
    addr = desc.get("address") or desc.get("ip_addr") or None
    if addr is not None and not isinstance(addr, str) or ref is not None and not isinstance(ref, str):
        raise InputParameterError("net_desc: network and address are strings")
    net = session.get(Network, nic.network_id)
    assert net is not None
    if ref:
        net = get_manager("networks").lookup(session, cred, ref, "network")
        if net.server_type != "guest":
            raise InputParameterError(f"network {net.name} is for {net.server_type}, not guests")
    moves = net.id != nic.network_id
    if addr and addr == nic.ip_addr and not moves:
        raise InputParameterError(f"the NIC already has address {addr}")
    reserve = body.get("reserve", False)
    if not isinstance(reserve, bool):
        raise InputParameterError("reserve: true or false")
    if server.pending_deleted:
        raise InvalidStatusError(f"server {server.name} is in the recycle bin: cancel-delete it first")
    sm.guard_busy(server)
    if server.status not in ("ready", "running"):
        raise InvalidStatusError(f"cannot change-ipaddr of server {server.name} in status {server.status} "
                                 "(allowed: ready, running)")
    guard_host_online(session, server)
    guard_capability(session, server, "change-ipaddr")
    if moves:
        if session.scalar(select(HostWire.wire_id).where(HostWire.host_id == server.host_id,
                                                         HostWire.wire_id == net.wire_id)) is None:
            raise InputParameterError(f"network {net.name} is on a wire the server's host is not on: "
                                      "give a network of one of the host's wires (host-show)")
        # onto another bridge: for a running guest that is a device change, as a NIC hot-plug is
        guard_capability(session, server, "attachnetwork")
    # held at once under the unique (network, address) constraint: taken or reserved is a 409 here
    held = ipam.allocate(session, net, "changing", server.id, address=addr, notes=f"change-ipaddr of nic {nic.id}")
    t = submit(session, "ServerChangeIpaddrTask", "server", server.id, server.name,
               {"allocation_id": nic.id, "new_id": held.id, "reserve": reserve}, cred=cred,
               tenant_id=server.tenant_id, domain_id=server.domain_id)
    server.active_task_id = t.id
