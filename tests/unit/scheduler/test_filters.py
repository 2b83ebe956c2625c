"""Each filter on a small table: the pass case and every reason it can give."""
from __future__ import annotations

import pytest

from core.scheduler import GroupRecord, NetworkRecord, StorageRecord, ZoneRecord
from core.scheduler.filters import (
    ArchFilter,
    CpuFilter,
    GroupFilter,
    HostFilter,
    HypervisorFilter,
    MemoryFilter,
    NetworkFilter,
    QuotaFilter,
    SchedtagFilter,
    StatusFilter,
    StorageFilter,
    ZoneFilter,
    arch,
    capacity,
    default_filters,
    group,
    host,
    hypervisor,
    network,
    quota,
    schedtag,
    status,
    storage,
    zone,
)
from tests.unit.scheduler.helpers import GB, ctx, local_storage, reasons, request, snapshot, verdicts
from tests.unit.scheduler.helpers import host as mkhost


def test_status() -> None:
    snap = snapshot(hosts=[mkhost(0), mkhost(1, enabled=False), mkhost(2, host_status="offline")])
    v = verdicts(StatusFilter(), snap)
    assert v["h0"].ok
    assert (v["h1"].status, v["h1"].reason) == ("unfit_final", status.HOST_DISABLED)
    assert (v["h2"].status, v["h2"].reason) == ("unfit_final", status.HOST_OFFLINE)


def test_hypervisor() -> None:
    snap = snapshot(hosts=[mkhost(0), mkhost(1, host_type="esxi")])
    assert reasons(HypervisorFilter(), snap) == {"h0": "", "h1": hypervisor.WRONG_HYPERVISOR}
    assert reasons(HypervisorFilter(), snap, hypervisor="esxi") == {"h0": hypervisor.WRONG_HYPERVISOR, "h1": ""}


def test_capability() -> None:
    from core.scheduler.filters.capability import CapabilityFilter, lacks

    snap = snapshot(hosts=[mkhost(0, capabilities=frozenset({"cold_migrate", "reboot"})),
                           mkhost(1, capabilities=frozenset({"reboot"})), mkhost(2)])
    assert reasons(CapabilityFilter(), snap) == {"h0": "", "h1": "", "h2": ""}
    assert reasons(CapabilityFilter(), snap, required_capabilities=["cold_migrate"]) == {
        "h0": "", "h1": lacks("cold_migrate"), "h2": lacks("cold_migrate")}
    # a host re-registering with more capabilities is a candidate at once
    snap.upsert_host(mkhost(2, capabilities=frozenset({"cold_migrate"})))
    assert reasons(CapabilityFilter(), snap, required_capabilities=["cold_migrate"])["h2"] == ""
    with pytest.raises(ValueError, match="unknown capabilities"):
        request(required_capabilities=["teleport"])


def test_zone_and_region() -> None:
    snap = snapshot(hosts=[mkhost(0), mkhost(1, zone_id="z2"), mkhost(2, cloudregion_id="r2")])
    assert reasons(ZoneFilter(), snap) == {"h0": "", "h1": "", "h2": ""}
    assert reasons(ZoneFilter(), snap, prefer_zone="z1") == {"h0": "", "h1": zone.WRONG_ZONE, "h2": ""}
    assert reasons(ZoneFilter(), snap, prefer_region="r1")["h2"] == zone.WRONG_REGION
    # an unknown zone matches nothing, it is not ignored
    assert set(reasons(ZoneFilter(), snap, prefer_zone="nope").values()) == {zone.WRONG_ZONE}


