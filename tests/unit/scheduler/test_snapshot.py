"""The snapshot's incremental updates: upsert, remove, claims, growth."""
from __future__ import annotations

import pytest

from core.scheduler import GroupRecord, NetworkRecord, Placement, StorageRecord, place
from core.scheduler.placement import DiskPlacement, NicPlacement
from tests.unit.scheduler.helpers import GB, host, local_storage, request, snapshot


def claim_on(host_id: str, claim_id: str = "c1", **kw: object) -> Placement:
    base: dict[str, object] = {
        "claim_id": claim_id, "instance": 0, "host_id": host_id, "host_name": host_id, "generation": 0,
        "vcpu": 2, "vmem": GB, "disks": (DiskPlacement(0, "s0", 5 * GB),), "nics": (NicPlacement(0, "net0"),),
        "groups": ("g",),
    }
    base.update(kw)
    return Placement(**base)  # type: ignore[arg-type]


def test_apply_and_release_are_idempotent() -> None:
    snap = snapshot(1, groups=[GroupRecord(id="g")])
    p = claim_on("h0")
    snap.apply_claim(p)
    snap.apply_claim(p)
    assert (snap.cpu_used[0], snap.mem_used[0], snap.s_used[0], snap.n_free[0]) == (2, GB, 5 * GB, 99)
    assert snap.group_members["g"] == {0: 1} and snap.creating[0] == 1
    assert snap.release(p) and not snap.release(p) and not snap.release("never-applied")
    assert (snap.cpu_used[0], snap.s_used[0], snap.n_free[0], snap.creating[0]) == (0, 0, 100, 0)
    assert snap.group_members["g"] == {}


def test_upsert_host_takes_the_db_view_plus_claims_in_flight() -> None:
    snap = snapshot(2, groups=[GroupRecord(id="g")])
    snap.apply_claim(claim_on("h0"))
    snap.upsert_host(host(0, cpu_used=3, schedtags=frozenset({"gpu"}), wire_ids=("w9",)))
    # the claim may not be in the row yet: it stays counted (over-counting is the safe side)
    assert snap.cpu_used[0] == 5 and snap.live_claims() == 1 and snap.group_members["g"] == {0: 1}
    assert snap.host_tags.has("gpu", 0)
    snap.upsert_host(host(0, schedtags=frozenset()))
    assert not snap.host_tags.has("gpu", 0)
    assert snap.release(claim_on("h0")) and snap.cpu_used[0] == 0 and snap.group_members["g"] == {}
    assert snap.host_count == 2


def test_upsert_storage_and_network_keep_claims_in_flight() -> None:
    snap = snapshot(1)
    snap.apply_claim(claim_on("h0"))
    snap.upsert_storage(local_storage(0, used=GB))
    snap.upsert_network(NetworkRecord(id="net0", wire_id="w0", free_ips=50))
    assert snap.s_used[0] == 6 * GB and snap.n_free[0] == 49


def test_remove_host_gives_back_shared_usage_of_its_claims() -> None:
    snap = snapshot(1)
    snap.apply_claim(claim_on("h0"))
    snap.remove_host("h0")
    assert snap.live_claims() == 0 and snap.s_used[0] == 0 and snap.n_free[0] == 100


def test_remove_host_frees_its_slot_for_the_next_host() -> None:
    snap = snapshot(3)
    assert snap.remove_host("h1") and not snap.remove_host("h1")
    assert list(snap.present_idx()) == [0, 2]
    assert place(request(prefer_host="h1"), snap, dry_run=True).placements == []
    snap.upsert_storage(local_storage(7))
    snap.upsert_host(host(7, storage_ids=("s7",)))
    assert snap.host_index["h7"] == 1 and list(snap.present_idx()) == [0, 1, 2]
    assert place(request(prefer_host="h7"), snap, dry_run=True).placements[0].host_id == "h7"


def test_unknown_storage_on_a_host_is_a_clear_error() -> None:
    snap = snapshot(1)
    with pytest.raises(ValueError, match="host h5 refers to unknown storage nope"):
        snap.upsert_host(host(5, storage_ids=("nope",)))


