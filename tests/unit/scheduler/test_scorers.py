"""Each scorer on a small table, and how the engine clamps, normalises and weighs them."""
from __future__ import annotations

import numpy as np

from core.scheduler import GroupRecord, NetworkRecord, SchedulerConfig, place
from core.scheduler.scorers import (
    AllocationScorer,
    BatchSpreadScorer,
    CreatingLoadScorer,
    GroupScorer,
    ImageCacheScorer,
    SchedtagScorer,
    default_scorers,
)
from tests.unit.scheduler.helpers import GB, ctx, host, local_storage, request, snapshot


def only(name: str, allocation: str = "spread") -> SchedulerConfig:
    return SchedulerConfig(allocation=allocation, weights={name: 1.0})  # type: ignore[arg-type]


def test_allocation_spread_and_pack() -> None:
    snap = snapshot(hosts=[host(0, cpu_used=6, mem_used=12 * GB), host(1, cpu_used=1, mem_used=2 * GB)])
    c = ctx(snap, vcpu_count=1, vmem_size=GB)
    spread = AllocationScorer("spread").raw(c)
    assert spread[1] > spread[0]
    assert np.allclose(AllocationScorer("pack").raw(c), -spread)
    assert AllocationScorer("spread").raw_one(c, 1) == spread[1]
    assert place(request(), snap, only("allocation"), dry_run=True).placements[0].host_id == "h1"
    assert place(request(), snap, only("allocation", "pack"), dry_run=True).placements[0].host_id == "h0"


def test_allocation_rejects_unknown_mode() -> None:
    try:
        AllocationScorer("sideways")  # type: ignore[arg-type]
    except ValueError as exc:
        assert "spread or pack" in str(exc)
    else:
        raise AssertionError("expected ValueError")


def test_batch_spread_avoids_reusing_a_host() -> None:
    snap = snapshot(3)
    c = ctx(snap)
    c.batch_placed[1] = 2
    assert list(BatchSpreadScorer().raw(c)) == [0.0, -2.0, 0.0]
    # with only this scorer a batch of 3 on 3 identical hosts uses each host once
    hosts = [p.host_id for p in place(request(count=3), snap, only("avoid_same_host"), dry_run=True).placements]
    assert sorted(hosts) == ["h0", "h1", "h2"]
    # with no scorer at all ties go to the lowest slot every time
    hosts = [p.host_id for p in place(request(count=3), snap, SchedulerConfig(weights={}), dry_run=True).placements]
    assert hosts == ["h0", "h0", "h0"]


def test_schedtag_prefer_and_avoid() -> None:
    snap = snapshot(hosts=[host(0, schedtags=frozenset({"slow"})), host(1), host(2, schedtags=frozenset({"fast"}))])
    c = ctx(snap, schedtags=[{"id": "fast", "strategy": "prefer"}, {"id": "slow", "strategy": "avoid"}])
    assert list(SchedtagScorer().raw(c)) == [-1.0, 0.0, 1.0]
    assert place(c.req, snap, only("schedtag"), dry_run=True).placements[0].host_id == "h2"


def test_schedtag_prefer_on_storages_picks_host_and_storage() -> None:
    storages = [local_storage(0), local_storage(1), local_storage(2, schedtags=frozenset({"nvme"}))]
    snap = snapshot(hosts=[host(0), host(1, storage_ids=("s1", "s2"))], storages=storages)
    req = request(disks=[{"size": GB}], schedtags=[{"id": "nvme", "strategy": "prefer", "resource_type": "storages"}])
    assert list(SchedtagScorer().raw(ctx(snap, **req.model_dump()))) == [0.0, 1.0]
    p = place(req, snap, only("schedtag"), dry_run=True).placements[0]
    assert (p.host_id, p.disks[0].storage_id) == ("h1", "s2")


