"""EIPs associated with servers on KVM hosts (Cloudpods' ``associate-eip`` / ``dissociate-eip``).

    associate(session, cred, server, ref, ip_addr)   # the eip maps to one of the server's nics
    dissociate(session, server, auto_delete)          # back to unassociated (or released)
    host_eips(session, server_ids)                    # GuestEip list for the host's agent

The nic an EIP maps to is the ``nic_index`` of the EIP's own address row (owner ``eip``): no extra
column. Association changes bump the host's ``secgroup_version``: the agent's nftables table carries
the NAT next to the security groups (DNAT eip -> guest, SNAT of the guest's traffic leaving its own
network), so it follows the guest when it moves (the host it leaves and the one it reaches re-pull).
"""
from __future__ import annotations

import ipaddress
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.api.context import Credential
from core.errors import ConflictError, InputParameterError
from core.hostapi.protocol import GuestEip
from core.region import ipam
from core.region.models import Eip, IpAllocation, Network, Server
from core.region.secgroups import touch_hosts


def server_eip(session: Session, server_id: str) -> Eip | None:
    return session.scalar(select(Eip).where(Eip.associate_type == "server", Eip.associate_id == server_id)
                          .limit(1))


def _eip_addr(session: Session, eip: Eip) -> IpAllocation | None:
    return session.scalar(select(IpAllocation).where(IpAllocation.owner_type == "eip",
                                                     IpAllocation.owner_id == eip.id).limit(1))


def associate(session: Session, cred: Credential, server: Server, ref: Any, ip_addr: Any) -> Eip:
    from core.region.registry import get_manager

    if not isinstance(ref, str) or not ref:
        raise InputParameterError("eip_id: name the EIP to associate (id or name)")
    if server.manager_id or server.external_id:
        raise InputParameterError(f"server {server.name} is a cloud server: associate-eip here maps EIPs on "
                                  "KVM hosts only")
    eip = get_manager("eips").lookup(session, cred, ref, "eip")
    if eip.tenant_id != server.tenant_id:
        raise InputParameterError(f"eip {eip.name} belongs to another project than server {server.name}")
    if eip.associate_id == server.id:
        raise InputParameterError(f"eip {eip.name} is already associated with server {server.name}")
    if eip.associate_id:
        raise ConflictError(f"eip {eip.name} is associated with another resource: dissociate it first")
    have = server_eip(session, server.id)
    if have is not None:
        raise ConflictError(f"server {server.name} already has eip {have.name} ({have.ip_addr}): "
                            "dissociate it first")
    nics = list(session.scalars(select(IpAllocation).where(IpAllocation.owner_type == "server",
                                                           IpAllocation.owner_id == server.id)
                                .order_by(IpAllocation.nic_index)))
    if not nics:
        raise InputParameterError(f"server {server.name} has no nic with an address to map the eip to")
    nic = nics[0]
    if ip_addr not in (None, ""):
        match = [n for n in nics if n.ip_addr == ip_addr]
        if not match:
            raise InputParameterError(f"ip_addr: {ip_addr!r} is not an address of server {server.name} "
                                      f"({', '.join(n.ip_addr for n in nics)})")
        nic = match[0]
    addr = _eip_addr(session, eip)
    if addr is None or not eip.ip_addr:
        raise InputParameterError(f"eip {eip.name} has no address (a cloud eip?): it cannot be mapped here")
    addr.nic_index = nic.nic_index
    eip.associate_type, eip.associate_id = "server", server.id
    session.flush()
    touch_hosts(session, [server.host_id])
    return eip


def dissociate(session: Session, server: Server, auto_delete: bool) -> Eip | None:
    """The server's EIP no longer maps to it (``auto_delete``: the EIP is released too)."""
    eip = server_eip(session, server.id)
    if eip is None:
        return None
    eip.associate_type, eip.associate_id = "", None
    touch_hosts(session, [server.host_id])
    if auto_delete:
        ipam.release(session, "eip", eip.id)
        session.delete(eip)
    session.flush()
    return eip


def host_eips(session: Session, server_ids: list[str]) -> list[GuestEip]:
    """Every EIP mapped to a nic of these servers (with the nic's network, for the SNAT exclusion)."""
    if not server_ids:
        return []
    rows = session.execute(
        select(Eip.ip_addr, Eip.associate_id, IpAllocation.nic_index)
        .join(IpAllocation, (IpAllocation.owner_type == "eip") & (IpAllocation.owner_id == Eip.id))
        .where(Eip.associate_type == "server", Eip.associate_id.in_(server_ids)).order_by(Eip.ip_addr)).all()
    if not rows:
        return []
    nics = {(a.owner_id, a.nic_index): (a.ip_addr, net.guest_ip_start, net.guest_ip_mask)
            for a, net in session.execute(
                select(IpAllocation, Network).join(Network, Network.id == IpAllocation.network_id)
                .where(IpAllocation.owner_type == "server",
                       IpAllocation.owner_id.in_([r.associate_id for r in rows])))}
    out = []
    for eip_ip, sid, idx in rows:
        nic = nics.get((sid, idx))
        if nic is None or not eip_ip:
            continue  # the nic went (detached): nothing to map until it is re-associated
        cidr = str(ipaddress.ip_network(f"{nic[1]}/{nic[2]}", strict=False))
        out.append(GuestEip(eip=eip_ip, ip=nic[0], cidr=cidr, server_id=sid))
    return out