def test_cloudprovider_preferred_and_another_projects_cloud_never_used() -> None:
    snap = snapshot(hosts=[mkhost(0), mkhost(1, manager_id="m-mine"), mkhost(2, manager_id="m-theirs")])
    assert reasons(ZoneFilter(), snap) == {"h0": "", "h1": "", "h2": ""}
    assert reasons(ZoneFilter(), snap, prefer_manager="m-mine") == {
        "h0": zone.WRONG_MANAGER, "h1": "", "h2": zone.WRONG_MANAGER}
    # this cloud's own hosts stay usable; only the listed cloudproviders' hosts are
    assert reasons(ZoneFilter(), snap, usable_managers=["m-mine", "m-unknown"]) == {
        "h0": "", "h1": "", "h2": zone.NOT_USABLE}
    assert reasons(ZoneFilter(), snap, usable_managers=[]) == {"h0": "", "h1": zone.NOT_USABLE, "h2": zone.NOT_USABLE}


def test_prefer_host_by_id_or_name() -> None:
    snap = snapshot(3)
    assert reasons(HostFilter(), snap, prefer_host="h1") == {"h0": host.NOT_REQUESTED_HOST, "h1": "",
                                                              "h2": host.NOT_REQUESTED_HOST}
    assert reasons(HostFilter(), snap, prefer_host="node2")["h2"] == ""
    assert reasons(HostFilter(), snap)["h0"] == ""


def test_exclude_hosts_by_id_or_name() -> None:
    """A migration takes its source out of the decision through the request, not the snapshot."""
    snap = snapshot(3)
    assert reasons(HostFilter(), snap, exclude_hosts=["h0", "node2"]) == {"h0": host.EXCLUDED_HOST, "h1": "",
                                                                          "h2": host.EXCLUDED_HOST}
    assert snap.enabled[snap.host_index["h0"]]  # the shared snapshot is untouched


def test_arch() -> None:
    snap = snapshot(hosts=[mkhost(0), mkhost(1, cpu_arch="arm64")])
    assert reasons(ArchFilter(), snap, os_arch="aarch64") == {"h0": arch.WRONG_ARCH, "h1": ""}
    assert reasons(ArchFilter(), snap, os_arch="amd64") == {"h0": "", "h1": arch.WRONG_ARCH}
    assert reasons(ArchFilter(), snap) == {"h0": "", "h1": ""}


def test_cpu_with_reserved_and_cmtbound() -> None:
    snap = snapshot(hosts=[
        mkhost(0, cpu_count=8, cpu_reserved=2, cpu_cmtbound=2.0, cpu_used=8),  # (8-2)*2=12 cap, 4 free
        mkhost(1, cpu_count=8, cpu_reserved=2, cpu_cmtbound=2.0, cpu_used=9),  # 3 free
        mkhost(2, cpu_count=2, cpu_reserved=0, cpu_cmtbound=1.0),  # 2 in total
    ])
    v = verdicts(CpuFilter(), snap, vcpu_count=4)
    assert v["h0"].ok
    assert (v["h1"].status, v["h1"].reason) == ("unfit", capacity.CPU_LACKS_FREE)
    assert (v["h2"].status, v["h2"].reason) == ("unfit_final", capacity.CPU_TOO_SMALL)


def test_memory_with_reserved_and_cmtbound() -> None:
    snap = snapshot(hosts=[
        mkhost(0, mem_size=8 * GB, mem_reserved=2 * GB, mem_cmtbound=1.5, mem_used=5 * GB),  # 9G cap, 4G free
        mkhost(1, mem_size=8 * GB, mem_reserved=2 * GB, mem_cmtbound=1.5, mem_used=6 * GB),
        mkhost(2, mem_size=2 * GB),
    ])
    v = verdicts(MemoryFilter(), snap, vmem_size=4 * GB)
    assert v["h0"].ok
    assert (v["h1"].status, v["h1"].reason) == ("unfit", capacity.MEM_LACKS_FREE)
    assert (v["h2"].status, v["h2"].reason) == ("unfit_final", capacity.MEM_TOO_SMALL)