def test_schedtag_avoid_on_networks() -> None:
    nets = [NetworkRecord(id="pub", wire_id="w0", free_ips=9, schedtags=frozenset({"public"})),
            NetworkRecord(id="priv", wire_id="w1", free_ips=9)]
    snap = snapshot(hosts=[host(0, wire_ids=("w0",)), host(1, wire_ids=("w1",))], networks=nets)
    req = request(nets=[{}], schedtags=[{"id": "public", "strategy": "avoid", "resource_type": "networks"}])
    p = place(req, snap, only("schedtag"), dry_run=True).placements[0]
    assert (p.host_id, p.nics[0].network_id) == ("h1", "priv")


def test_image_cache() -> None:
    snap = snapshot(hosts=[host(0), host(1, cached_images=frozenset({"img"})),
                           host(2, cached_images=frozenset({"img", "img2"}))])
    c = ctx(snap, disks=[{"size": GB, "image_id": "img"}, {"size": GB, "image_id": "img2"}])
    assert list(ImageCacheScorer().raw(c)) == [0.0, 0.5, 1.0]
    assert place(c.req, snap, only("image_cache"), dry_run=True).placements[0].host_id == "h2"
    assert list(ImageCacheScorer().raw(ctx(snap))) == [0.0, 0.0, 0.0]


def test_creating_load_counts_the_batch_too() -> None:
    snap = snapshot(hosts=[host(0, creating=3), host(1, creating=1)])
    c = ctx(snap)
    assert list(CreatingLoadScorer().raw(c)) == [-3.0, -1.0]
    hosts = [p.host_id for p in place(request(count=3), snap, only("creating_load"), dry_run=True).placements]
    # h1 takes the first two (load 1 -> 2 -> 3), then the tie at load 3 goes to the lower slot
    assert hosts == ["h1", "h1", "h0"]
    assert list(snap.creating[:2]) == [3, 1]  # dry run gave it all back


def test_group_soft_affinity_and_anti_affinity() -> None:
    groups = [GroupRecord(id="sa", policy="affinity", strict=False),
              GroupRecord(id="saa", policy="anti_affinity", strict=False)]
    snap = snapshot(hosts=[host(0, group_counts={"sa": 2, "saa": 2}), host(1)], groups=groups)
    assert list(GroupScorer().raw(ctx(snap, groups=["sa"]))) == [2.0, 0.0]
    assert list(GroupScorer().raw(ctx(snap, groups=["saa"]))) == [-2.0, 0.0]
    assert place(request(groups=["sa"]), snap, only("instance_group"), dry_run=True).placements[0].host_id == "h0"
    assert place(request(groups=["saa"]), snap, only("instance_group"), dry_run=True).placements[0].host_id == "h1"


def test_weights_decide_between_scorers() -> None:
    # h0 is emptier, h1 carries the preferred tag: the heavier weight wins
    snap = snapshot(hosts=[host(0), host(1, cpu_used=4, schedtags=frozenset({"fast"}))])
    req = request(schedtags=[{"id": "fast", "strategy": "prefer"}])
    cfg = SchedulerConfig(weights={"allocation": 1.0, "schedtag": 3.0})
    assert place(req, snap, cfg, dry_run=True).placements[0].host_id == "h1"
    cfg = SchedulerConfig(weights={"allocation": 5.0, "schedtag": 3.0})
    assert place(req, snap, cfg, dry_run=True).placements[0].host_id == "h0"


def test_raw_values_are_clamped() -> None:
    # image_cache declares 0..1; normalisation across candidates keeps scores within the weight
    snap = snapshot(hosts=[host(0), host(1, cached_images=frozenset({"i"}))])
    c = ctx(snap, disks=[{"size": 1, "image_id": "i"}])
    raw = ImageCacheScorer().raw(c)
    assert raw.min() >= ImageCacheScorer.minval and raw.max() <= ImageCacheScorer.maxval


def test_default_scorers_table() -> None:
    names = [s.name for s in default_scorers()]
    assert len(names) == len(set(names)) == 6
