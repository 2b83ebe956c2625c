"""IP address management: ranges, allocation policies, reservations, release.

Every held address is one ``ip_allocations`` row, unique per (network, address). Allocation
picks a candidate by the network's ``alloc_policy`` and INSERTs it inside a savepoint; if a
concurrent allocation won that address the unique constraint fails the INSERT and we take the
next candidate, so two allocations can never hold the same address.
"""
from __future__ import annotations

import ipaddress
import itertools
import random
import secrets
import threading
from collections.abc import Iterable, Iterator

from sqlalchemy import delete, event, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, SessionTransaction

from core.db.base import new_uuid
from core.errors import ConflictError, InputParameterError, InsufficientResourceError
from core.region.models import IpAllocation, Network

ALLOC_POLICIES = ("none", "stepdown", "stepup", "random")
MAX_RETRIES = 64

# Addresses this process's open transactions have inserted, per network: an allocation in another
# thread tries them last. Without it the task workers of one controller allocating on one network
# all pick its first free address; on PostgreSQL/MariaDB each INSERT but one waits for the winner's
# transaction to end, fails on the unique key and tries the next (bench/scale.py: ~14 of 200 creates).
_inflight: dict[str, set[int]] = {}
_inflight_lock = threading.Lock()


def ip_int(addr: str, what: str = "address") -> int:
    try:
        ip = ipaddress.IPv4Address(addr.strip())
    except (ipaddress.AddressValueError, AttributeError, ValueError):
        raise InputParameterError(f"{what}: {addr!r} is not an IPv4 address") from None
    return int(ip)


def ip_str(n: int) -> str:
    return str(ipaddress.IPv4Address(n))


def check_range(start: str, end: str, mask: int, gateway: str | None) -> tuple[int, int]:
    """Validate a network's range; return (start, end) as integers."""
    if isinstance(mask, bool) or not isinstance(mask, int) or not 1 <= mask <= 32:
        raise InputParameterError(f"guest_ip_mask: {mask!r} must be between 1 and 32")
    s, e = ip_int(start, "guest_ip_start"), ip_int(end, "guest_ip_end")
    if s > e:
        raise InputParameterError(f"guest_ip_start {start} is after guest_ip_end {end}")
    net = ipaddress.IPv4Network(f"{ip_str(s)}/{mask}", strict=False)
    if ipaddress.IPv4Address(e) not in net:
        raise InputParameterError(f"guest_ip_end {end} is outside {net} (guest_ip_start/guest_ip_mask)")
    if gateway:
        g = ip_int(gateway, "guest_gateway")
        if ipaddress.IPv4Address(g) not in net:
            raise InputParameterError(f"guest_gateway {gateway} is outside {net}")
        if s <= g <= e:
            raise InputParameterError(f"guest_gateway {gateway} is inside the guest range {start}-{end}")
    return s, e


def overlapping(session: Session, start: int, end: int, exclude_id: str | None = None) -> Network | None:
    stmt = select(Network).where(Network.ip_start_int <= end, Network.ip_end_int >= start)
    if exclude_id:
        stmt = stmt.where(Network.id != exclude_id)
    return session.scalar(stmt.limit(1))


def used_ints(session: Session, network_id: str) -> set[int]:
    return set(session.scalars(select(IpAllocation.ip_int).where(IpAllocation.network_id == network_id)))


def _candidates(net: Network, used: set[int], policy: str) -> Iterator[int]:
    lo, hi = net.ip_start_int, net.ip_end_int
    if policy == "stepdown":
        rng: Iterable[int] = range(hi, lo - 1, -1)
    elif policy == "random":
        size = hi - lo + 1
        tried: set[int] = set()
        for _ in range(min(size, 256)):
            n = lo + random.randrange(size)
            if n not in used and n not in tried:
                tried.add(n)
                yield n
        rng = range(lo, hi + 1)
    else:
        rng = range(lo, hi + 1)
    for n in rng:
        if n not in used:
            yield n


def random_mac() -> str:
    tail = secrets.token_bytes(4)
    return "00:22:" + ":".join(f"{b:02x}" for b in tail)


def allocate(session: Session, net: Network, owner_type: str, owner_id: str, *, address: str | None = None,
             mac: str = "", ifname: str = "", nic_index: int = 0, notes: str = "") -> IpAllocation:
    """Hold one address of ``net`` for the owner (an explicit ``address`` or one by policy)."""
    if address:
        n = ip_int(address, "address")
        if not net.ip_start_int <= n <= net.ip_end_int:
            raise InputParameterError(f"address {address} is outside network {net.name} "
                                      f"({net.guest_ip_start}-{net.guest_ip_end})")
        row = _insert(session, net, n, owner_type, owner_id, mac, ifname, nic_index, notes)
        if row is None:
            raise ConflictError(f"address {address} of network {net.name} is already in use")
        return row
    used = used_ints(session, net.id)
    mine = {n for nid, n in session.info.get("ipam_inflight", ()) if nid == net.id}  # already in ``used``
    with _inflight_lock:
        elsewhere = set(_inflight.get(net.id, ())) - mine
    # free addresses first, then those another open transaction of this process holds (it may roll back)
    free = (n for n in _candidates(net, used, net.alloc_policy) if n not in elsewhere)
    for tries, n in enumerate(itertools.chain(free, sorted(elsewhere - used)), 1):
        row = _insert(session, net, n, owner_type, owner_id, mac, ifname, nic_index, notes)
        if row is not None:
            with _inflight_lock:
                _inflight.setdefault(net.id, set()).add(n)
            session.info.setdefault("ipam_inflight", []).append((net.id, n))
            return row
        if tries >= MAX_RETRIES:
            break
    raise InsufficientResourceError(f"network {net.name} has no free address")


@event.listens_for(Session, "after_transaction_end")
def _allocations_ended(session: Session, transaction: SessionTransaction) -> None:
    """The transaction committed or rolled back: its addresses are no longer in flight."""
    if transaction.parent is not None or "ipam_inflight" not in session.info:
        return
    with _inflight_lock:
        for net_id, n in session.info.pop("ipam_inflight"):
            held = _inflight.get(net_id)
            if held is not None:
                held.discard(n)
                if not held:
                    del _inflight[net_id]


def _insert(session: Session, net: Network, n: int, owner_type: str, owner_id: str, mac: str, ifname: str,
            nic_index: int, notes: str) -> IpAllocation | None:
    row = IpAllocation(id=new_uuid(), network_id=net.id, ip_addr=ip_str(n), ip_int=n, owner_type=owner_type,
                       owner_id=owner_id, mac=mac, ifname=ifname, nic_index=nic_index, notes=notes)
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        return None
    return row


def release(session: Session, owner_type: str, owner_id: str, network_id: str | None = None) -> int:
    """Give back every address the owner holds (idempotent); returns how many."""
    stmt = delete(IpAllocation).where(IpAllocation.owner_type == owner_type, IpAllocation.owner_id == owner_id)
    if network_id:
        stmt = stmt.where(IpAllocation.network_id == network_id)
    return int(session.execute(stmt).rowcount or 0)  # type: ignore[attr-defined]


def used_counts(session: Session, network_ids: Iterable[str] | None = None) -> dict[str, int]:
    stmt = select(IpAllocation.network_id, func.count()).group_by(IpAllocation.network_id)
    if network_ids is not None:
        stmt = stmt.where(IpAllocation.network_id.in_(list(network_ids)))
    return {nid: int(c) for nid, c in session.execute(stmt)}


def size_of(net: Network) -> int:
    return int(net.ip_end_int - net.ip_start_int + 1)