def test_storage_type_medium_capacity_and_id() -> None:
    storages = [
        local_storage(0, capacity=100 * GB),
        local_storage(1, capacity=100 * GB, used=90 * GB),
        local_storage(2, medium_type="rotate"),
        local_storage(3, capacity=50 * GB, cmtbound=2.0),  # 100G usable through cmtbound
        StorageRecord(id="rbd", storage_type="rbd", capacity=1000 * GB),
    ]
    snap = snapshot(hosts=[mkhost(0), mkhost(1), mkhost(2), mkhost(3), mkhost(4, storage_ids=("rbd",))],
                    storages=storages)
    r = reasons(StorageFilter(), snap, disks=[{"size": 60 * GB, "medium": "ssd"}, {"size": 20 * GB}])
    assert r == {"h0": "", "h1": storage.STORAGE_LACKS_FREE,
                 "h2": storage.NO_MATCHING_STORAGE, "h3": "", "h4": ""}
    r = reasons(StorageFilter(), snap, disks=[{"size": 10 * GB, "backend": "rbd"}])
    assert r["h4"] == "" and r["h0"] == storage.NO_MATCHING_STORAGE
    r = reasons(StorageFilter(), snap, disks=[{"size": 10 * GB, "storage": "s3"}])
    assert r["h3"] == "" and r["h0"] == storage.NOT_ATTACHED
    v = verdicts(StorageFilter(), snap, disks=[{"size": 200 * GB}])
    assert (v["h0"].status, v["h0"].reason) == ("unfit", storage.STORAGE_LACKS_FREE)
    assert v["h4"].ok


def test_storage_disks_split_over_two_storages() -> None:
    snap = snapshot(hosts=[mkhost(0, storage_ids=("s0", "s1"))],
                    storages=[local_storage(0, capacity=60 * GB), local_storage(1, capacity=60 * GB)])
    c = ctx(snap, disks=[{"size": 50 * GB}, {"size": 50 * GB}])
    got = storage.assign_disks(c, 0)
    assert isinstance(got, list) and {d.storage_id for d in got} == {"s0", "s1"}
    assert reasons(StorageFilter(), snap, disks=[{"size": 50 * GB}, {"size": 50 * GB}, {"size": 30 * GB}]) == {
        "h0": storage.STORAGE_LACKS_FREE}


def test_network_reachable_and_free_ips() -> None:
    nets = [NetworkRecord(id="n0", wire_id="w0", free_ips=5), NetworkRecord(id="n1", wire_id="w1", free_ips=0),
            NetworkRecord(id="n2", wire_id="w2", free_ips=9, enabled=False)]
    snap = snapshot(hosts=[mkhost(0, wire_ids=("w0",)), mkhost(1, wire_ids=("w1",)), mkhost(2, wire_ids=("w2",))],
                    networks=nets)
    v = verdicts(NetworkFilter(), snap, nets=[{}])
    assert v["h0"].ok
    assert (v["h1"].status, v["h1"].reason) == ("unfit", network.NETWORK_LACKS_IPS)
    assert (v["h2"].status, v["h2"].reason) == ("unfit_final", network.NETWORK_UNREACHABLE)
    assert reasons(NetworkFilter(), snap, nets=[{"network": "n1"}])["h0"] == network.NETWORK_UNREACHABLE
    # two nics on a network with one free address do not fit
    snap2 = snapshot(hosts=[mkhost(0)], networks=[NetworkRecord(id="n0", wire_id="w0", free_ips=1)])
    assert reasons(NetworkFilter(), snap2, nets=[{"network": "n0"}, {"network": "n0"}])["h0"] == \
        network.NETWORK_LACKS_IPS
    assert reasons(NetworkFilter(), snap2)["h0"] == ""  # no nics asked: nothing to check


