"""Security groups of servers, and what each host must enforce.

    sg = default_secgroup(session, tenant_id, domain_id)  # the project's ``Default``, made on first use
    set_server_secgroups(session, server, [sg.id, ...])   # a server is in one or more groups
    join_new_servers(session, servers, [sg.id, ...])      # ... and servers being created
    spec = host_secgroups(session, host)                  # HostSecgroups for the host's agent
    host_eips(session, server_ids)                        # its EIPs' NAT (core/region/eips.py)

Every change that alters what a host enforces bumps that host's ``secgroup_version`` in the same
transaction (``touch_*``, and a flush hook for servers that arrive on, leave or are deleted from a
host): the agent's long poll sees the new version within a second and pulls the host's rules.
Rules are ordered as in Cloudpods: the larger ``priority`` first (1..100), deny before allow at
equal priority; what no rule allows is dropped.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, event, inspect, or_, select, update
from sqlalchemy.orm import Session

from core.api.context import Credential
from core.db.base import utcnow
from core.db.engine import plain_rows
from core.errors import InputParameterError
from core.host_protocol import GuestEip, GuestPort, HostSecgroups, SecRule
from core.host_wake import wake_on_commit
from core.region.models import Eip, GuestSecgroup, Host, IpAllocation, Network, Secgroup, SecgroupRule, Server

DEFAULT_NAME = "Default"
MAX_SECGROUPS = 5  # per server, as Cloudpods


def default_secgroup(session: Session, tenant_id: str, domain_id: str) -> Secgroup:
    """The project's ``Default`` group (allow all egress, ingress from the same group), made on demand."""
    row = session.get(Secgroup, default_secgroup_id(session, tenant_id, domain_id))
    assert row is not None
    return row


def default_secgroup_id(session: Session, tenant_id: str, domain_id: str) -> str:
    """The id of the project's ``Default`` group, made on demand (found by one statement built once:
    every create without ``secgroups`` asks)."""
    found = plain_rows(session, _DEFAULT_OF, {"tenant": tenant_id}).scalar()
    if found is not None:
        return str(found)
    row = Secgroup(name=DEFAULT_NAME, description="allow all egress, ingress from the same group", status="ready",
                   tenant_id=tenant_id, domain_id=domain_id or "default")
    session.add(row)
    session.flush()
    session.add_all([
        SecgroupRule(secgroup_id=row.id, direction="in", action="allow", protocol="any", priority=1,
                     peer_secgroup_id=row.id, description="ingress from the same group"),
        SecgroupRule(secgroup_id=row.id, direction="out", action="allow", protocol="any", priority=1,
                     description="all egress"),
    ])
    session.flush()
    from core.audit import record

    record(session, None, service="compute", action="create", obj_type="secgroup", obj_id=row.id,
           obj_name=row.name, success=True, notes=f"default security group of project {tenant_id}")
    return row.id


_DEFAULT_OF = (select(Secgroup.id).where(Secgroup.tenant_id == bindparam("tenant"), Secgroup.name == DEFAULT_NAME)
               .order_by(Secgroup.created_at).limit(1))


def secgroup_refs(session: Session, cred: Credential, refs: list[str], field: str) -> list[str]:
    """Security group names/ids the caller may use -> ids (at most MAX_SECGROUPS, no repeats)."""
    from core.region.registry import get_manager

    if not isinstance(refs, list) or not all(isinstance(r, str) and r for r in refs):
        raise InputParameterError(f"{field}: expected a list of security group names or ids")
    ids = list(dict.fromkeys(get_manager("secgroups").lookup(session, cred, r, "secgroup").id for r in refs))
    if len(ids) > MAX_SECGROUPS:
        raise InputParameterError(f"{field}: a server may be in at most {MAX_SECGROUPS} security groups")
    return ids


def server_secgroup_ids(session: Session, server_id: str) -> list[str]:
    return list(session.scalars(select(GuestSecgroup.secgroup_id).where(GuestSecgroup.guest_id == server_id)
                                .order_by(GuestSecgroup.created_at, GuestSecgroup.id)))


def secgroups_of(session: Session, server_ids: list[str]) -> dict[str, list[dict[str, str]]]:
    """server id -> [{id, name}] of its groups (list/show details)."""
    out: dict[str, list[dict[str, str]]] = {}
    if not server_ids:
        return out
    for gid, sid, name in plain_rows(session, _SECGROUPS_OF, {"ids": server_ids}):
        out.setdefault(gid, []).append({"id": sid, "name": name})
    return out


_SECGROUPS_OF = (select(GuestSecgroup.guest_id, Secgroup.id, Secgroup.name)
                 .join(Secgroup, Secgroup.id == GuestSecgroup.secgroup_id)
                 .where(GuestSecgroup.guest_id.in_(bindparam("ids", expanding=True)))
                 .order_by(GuestSecgroup.created_at, GuestSecgroup.id))  # built once: read on every server show


