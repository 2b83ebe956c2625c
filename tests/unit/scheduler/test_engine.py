"""place() and forecast(): batches, explanations, and forecast agreeing with a real placement."""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from core.scheduler import (
    GroupRecord,
    NetworkRecord,
    ScheduleInput,
    ScheduleInputError,
    Snapshot,
    forecast,
    place,
)
from core.scheduler.filters import capacity, group, network, zone
from tests.unit.scheduler.helpers import GB, host, request, snapshot


def test_batch_with_anti_affinity_on_too_few_hosts_is_a_clear_partial_result() -> None:
    snap = snapshot(3, groups=[GroupRecord(id="web", policy="anti_affinity", strict=True)])
    result = place(request(count=5, groups=["web"]), snap)
    assert len(result.placements) == 3
    assert len({p.host_id for p in result.placements}) == 3
    assert not result.ok
    text = result.explanation()
    assert text.startswith("placed 3 of 5 (of 3 hosts): ")
    assert f"3 {group.ANTI_AFFINITY_FULL}" in text
    out = result.to_candidates()["candidates"]
    assert [c["host_id"] for c in out[:3]] == [p.host_id for p in result.placements]
    assert out[3]["error"] == out[4]["error"] == text
    # the snapshot kept the claims: the group now holds one member per host
    assert snap.group_members["web"] == {0: 1, 1: 1, 2: 1}


def test_forecast_matches_what_place_then_does() -> None:
    hosts = [host(0, cpu_used=6), host(1, zone_id="z2"), host(2, mem_used=15 * GB), host(3), host(4, enabled=False)]
    snap = snapshot(hosts=hosts, networks=[NetworkRecord(id="net0", wire_id="w0", free_ips=3)])
    req = request(vcpu_count=1, vmem_size=2 * GB, count=6, prefer_zone="z1", disks=[{"size": 10 * GB}], nets=[{}])
    fc = forecast(req, snap)
    reply = fc.to_forecast()
    assert snap.live_claims() == 0  # dry run kept nothing
    real = place(req, snap)
    assert reply["allow_count"] == len(real.placements) == 3  # three free IPs
    assert reply["can_create"] is False and reply["req_count"] == 6
    assert [p.host_id for p in fc.placements] == [p.host_id for p in real.placements]
    assert [p.disks for p in fc.placements] == [p.disks for p in real.placements]
    by_filter = {e["filter_name"]: e for e in reply["filtered_candidates"]}
    assert by_filter["zone"]["count"] == 1 and by_filter["zone"]["reasons"] == [f"1 {zone.WRONG_ZONE}"]
    assert by_filter["host_status"]["count"] == 1
    assert by_filter["memory"]["reasons"] == [f"1 {capacity.MEM_LACKS_FREE}"]
    assert any(network.NETWORK_LACKS_IPS in r for r in by_filter["network"]["reasons"])
    assert real.explanation() == reply["not_allow_reasons"][0]


def test_forecast_can_create() -> None:
    snap = snapshot(4)
    reply = forecast(request(count=4), snap).to_forecast()
    assert reply == {"can_create": True, "allow_count": 4, "req_count": 4, "filtered_candidates": [],
                     "not_allow_reasons": []}


def test_no_hosts_is_explained() -> None:
    result = place(request(count=2), Snapshot())
    assert result.placements == []
    assert result.explanation() == "placed 0 of 2: there are no hosts to schedule on"


def test_every_host_filtered_names_each_reason_with_counts() -> None:
    snap = snapshot(hosts=[host(0, cpu_count=1), host(1, cpu_used=8), host(2, cpu_used=8)])
    text = place(request(vcpu_count=2), snap).explanation()
    assert text == (f"placed 0 of 1 (of 3 hosts): 2 {capacity.CPU_LACKS_FREE}; 1 {capacity.CPU_TOO_SMALL}")


def test_batch_updates_the_snapshot_as_it_goes() -> None:
    snap = snapshot(hosts=[host(0, cpu_count=4)], storages=None)
    result = place(request(vcpu_count=1, vmem_size=GB, count=6, disks=[{"size": 10 * GB}], nets=[{}]), snap)
    assert len(result.placements) == 4  # 4 vCPUs, cmtbound 1
    assert f"1 {capacity.CPU_LACKS_FREE} (after this batch used them)" in result.explanation()
    assert snap.cpu_used[0] == 4 and snap.mem_used[0] == 4 * GB
    assert snap.s_used[0] == 40 * GB and snap.n_free[0] == 96
    for p in result.placements:
        assert snap.release(p) is True
        assert snap.release(p) is False  # idempotent
    assert snap.cpu_used[0] == 0 and snap.s_used[0] == 0 and snap.n_free[0] == 100