def test_schedtags_on_hosts_zones_storages_networks() -> None:
    storages = [local_storage(0, schedtags=frozenset({"fast"})), local_storage(1), local_storage(2)]
    nets = [NetworkRecord(id="n0", wire_id="w0", free_ips=9, schedtags=frozenset({"pub"})),
            NetworkRecord(id="n1", wire_id="w1", free_ips=9)]
    snap = snapshot(hosts=[mkhost(0, schedtags=frozenset({"gpu"}), zone_id="za"),
                           mkhost(1, zone_id="zb", wire_ids=("w1",)),
                           mkhost(2, schedtags=frozenset({"gpu", "maint"}), zone_id="za")],
                    storages=storages, networks=nets,
                    zones=[ZoneRecord(id="za", schedtags=frozenset({"dc1"})), ZoneRecord(id="zb")])
    f = SchedtagFilter()

    def tags(*items: tuple[str, str, str], **kw: object) -> dict[str, str]:
        return reasons(f, snap, schedtags=[{"id": i, "strategy": s, "resource_type": t} for i, s, t in items], **kw)

    assert tags(("gpu", "require", "hosts")) == {"h0": "", "h1": schedtag.HOST_LACKS_TAG, "h2": ""}
    assert tags(("maint", "exclude", "hosts"))["h2"] == schedtag.HOST_HAS_EXCLUDED_TAG
    assert tags(("dc1", "require", "zones"))["h1"] == schedtag.ZONE_LACKS_TAG
    assert tags(("dc1", "exclude", "zones"))["h0"] == schedtag.ZONE_HAS_EXCLUDED_TAG
    assert tags(("fast", "require", "storages"), disks=[{"size": 1}]) == {
        "h0": "", "h1": schedtag.NO_STORAGE_WITH_TAGS, "h2": schedtag.NO_STORAGE_WITH_TAGS}
    assert tags(("fast", "exclude", "storages"), disks=[{"size": 1}])["h0"] == schedtag.NO_STORAGE_WITH_TAGS
    assert tags(("pub", "require", "networks"), nets=[{}]) == {
        "h0": "", "h1": schedtag.NO_NETWORK_WITH_TAGS, "h2": ""}
    # prefer/avoid never reject
    assert set(tags(("gpu", "prefer", "hosts"), ("maint", "avoid", "hosts")).values()) == {""}


def test_instance_groups_hard_and_soft() -> None:
    groups = [GroupRecord(id="aa", policy="anti_affinity", strict=True, granularity=2),
              GroupRecord(id="af", policy="affinity", strict=True),
              GroupRecord(id="soft", policy="anti_affinity", strict=False),
              GroupRecord(id="af-empty", policy="affinity", strict=True)]
    snap = snapshot(hosts=[mkhost(0, group_counts={"aa": 2, "af": 1, "soft": 3}), mkhost(1, group_counts={"aa": 1}),
                           mkhost(2)], groups=groups)
    assert reasons(GroupFilter(), snap, groups=["aa"]) == {"h0": group.ANTI_AFFINITY_FULL, "h1": "", "h2": ""}
    assert reasons(GroupFilter(), snap, groups=["af"]) == {"h0": "", "h1": group.AFFINITY_ELSEWHERE,
                                                           "h2": group.AFFINITY_ELSEWHERE}
    assert set(reasons(GroupFilter(), snap, groups=["soft"]).values()) == {""}
    assert set(reasons(GroupFilter(), snap, groups=["af-empty"]).values()) == {""}


def test_quota_headroom() -> None:
    snap = snapshot(2)
    assert set(reasons(QuotaFilter(), snap, quota={"vcpu": 4}, vcpu_count=2).values()) == {""}
    v = verdicts(QuotaFilter(), snap, quota={"memory": 1000}, vmem_size=2048)
    assert v["h0"].status == "unfit" and v["h0"].reason == f"{quota.QUOTA_EXHAUSTED} (memory)"
    assert ctx(snap, quota={"count": 10, "vcpu": 5}, vcpu_count=2).quota_left == 2


def test_default_filters_table_is_complete_and_named() -> None:
    names = [f.name for f in default_filters()]
    assert len(names) == len(set(names)) == 13
    assert all(names)