def set_server_secgroups(session: Session, server: Server, ids: list[str]) -> None:
    """The server's groups become exactly ``ids`` (in that order); its host and peers are told."""
    ids = list(dict.fromkeys(ids))
    have = {g.secgroup_id: g for g in session.scalars(select(GuestSecgroup).where(GuestSecgroup.guest_id == server.id))}
    changed = set(have) ^ set(ids)
    for sid, g in have.items():
        if sid not in ids:
            session.delete(g)
    session.flush()
    for sid, t in zip(ids, _in_order(len(ids)), strict=True):
        if sid in have:  # kept: it moves to its place in the new order
            have[sid].created_at = t
        else:
            session.add(GuestSecgroup(guest_id=server.id, secgroup_id=sid, created_at=t, updated_at=t))
    server.secgroup_id = ids[0] if ids else None
    session.flush()
    if server.host_id is None:
        return  # not placed yet: no port, no address; its deploy tells the hosts (see _servers_moved)
    # the server's own host (its rules) and the hosts of guests whose rules name these groups as peers
    touch_secgroups(session, changed, also_hosts=[server.host_id])


def _in_order(n: int) -> list[datetime]:
    """Timestamps for ``n`` memberships of one server, in the order given. A server's groups are read
    in ``created_at`` order: one microsecond apart, not whatever the clock gave rows written together
    (a tie fell back on the random ids)."""
    now = utcnow()
    return [now + timedelta(microseconds=i) for i in range(n)]


def join_new_servers(session: Session, servers: list[Server], ids: list[str]) -> None:
    """Servers being created (not placed: no host enforces anything for them yet, their deploy tells
    the hosts) join groups ``ids``, in that order: rows added, nothing read or flushed."""
    ids = list(dict.fromkeys(ids))
    at = _in_order(len(ids))
    for server in servers:
        assert server.host_id is None and server.id, "join_new_servers: for new, unplaced servers with an id"
        session.add_all([GuestSecgroup(guest_id=server.id, secgroup_id=sid, created_at=t, updated_at=t)
                         for sid, t in zip(ids, at, strict=True)])
        server.secgroup_id = ids[0] if ids else None


def drop_server(session: Session, server: Server) -> None:
    """A deleted server leaves its groups (peers' rules shrink). Its own host is locked and bumped in
    the same one id-ordered pass as the peers' hosts, so call this before anything else writes a host
    row of the delete (release_server's claim): a delete that locked its own host out of that order
    deadlocked against another on PostgreSQL (test_scale, ~1 run in 5-10 under load)."""
    rows = list(session.scalars(select(GuestSecgroup).where(GuestSecgroup.guest_id == server.id)))
    for g in rows:
        session.delete(g)
    if rows:
        session.flush()
    touch_secgroups(session, {g.secgroup_id for g in rows}, also_hosts=[server.host_id])


def touch_hosts(session: Session, host_ids: Iterable[str | None]) -> None:
    ids = sorted({h for h in host_ids if h})
    if not ids:
        return
    # Core statements on the session's connection: usable inside a flush (no autoflush). The rows are
    # locked in id order first (one order for every transaction: no deadlock between two bumps), then
    # incremented atomically.
    conn = session.connection()
    conn.execute(select(Host.id).where(Host.id.in_(ids)).order_by(Host.id).with_for_update())
    # updated_at stays: it marks changes the scheduler's snapshot re-reads (core/region/scheduling.py),
    # and a rules version is none (each deploy bumped every host of its group, so every placement
    # re-read all 70 hosts of bench/scale.py)
    conn.execute(update(Host).where(Host.id.in_(ids))
                 .values(secgroup_version=Host.secgroup_version + 1, updated_at=Host.updated_at))
    wake_on_commit(session, ids, rules=True)  # the hosts' long polls in this process (core/host_wake.py)


def touch_secgroups(session: Session, sg_ids: Iterable[str], also_hosts: Iterable[str | None] = ()) -> None:
    """Hosts of guests in these groups, or in groups whose rules name them as peer, re-pull their rules."""
    sg = set(sg_ids)
    hosts = set(also_hosts)
    if sg:
        referring = select(SecgroupRule.secgroup_id).where(SecgroupRule.peer_secgroup_id.in_(sg))
        hosts |= set(session.scalars(
            select(Server.host_id).join(GuestSecgroup, GuestSecgroup.guest_id == Server.id)
            .where(or_(GuestSecgroup.secgroup_id.in_(sg), GuestSecgroup.secgroup_id.in_(referring)),
                   Server.host_id.is_not(None)).distinct()))
    touch_hosts(session, hosts)


# a guest about to be built on a host: the host (its ports) and peers' hosts (its addresses) re-pull,
# in the transaction that queues the work item, so one long poll hands out both
_GUEST_BUILDS = ("guest-deploy", "guest-migrate-in", "guest-rebuild-root")


