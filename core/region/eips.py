"""EIPs associated with servers on KVM hosts (Cloudpods' ``associate-eip`` / ``dissociate-eip``).

    associate(session, cred, server, ref, ip_addr)   # the eip maps to one of the server's nics
    dissociate(session, server, auto_delete)          # back to unassociated (or released)
    spec = plan_create_eip(session, cred, data, count)  # server-create --eip / --eip-bw, validated
    take_eip(session, spec, server)                     # API: an existing EIP is the new server's
    allocate_for_server(session, server)                # create task: a new EIP in the host's zone

One EIP per server: association locks the server row then the EIP's (one order everywhere), so two
concurrent requests cannot give a server two EIPs nor an EIP two servers.

The nic an EIP maps to is the ``nic_index`` of the EIP's own address row (owner ``eip``): no extra
column. Association changes bump the host's ``secgroup_version``: the agent's nftables table carries
the NAT next to the security groups (DNAT eip -> guest, SNAT of the guest's traffic leaving its own
network), so it follows the guest when it moves (the host it leaves and the one it reaches re-pull).
The agent's EIP list is built with its rules (core.region.secgroups.host_eips).
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.api.context import Credential
from core.errors import ConflictError, InputParameterError, InsufficientResourceError
from core.host_protocol import MAX_BW_LIMIT
from core.region import ipam, quotas
from core.region.models import Eip, Host, IpAllocation, Network, Server, Wire, Zone
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
    session.refresh(server, with_for_update=True)  # the server first, then the EIP: one order everywhere
    eip = get_manager("eips").lookup(session, cred, ref, "eip")
    session.refresh(eip, with_for_update=True)
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
    """The server's EIP no longer maps to it (``auto_delete`` or the EIP's ``auto_dellocate``: the
    EIP is released too, as Cloudpods' dissociate task does)."""
    eip = server_eip(session, server.id)
    if eip is None:
        return None
    eip.associate_type, eip.associate_id = "", None
    touch_hosts(session, [server.host_id])
    if (auto_delete or eip.auto_dellocate) and not eip.manager_id:  # a cloud's is released there (eip-delete)
        drop(session, eip)
    session.flush()
    return eip


def drop(session: Session, eip: Eip) -> None:
    """An EIP of an eip network deleted: its address and its project's eip quota given back."""
    ipam.release(session, "eip", eip.id)
    quotas.release(session, eip.tenant_id, {"eip": 1})
    session.delete(eip)


# --- server-create --eip / --eip-bw (Cloudpods' eip, eip_bw, eip_charge_type, eip_auto_dellocate) ---

CHARGE_TYPES = ("traffic", "bandwidth")


def plan_create_eip(session: Session, cred: Credential, data: Any, count: int) -> dict[str, Any] | None:
    """What a create request asks for, checked before anything is written: ``{"eip_id"}`` (an existing
    EIP, taken at once) or ``{"bw", "charge_type", "auto_dellocate", "networks"}`` (a new one per
    server, allocated in the host's zone once the server is placed). ``networks``: the eip networks
    the caller may allocate from (resolved now: the task runs without the caller's token)."""
    from core.region.registry import get_manager

    ref, bw = data.eip or None, data.eip_bw
    if not ref and not bw:
        if data.eip_charge_type or data.eip_auto_dellocate:
            raise InputParameterError("eip_charge_type/eip_auto_dellocate: they describe a new EIP: give eip_bw too")
        return None
    if ref and bw:
        raise InputParameterError("eip, eip_bw: give one: an existing EIP (eip) or a new one of eip_bw Mbps")
    if data.hypervisor != "kvm":
        raise InputParameterError(f"eip: EIPs at create are mapped on KVM hosts; a {data.hypervisor} server's "
                                  "elastic IP: eip-create --manager, then eip-associate")
    if not data.nets:
        raise InputParameterError("eip: the server has no network to map the EIP to: give --net")
    if ref:
        if count > 1:
            raise InputParameterError(f"eip: one EIP maps to one server, not to {count}: use eip_bw (a new EIP "
                                      "each) or create them one by one")
        eip = get_manager("eips").lookup(session, cred, ref, "eip")
        session.refresh(eip, with_for_update=True)  # two creates naming it: the second waits, then sees it taken
        if eip.tenant_id != cred.project_id:
            raise InputParameterError(f"eip {eip.name} belongs to another project than the server")
        if eip.manager_id or not eip.ip_addr or _eip_addr(session, eip) is None:
            raise InputParameterError(f"eip {eip.name} is a cloud's elastic IP: it cannot be mapped on a KVM host")
        if eip.associate_id:
            raise ConflictError(f"eip {eip.name} is associated with another resource: dissociate it first")
        if eip.status != "ready":
            raise InputParameterError(f"eip {eip.name} is {eip.status}, not ready")
        return {"eip_id": eip.id}
    if isinstance(bw, bool) or not 1 <= bw <= MAX_BW_LIMIT:
        raise InputParameterError(f"eip_bw: {bw!r} must be between 1 and {MAX_BW_LIMIT} Mbps")
    if data.eip_charge_type not in (None, *CHARGE_TYPES):
        raise InputParameterError(f"eip_charge_type: must be {' or '.join(CHARGE_TYPES)}")
    nets = get_manager("networks").visible(select(Network.id), cred).where(
        Network.server_type == "eip", Network.manager_id.is_(None))
    ids = list(session.scalars(nets.order_by(Network.id)))
    if not ids:
        raise InputParameterError("eip_bw: no eip network this project may use: an admin creates one "
                                  "(network-create WIRE NAME START END MASK --server-type eip)")
    return {"bw": bw, "charge_type": data.eip_charge_type or "bandwidth",
            "auto_dellocate": bool(data.eip_auto_dellocate), "networks": ids}


