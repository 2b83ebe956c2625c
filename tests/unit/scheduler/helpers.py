"""Small tables for scheduler tests: a few hosts whose every field is explicit."""
from __future__ import annotations

from typing import Any

from core.scheduler import (
    GroupRecord,
    HostRecord,
    NetworkRecord,
    ScheduleInput,
    Snapshot,
    StorageRecord,
    ZoneRecord,
)
from core.scheduler.context import RequestContext, build_context
from core.scheduler.filters.base import Filter
from core.scheduler.verdict import Verdict

GB = 1024


def host(i: int, **kw: Any) -> HostRecord:
    """A roomy, enabled KVM host ``h<i>`` with local storage ``s<i>`` on wire ``w0``."""
    base: dict[str, Any] = {
        "id": f"h{i}", "name": f"node{i}", "zone_id": "z1", "cloudregion_id": "r1", "cpu_count": 8,
        "cpu_cmtbound": 1.0, "mem_size": 16 * GB, "mem_cmtbound": 1.0, "storage_ids": (f"s{i}",),
        "wire_ids": ("w0",),
    }
    base.update(kw)
    return HostRecord(**base)


def local_storage(i: int, **kw: Any) -> StorageRecord:
    base: dict[str, Any] = {"id": f"s{i}", "storage_type": "local", "medium_type": "ssd", "capacity": 100 * GB}
    base.update(kw)
    return StorageRecord(**base)


def snapshot(n: int = 3, hosts: list[HostRecord] | None = None, storages: list[StorageRecord] | None = None,
             networks: list[NetworkRecord] | None = None, zones: list[ZoneRecord] | None = None,
             groups: list[GroupRecord] | None = None) -> Snapshot:
    hosts = hosts if hosts is not None else [host(i) for i in range(n)]
    if storages is None:
        storages = [local_storage(i) for i in range(max(n, len(hosts)))]
    if networks is None:
        networks = [NetworkRecord(id="net0", wire_id="w0", free_ips=100)]
    return Snapshot(hosts=hosts, storages=storages, networks=networks, zones=zones or [], groups=groups or [])


def request(**kw: Any) -> ScheduleInput:
    return ScheduleInput.model_validate(kw)


def ctx(snap: Snapshot, **kw: Any) -> RequestContext:
    return build_context(request(**kw), snap)


def verdicts(f: Filter, snap: Snapshot, **kw: Any) -> dict[str, Verdict]:
    """Per host id, the filter's verdict; also asserts the vector pass and ``check`` agree."""
    c = ctx(snap, **kw)
    vector: dict[str, Verdict] = {}
    rejections = f.evaluate(c)
    for hid, slot in snap.host_index.items():
        v = Verdict("ok")
        for r in rejections:
            if r.mask[slot]:
                v = Verdict.unfit(r.reason, r.final)
                break
        vector[hid] = v
        assert f.check(c, slot) == v, f"{f.name}: check() and evaluate() disagree on {hid}"
    return vector


def reasons(f: Filter, snap: Snapshot, **kw: Any) -> dict[str, str]:
    return {h: v.reason for h, v in verdicts(f, snap, **kw).items()}