@event.listens_for(Session, "before_flush")
def _servers_moved(session: Session, flush_context: Any, instances: Any) -> None:
    """Servers that leave a host (moved, deleted), change their spoofing checks or go to the recycle
    bin, and guests about to be built, change what hosts enforce.

    A placement alone (host_id None -> X) does not: the guest's deploy item says it, in one commit
    with the new version (a long poll returning early with nothing would be a wasted round trip)."""
    from core.tasks.models import WorkItem

    hosts: set[str | None] = set()
    built: list[tuple[str, str]] = []  # (server id, host id)
    for obj in list(session.new) + list(session.dirty) + list(session.deleted):
        if isinstance(obj, WorkItem):
            if obj in session.new and obj.kind in _GUEST_BUILDS and isinstance(obj.payload, dict):
                sid = (obj.payload.get("server") or {}).get("id")
                if sid:
                    built.append((str(sid), obj.host_id))
            continue
        if not isinstance(obj, Server):
            continue
        if obj in session.deleted:
            hosts.add(obj.host_id)
            continue
        if obj in session.new:
            continue
        st = inspect(obj)
        for attr in ("host_id", "src_ip_check", "src_mac_check", "pending_deleted"):
            h = st.attrs[attr].history
            if not h.has_changes():
                continue
            if attr == "host_id":
                hosts.update(v for v in h.deleted if v)  # the host it left
                if any(h.deleted):
                    hosts.add(obj.host_id)
            else:
                hosts.add(obj.host_id)
    if built:
        with session.no_autoflush:
            sgs = set(session.scalars(select(GuestSecgroup.secgroup_id)
                                      .where(GuestSecgroup.guest_id.in_([b[0] for b in built]))))
            touch_secgroups(session, sgs, also_hosts=[*hosts, *(b[1] for b in built)])
    elif any(hosts):
        touch_hosts(session, hosts)


# --- what a host enforces -------------------------------------------------------------------------

def _peer_cidrs(session: Session, peer_ids: set[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {p: [] for p in peer_ids}
    if not peer_ids:
        return out
    for sgid, ip in session.execute(
            select(GuestSecgroup.secgroup_id, IpAllocation.ip_addr)
            .join(IpAllocation, (IpAllocation.owner_type == "server")
                  & (IpAllocation.owner_id == GuestSecgroup.guest_id))
            .where(GuestSecgroup.secgroup_id.in_(peer_ids)).order_by(IpAllocation.ip_int)):
        out[sgid].append(ip)
    return out


def _rule(r: SecgroupRule, peers: dict[str, list[str]]) -> SecRule:
    if r.peer_secgroup_id:
        return SecRule(direction=r.direction, action=r.action, protocol=r.protocol, ports=r.ports,
                       peer=r.peer_secgroup_id, priority=r.priority,
                       matches_nothing=not peers.get(r.peer_secgroup_id))
    cidrs = [str(ipaddress.ip_network(r.cidr, strict=False))] if r.cidr else []
    return SecRule(direction=r.direction, action=r.action, protocol=r.protocol, ports=r.ports, cidrs=cidrs,
                   priority=r.priority)


def rule_order(r: SecRule) -> tuple[int, int]:
    return (-r.priority, 0 if r.action == "deny" else 1)


def host_secgroups(session: Session, host: Host) -> HostSecgroups:
    """Every guest port of ``host`` with the effective rules of its server's groups (the agent's input)."""
    version = int(host.secgroup_version or 0)
    servers = list(session.scalars(select(Server).where(Server.host_id == host.id).order_by(Server.created_at,
                                                                                            Server.id)))
    sids = [s.id for s in servers]
    groups: dict[str, list[str]] = {}
    for gid, sgid in session.execute(select(GuestSecgroup.guest_id, GuestSecgroup.secgroup_id)
                                     .where(GuestSecgroup.guest_id.in_(sids))):
        groups.setdefault(gid, []).append(sgid)
    all_sg = {x for v in groups.values() for x in v}
    rules: dict[str, list[SecgroupRule]] = {}
    for r in session.scalars(select(SecgroupRule).where(SecgroupRule.secgroup_id.in_(all_sg))):
        rules.setdefault(r.secgroup_id, []).append(r)
    peers = _peer_cidrs(session, {r.peer_secgroup_id for v in rules.values() for r in v if r.peer_secgroup_id})
    nics: dict[str, list[IpAllocation]] = {}
    for a in session.scalars(select(IpAllocation).where(IpAllocation.owner_type == "server",
                                                        IpAllocation.owner_id.in_(sids))
                             .order_by(IpAllocation.nic_index)):
        nics.setdefault(a.owner_id, []).append(a)
    ports = []
    for s in servers:
        sg = groups.get(s.id, [])
        compiled = sorted((_rule(r, peers) for g in sg for r in rules.get(g, [])), key=rule_order)
        for a in nics.get(s.id, []):
            if not a.mac:
                continue
            ports.append(GuestPort(server_id=s.id, index=a.nic_index, mac=a.mac, ip=a.ip_addr,
                                   src_ip_check=bool(s.src_ip_check), src_mac_check=bool(s.src_mac_check),
                                   enforce=bool(sg), rules=compiled, bw_limit=int(a.bw_limit or 0)))
    used = {r.peer for p in ports for r in p.rules if r.peer and not r.matches_nothing}
    return HostSecgroups(version=version, ports=ports, peers={k: v for k, v in peers.items() if k in used},
                         eips=host_eips(session, sids))


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