def take_eip(session: Session, spec: dict[str, Any] | None, server: Server) -> None:
    """An existing EIP named at create becomes the new server's (its first nic's), in the create's
    transaction: nobody else can take it meanwhile, and its host is told when the guest is built."""
    if not spec or "eip_id" not in spec:
        return
    eip = session.get(Eip, spec["eip_id"])
    addr = _eip_addr(session, eip) if eip is not None else None
    if eip is None or addr is None:
        raise InputParameterError("eip: it went while the server was being created")
    addr.nic_index = 0
    eip.associate_type, eip.associate_id = "server", server.id


def allocate_for_server(session: Session, server: Server) -> Eip | None:
    """``eip_bw`` at create: a new EIP from an eip network of the host's zone (the caller's own
    networks first, then the one with most free addresses, as Cloudpods), mapped to the first nic.
    Idempotent: a re-run of the stage finds the one it made."""
    spec = (server.create_spec or {}).get("eip") or {}
    if not spec.get("bw"):
        return None
    have = server_eip(session, server.id)
    if have is not None:
        _quota_to_eip(server)
        return have
    host = session.get(Host, server.host_id) if server.host_id else None
    zone = host.zone_id if host is not None else None
    nets = list(session.scalars(select(Network).join(Wire, Wire.id == Network.wire_id).where(
        Network.id.in_(spec.get("networks") or []), Wire.zone_id == zone)))
    if not nets:
        raise InsufficientResourceError(f"eip_bw: no eip network this project may use in zone "
                                        f"{_zone_name(session, zone)} (the one its host is in)")
    used = ipam.used_counts(session, [n.id for n in nets])
    nets.sort(key=lambda n: (n.tenant_id != server.tenant_id, used.get(n.id, 0) - (n.ip_end_int - n.ip_start_int),
                             n.id))
    eip = Eip(name=f"eip-for-srv-{server.name}"[:128], bandwidth=int(spec["bw"]), status="ready",
              charge_type=spec.get("charge_type") or "bandwidth", auto_dellocate=bool(spec.get("auto_dellocate")),
              associate_type="server", associate_id=server.id, tenant_id=server.tenant_id,
              domain_id=server.domain_id)
    session.add(eip)
    session.flush()
    for net in nets:
        try:
            a = ipam.allocate(session, net, "eip", eip.id, nic_index=0)
        except InsufficientResourceError:
            continue
        eip.network_id, eip.ip_addr = net.id, a.ip_addr
        _quota_to_eip(server)
        session.flush()
        return eip
    raise InsufficientResourceError(f"eip_bw: the eip networks of zone {_zone_name(session, zone)} have no free "
                                    f"address ({', '.join(n.name for n in nets)})")


def _quota_to_eip(server: Server) -> None:
    """The eip quota the create reserved for the server passes to the EIP made for it: from now on
    deleting the EIP gives it back (the server's delete no longer does)."""
    held = dict(server.held or {})
    q = dict(held.get("quota") or {})
    if q.pop("eip", None):
        held["quota"] = q
        server.held = held


def _zone_name(session: Session, zone_id: str | None) -> str:
    z = session.get(Zone, zone_id) if zone_id else None
    return z.name if z is not None else str(zone_id)