def test_growth_beyond_initial_capacity() -> None:
    n = 300
    snap = snapshot(hosts=[host(i, schedtags=frozenset({"t"}) if i % 2 else frozenset(),
                                cached_images=frozenset({"img"})) for i in range(n)])
    assert snap.host_count == n and len(snap.storage_ids) == n
    assert int(snap.host_tags.mask("t", snap.size).sum()) == n // 2
    assert int(snap.host_images.mask("img", snap.size).sum()) == n  # dense once popular
    snap.upsert_host(host(5, cached_images=frozenset()))
    assert int(snap.host_images.mask("img", snap.size).sum()) == n - 1
    assert snap.nbytes() > 0


def test_storage_and_network_updates() -> None:
    snap = snapshot(1)
    snap.upsert_storage(StorageRecord(id="s0", capacity=10 * GB, used=9 * GB))
    snap.upsert_network(NetworkRecord(id="net0", wire_id="w1", free_ips=0))
    assert snap.s_cap[0] == 10 * GB and snap.n_free[0] == 0
    assert snap.wire_networks[snap.wire_codes.find("w1")] == [0]
    assert snap.wire_networks[snap.wire_codes.find("w0")] == []


def test_settle_and_refresh_usage() -> None:
    snap = snapshot(1)
    p = claim_on("h0", disks=(), nics=(), groups=())
    snap.apply_claim(p)
    snap.settle([p], {"h0": 1})  # decided at generation 0, the row is now at 1
    assert snap.generation[0] == 1 and snap.live_claims() == 0 and snap.cpu_used[0] == 2
    snap.refresh_usage("h0", 5, 3 * GB, 9)
    assert (snap.cpu_used[0], snap.mem_used[0], snap.generation[0]) == (5, 3 * GB, 9)


def test_settle_keeps_a_refreshed_generation() -> None:
    """A refresh between commit and settle came from one DB read; settle must not mix pairs."""
    snap = snapshot(1)
    p = claim_on("h0", disks=(), nics=(), groups=())
    snap.apply_claim(p)  # decided at generation 0; the DB commit takes the row to 1
    snap.refresh_usage("h0", 2, GB, 1)  # another thread read the row after that commit
    assert snap.cpu_used[0] == 2  # the row moved past the claim's generation: it is in the row, not counted twice
    snap.settle([p], {"h0": 1})
    assert snap.generation[0] == 1 and snap.cpu_used[0] == 2
    snap.refresh_usage("h0", 2, GB, 1)
    assert snap.cpu_used[0] == 2  # settled: the next read is exact again


def test_a_claim_the_row_moved_past_is_counted_once_whether_it_commits_or_conflicts() -> None:
    """Counting such a claim again made a host look fuller than it was until its next conflict: a
    create that fitted was refused (a shared snapshot's last free vCPUs were lost, 1 run in ~100)."""
    snap = snapshot(1, groups=[GroupRecord(id="g")])
    doomed = claim_on("h0", "c1", disks=(), nics=())  # decided at generation 0
    current = claim_on("h0", "c2", disks=(), nics=(), generation=1)  # decided at generation 1
    snap.apply_claim(doomed)
    snap.apply_claim(current)
    # another writer took the row to generation 1 with 3 vCPUs of its own: doomed will conflict
    snap.refresh_usage("h0", 3, 3 * GB, 1)
    assert snap.cpu_used[0] == 3 + 2  # the row, plus only the claim still decided against it
    assert snap.release(doomed)  # the conflict gives back what it holds beyond the usage already dropped
    assert snap.cpu_used[0] == 5 and snap.creating[0] == 1 and snap.group_members["g"] == {0: 1}
    assert not snap.release(doomed)  # twice is still a no-op
    snap.settle([current], {"h0": 2})
    snap.upsert_host(host(0, cpu_used=5, mem_used=4 * GB, generation=2))
    assert snap.cpu_used[0] == 5 and snap.live_claims() == 0