def test_placements_carry_storage_and_network_per_disk_and_nic() -> None:
    snap = snapshot(hosts=[host(0, storage_ids=("s0", "s1"))],
                    networks=[NetworkRecord(id="a", wire_id="w0", free_ips=5),
                              NetworkRecord(id="b", wire_id="w0", free_ips=5)])
    req = request(disks=[{"size": 60 * GB, "index": 0}, {"size": 60 * GB, "index": 1}],
                  nets=[{"network": "b"}, {}])
    p = place(req, snap).placements[0]
    assert [d.index for d in p.disks] == [0, 1] and {d.storage_id for d in p.disks} == {"s0", "s1"}
    assert p.nics[0].network_id == "b" and len(p.nics) == 2
    cand = p.to_candidate()
    assert cand["host_id"] == "h0" and cand["disks"][0] == {"index": 0, "storage_id": p.disks[0].storage_id}


def test_hard_affinity_keeps_the_batch_together() -> None:
    snap = snapshot(4, groups=[GroupRecord(id="db", policy="affinity", strict=True)])
    hosts = {p.host_id for p in place(request(count=3, groups=["db"]), snap).placements}
    assert len(hosts) == 1


def test_anti_affinity_granularity() -> None:
    snap = snapshot(2, groups=[GroupRecord(id="g", policy="anti_affinity", strict=True, granularity=2)])
    result = place(request(count=5, groups=["g"]), snap)
    assert len(result.placements) == 4


def test_quota_stops_the_batch_with_a_reason() -> None:
    snap = snapshot(3)
    result = place(request(count=3, vcpu_count=2, quota={"vcpu": 4}), snap)
    assert len(result.placements) == 2
    assert "project quota allows no more instances (vcpu)" in result.explanation()


def test_unknown_instance_group_is_an_input_error() -> None:
    with pytest.raises(ScheduleInputError) as info:
        place(request(groups=["nope"]), snapshot(1))
    assert info.value.field == "instance_groups"


def test_request_validation_names_the_field() -> None:
    with pytest.raises(ValidationError) as info:
        ScheduleInput.model_validate({"vcpu_count": 0})
    assert info.value.errors()[0]["loc"] == ("vcpu_count",)
    with pytest.raises(ValidationError) as info:
        ScheduleInput.model_validate({"schedtags": [{"id": "x", "strategy": "love"}]})
    assert info.value.errors()[0]["loc"][:3] == ("schedtags", 0, "strategy")
    with pytest.raises(ValidationError):
        ScheduleInput.model_validate({"disks": [{"size": 1, "index": 0}, {"size": 1, "index": 0}]})


def test_cloudpods_aliases_are_accepted() -> None:
    req = ScheduleInput.model_validate({
        "prefer_zone_id": "z", "prefer_host_id": "h", "nets": [{"network_id": "n"}], "groups": "g",
        "disks": [{"backend": "rbd", "storage": "s", "size": 5}],
        "schedtags": [{"id": "t", "strategy": "prefer", "resource_type": "storage"}], "unknown_field": 1,
    })
    assert (req.prefer_zone, req.prefer_host, req.instance_groups) == ("z", "h", ["g"])
    assert req.networks[0].network == "n"
    assert (req.disks[0].storage_type, req.disks[0].storage_id) == ("rbd", "s")
    assert req.schedtags[0].resource_type == "storages"


def test_ignore_filters() -> None:
    snap = snapshot(hosts=[host(0, zone_id="z2")])
    assert place(request(prefer_zone="z1"), snap, dry_run=True).placements == []
    assert len(place(request(prefer_zone="z1", ignore_filters=["zone"]), snap, dry_run=True).placements) == 1


def test_a_broken_filter_reports_instead_of_raising() -> None:
    from core.scheduler.engine import SchedulerConfig
    from core.scheduler.filters import StatusFilter

    class Broken(StatusFilter):
        name = "broken"

        def evaluate(self, ctx):  # type: ignore[no-untyped-def]
            raise RuntimeError("boom")

    class Cfg(SchedulerConfig):
        def filters(self):  # type: ignore[no-untyped-def]
            return (Broken(),)

    result = place(request(), snapshot(2), Cfg())
    assert result.placements == []
    assert "2 filter failed: RuntimeError: boom" in result.explanation()
    assert result.host_rejections() == {"h0": ("broken", "filter failed: RuntimeError: boom"),
                                        "h1": ("broken", "filter failed: RuntimeError: boom")}
