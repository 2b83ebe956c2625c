"""IPAM: range checks, policies, reservations, and no double allocation under concurrency."""
from __future__ import annotations

import threading

import pytest

from core.db.engine import Database
from core.errors import ConflictError, InputParameterError, InsufficientResourceError
from core.region import ipam
from core.region.common import begin_write
from core.region.models import IpAllocation, Network, Wire, Zone


def make_net(db: Database, start: str = "10.1.0.10", end: str = "10.1.0.200", policy: str = "none") -> str:
    with db.session() as s:
        z = Zone(name="z", cloudregion_id="default")
        s.add(z)
        s.flush()
        w = Wire(name="w", zone_id=z.id, vpc_id="default")
        s.add(w)
        s.flush()
        a, b = ipam.check_range(start, end, 24, "10.1.0.1")
        n = Network(name="n", wire_id=w.id, guest_ip_start=start, guest_ip_end=end, guest_ip_mask=24,
                    guest_gateway="10.1.0.1", alloc_policy=policy, ip_start_int=a, ip_end_int=b)
        s.add(n)
        s.flush()
        return n.id


@pytest.mark.parametrize(("start", "end", "mask", "gw", "msg"), [
    ("10.0.0.2", "10.0.0.9", 0, None, "guest_ip_mask"),
    ("10.0.0.2", "10.0.0.9", 33, None, "guest_ip_mask"),
    ("10.0.0.9", "10.0.0.2", 24, None, "after"),
    ("10.0.0.2", "10.0.1.9", 24, None, "outside"),
    ("10.0.0.2", "10.0.0.9", 24, "10.0.5.1", "guest_gateway"),
    ("10.0.0.2", "10.0.0.9", 24, "10.0.0.5", "inside the guest range"),
    ("10.0.0.300", "10.0.0.9", 24, None, "not an IPv4"),
    ("../x", "10.0.0.9", 24, None, "not an IPv4"),
])
def test_bad_ranges_are_400(start: str, end: str, mask: int, gw: str | None, msg: str) -> None:
    with pytest.raises(InputParameterError, match=msg):
        ipam.check_range(start, end, mask, gw)


@pytest.mark.parametrize(("policy", "first"), [("none", "10.1.0.10"), ("stepup", "10.1.0.10"),
                                               ("stepdown", "10.1.0.200")])
def test_policies(db: Database, policy: str, first: str) -> None:
    nid = make_net(db, policy=policy)
    with db.session() as s:
        net = s.get(Network, nid)
        assert net is not None
        got = [ipam.allocate(s, net, "server", f"s{i}").ip_addr for i in range(3)]
    assert got[0] == first
    assert len(set(got)) == 3


def test_random_policy_stays_in_range(db: Database) -> None:
    nid = make_net(db, policy="random")
    with db.session() as s:
        net = s.get(Network, nid)
        assert net is not None
        ints = [ipam.allocate(s, net, "server", f"s{i}").ip_int for i in range(20)]
    assert len(set(ints)) == 20
    assert all(net.ip_start_int <= n <= net.ip_end_int for n in ints)


def test_explicit_reserved_and_release(db: Database) -> None:
    nid = make_net(db, "10.1.0.10", "10.1.0.12")
    with db.session() as s:
        net = s.get(Network, nid)
        assert net is not None
        ipam.allocate(s, net, "reserved", "", address="10.1.0.10")
        with pytest.raises(ConflictError):
            ipam.allocate(s, net, "server", "x", address="10.1.0.10")
        with pytest.raises(InputParameterError, match="outside"):
            ipam.allocate(s, net, "server", "x", address="10.1.0.99")
        assert ipam.allocate(s, net, "server", "a").ip_addr == "10.1.0.11"  # skips the reserved one
        assert ipam.allocate(s, net, "server", "b").ip_addr == "10.1.0.12"
        with pytest.raises(InsufficientResourceError):
            ipam.allocate(s, net, "server", "c")
        assert ipam.release(s, "server", "a") == 1
        assert ipam.release(s, "server", "a") == 0  # idempotent
        assert ipam.allocate(s, net, "server", "c").ip_addr == "10.1.0.11"


def test_stale_candidates_retry_on_the_unique_constraint(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """If the used-set is stale (another writer won), the INSERT fails and the next address is taken."""
    nid = make_net(db, "10.1.0.10", "10.1.0.20")
    with db.session() as s:
        net = s.get(Network, nid)
        assert net is not None
        ipam.allocate(s, net, "server", "first")
        monkeypatch.setattr(ipam, "used_ints", lambda session, network_id: set())
        assert ipam.allocate(s, net, "server", "second").ip_addr == "10.1.0.11"


def test_concurrent_allocations_never_share_an_address(db: Database) -> None:
    nid = make_net(db, "10.1.0.10", "10.1.0.250")
    got: list[str] = []
    errors: list[BaseException] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def worker(k: int) -> None:
        try:
            barrier.wait()
            for i in range(10):
                with db.session() as s:
                    begin_write(s)
                    net = s.get(Network, nid)
                    assert net is not None
                    a = ipam.allocate(s, net, "server", f"t{k}-{i}")
                    with lock:
                        got.append(a.ip_addr)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(got) == 80 and len(set(got)) == 80
    with db.session() as s:
        assert s.query(IpAllocation).filter_by(network_id=nid).count() == 80


def test_an_address_another_open_transaction_inserted_is_tried_last(db: Database,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Two task workers of one controller allocating on one network: the second does not pick the
    address the first inserted and has not committed (on PostgreSQL/MariaDB its INSERT would wait for
    that transaction and then fail on the unique key); once the first ends, the address is free game."""
    nid = make_net(db, "10.1.0.10", "10.1.0.20")
    tried: list[str] = []
    real_insert = ipam._insert

    def recording(session: object, net: Network, n: int, *a: object) -> object:
        tried.append(ipam.ip_str(n))
        return real_insert(session, net, n, *a)  # type: ignore[arg-type]

    with db.session() as first:
        net = first.get(Network, nid)
        assert net is not None
        assert ipam.allocate(first, net, "server", "first").ip_addr == "10.1.0.10"  # not committed yet
        monkeypatch.setattr(ipam, "_insert", lambda *a: tried.append(ipam.ip_str(a[2])) or "sentinel")
        with db.session() as second:  # SQLite would make it wait for the first's write lock: record only
            net2 = second.get(Network, nid)
            assert net2 is not None
            assert ipam.allocate(second, net2, "server", "second") == "sentinel"
            second.rollback()
        assert tried == ["10.1.0.11"]
        monkeypatch.setattr(ipam, "_insert", recording)
    tried.clear()
    with db.session() as third:  # the first committed: nothing in flight
        net3 = third.get(Network, nid)
        assert net3 is not None
        ipam.release(third, "server", "first")
        third.flush()
        assert ipam.allocate(third, net3, "server", "third").ip_addr == "10.1.0.10"
    assert tried == ["10.1.0.10"] and ipam._inflight == {}
