"""Scheduler benchmark: prints figures, asserts nothing.

    .venv/bin/python bench/scheduler.py [--hosts 10000] [--count 1000] [--seed 1]

1. Headline: 10,000 hosts with a realistic spread of capacity, storages, wires, schedtags,
   instance groups and cached images; one batch of 1,000 instances with cpu/mem/disk/network/
   schedtag/anti-affinity constraints; placements/s INCLUDING the generation-guarded claim
   written to a SQLite file DB (one transaction) through ``core.scheduler.claims``.
2. Single-decision latency p50/p99 (count=1, dry run) at 1k / 10k / 50k hosts.
3. Snapshot memory at 50k hosts (tracemalloc peak while building, and ``Snapshot.nbytes``).
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import Column, Float, Integer, MetaData, String, Table, create_engine, insert

from core.scheduler import (
    GroupRecord,
    HostRecord,
    NetworkRecord,
    ScheduleInput,
    Snapshot,
    StorageRecord,
    ZoneRecord,
    place,
)
from core.scheduler.claims import claim, place_and_claim

GB = 1024


def build_records(n_hosts: int, seed: int) -> dict[str, list]:  # type: ignore[type-arg]
    """A plausible fleet: 5 zones, local + shared storages, 2-4 wires per rack, tags, groups."""
    rnd = random.Random(seed)
    zones = [ZoneRecord(id=f"zone{z}", schedtags=frozenset({"dc-a"} if z < 3 else {"dc-b"})) for z in range(5)]
    racks = max(1, n_hosts // 40)
    wires = [f"wire{r}" for r in range(racks)]
    networks = []
    for r, w in enumerate(wires):
        for k in range(2):
            networks.append(NetworkRecord(
                id=f"net{r}-{k}", wire_id=w, free_ips=rnd.randint(20, 250),
                schedtags=frozenset({"public"}) if k == 1 else frozenset()))
    storages: list[StorageRecord] = []
    shared = []
    for i in range(max(1, n_hosts // 500)):
        sid = f"rbd{i}"
        shared.append(sid)
        storages.append(StorageRecord(id=sid, storage_type="rbd", medium_type="ssd", capacity=500_000 * GB,
                                      cmtbound=1.0, used=rnd.randint(0, 300_000) * GB))
    groups = [GroupRecord(id=f"grp{g}", policy="anti_affinity", strict=g % 2 == 0, granularity=1)
              for g in range(200)]
    groups.append(GroupRecord(id="bench-aa", policy="anti_affinity", strict=True, granularity=1))
    hosts = []
    for i in range(n_hosts):
        cpu = rnd.choice((16, 32, 48, 64, 96))
        mem = rnd.choice((64, 128, 256, 512)) * GB
        local = []
        for d in range(rnd.choice((1, 1, 2))):
            sid = f"local{i}-{d}"
            cap = rnd.choice((960, 1920, 3840, 7680)) * GB
            storages.append(StorageRecord(id=sid, storage_type="local", medium_type=rnd.choice(("ssd", "rotate")),
                                          capacity=cap, used=int(cap * rnd.uniform(0, 0.8))))
            local.append(sid)
        if rnd.random() < 0.5:
            local.append(shared[(i // 500) % len(shared)])
        rack = i // 40
        tags = set()
        if rnd.random() < 0.05:
            tags.add("gpu")
        if rnd.random() < 0.3:
            tags.add("fast")
        if rnd.random() < 0.02:
            tags.add("maintenance")
        gcounts = {f"grp{rnd.randrange(200)}": 1 for _ in range(rnd.randint(0, 3))}
        hosts.append(HostRecord(
            id=f"host-{i:06d}", name=f"node{i}", zone_id=f"zone{rnd.randrange(5)}", cloudregion_id="region0",
            host_type="esxi" if rnd.random() < 0.02 else "hypervisor",
            enabled=rnd.random() > 0.03, host_status="online" if rnd.random() > 0.02 else "offline",
            cpu_arch="aarch64" if rnd.random() < 0.1 else "x86_64",
            cpu_count=cpu, cpu_reserved=2, cpu_cmtbound=rnd.choice((4.0, 8.0)),
            cpu_used=rnd.randint(0, cpu * 4), mem_size=mem, mem_reserved=4 * GB, mem_cmtbound=1.0,
            mem_used=int(mem * rnd.uniform(0, 0.85)),
            storage_ids=tuple(local), wire_ids=(wires[rack], wires[(rack + 1) % len(wires)]),
            schedtags=frozenset(tags),
            cached_images=frozenset(f"img{k}" for k in range(20) if rnd.random() < 0.2),
            group_counts=gcounts, creating=rnd.choice((0, 0, 0, 1, 2)),
        ))
    return {"hosts": hosts, "storages": storages, "networks": networks, "zones": zones, "groups": groups}


def batch_request(count: int) -> ScheduleInput:
    return ScheduleInput.model_validate({
        "vcpu_count": 2, "vmem_size": 4 * GB, "count": count, "hypervisor": "kvm", "os_arch": "x86_64",
        "disks": [{"size": 40 * GB, "image_id": "img3", "medium": "ssd"}, {"size": 100 * GB}],
        "nets": [{}],
        "schedtags": [{"id": "maintenance", "strategy": "exclude"}, {"id": "fast", "strategy": "prefer"},
                      {"id": "dc-a", "strategy": "prefer", "resource_type": "zones"},
                      {"id": "public", "strategy": "avoid", "resource_type": "networks"}],
        "instance_groups": ["bench-aa"],
    })


def hosts_table(path: str, hosts: list[HostRecord]) -> tuple[Table, object]:
    engine = create_engine(f"sqlite:///{path}")
    md = MetaData()
    table = Table("hosts", md, Column("id", String(64), primary_key=True),
                  Column("generation", Integer, nullable=False),
                  Column("cpu_used", Float, nullable=False), Column("mem_used", Float, nullable=False))
    md.create_all(engine)
    with engine.begin() as conn:
        conn.execute(insert(table), [{"id": h.id, "generation": h.generation, "cpu_used": h.cpu_used,
                                      "mem_used": h.mem_used} for h in hosts])
    return table, engine


def headline(n_hosts: int, count: int, seed: int) -> None:
    recs = build_records(n_hosts, seed)
    t0 = time.perf_counter()
    snap = Snapshot(**recs)
    build_s = time.perf_counter() - t0
    split_snap = Snapshot(**recs)
    req = batch_request(count)
    with tempfile.TemporaryDirectory() as tmp:
        table, engine = hosts_table(os.path.join(tmp, "bench.db"), recs["hosts"])
        with engine.connect() as conn:  # type: ignore[attr-defined]
            # end to end, as the region's create path runs it: place, claim, settle, retry conflicts
            t0 = time.perf_counter()
            result = place_and_claim(req, snap, conn, table)
            total_s = time.perf_counter() - t0
        split_table, split_engine = hosts_table(os.path.join(tmp, "split.db"), recs["hosts"])
        with split_engine.connect() as conn:  # type: ignore[attr-defined]
            t0 = time.perf_counter()
            placed = place(req, split_snap)
            t1 = time.perf_counter()
            outcome = claim(conn, split_table, placed.placements)
            t2 = time.perf_counter()
    n = len(result.placements)
    print(f"headline: {n_hosts} hosts, batch of {count} (cpu/mem/2 disks/nic/schedtags/hard anti-affinity)")
    print(f"  snapshot build          {build_s * 1000:8.1f} ms")
    print(f"  place_and_claim()       {total_s * 1000:8.1f} ms  ({n} placed and committed in SQLite, "
          f"{result.conflicts} conflicts)")
    print(f"  => {n / total_s:,.0f} placements/s including the DB claim")
    print(f"  split: place() {(t1 - t0) * 1000:.1f} ms + claim() {(t2 - t1) * 1000:.1f} ms "
          f"({len(outcome.committed)} committed in one transaction)")
    print(f"  distinct hosts used: {len({p.host_id for p in result.placements})}; "
          f"candidates after filters: {snap.host_count - sum(r.count for r in result.rejected)}")
    if not result.ok:
        print(f"  shortfall: {result.explanation()}")


def latency(n_hosts: int, seed: int, runs: int) -> None:
    snap = Snapshot(**build_records(n_hosts, seed))
    req = batch_request(1)
    place(req, snap, dry_run=True)  # warm caches (pairs, tag masks)
    samples = []
    for _ in range(runs):
        t0 = time.perf_counter()
        place(req, snap, dry_run=True)
        samples.append(time.perf_counter() - t0)
    samples.sort()
    p50 = statistics.median(samples) * 1000
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))] * 1000
    print(f"single decision at {n_hosts:>6} hosts: p50 {p50:7.2f} ms   p99 {p99:7.2f} ms   ({runs} runs)")


def memory(n_hosts: int, seed: int) -> None:
    recs = build_records(n_hosts, seed)
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    snap = Snapshot(**recs)
    place(batch_request(1), snap, dry_run=True)  # include the caches a request builds
    now, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"snapshot memory at {n_hosts} hosts ({len(snap.storage_ids)} storages, "
          f"{len(snap.network_ids)} networks): {(now - base) / 2**20:.1f} MiB held "
          f"(peak {(peak - base) / 2**20:.1f} MiB while building; nbytes() says {snap.nbytes() / 2**20:.1f} MiB)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, default=10_000)
    ap.add_argument("--count", type=int, default=1_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--runs", type=int, default=200)
    ap.add_argument("--skip-50k", action="store_true", help="skip the 50k-host latency and memory runs")
    args = ap.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs (figures are noisy on a shared machine)")
    headline(args.hosts, args.count, args.seed)
    for n in (1_000, 10_000) + (() if args.skip_50k else (50_000,)):
        latency(n, args.seed, args.runs if n < 50_000 else max(20, args.runs // 4))
    if not args.skip_50k:
        memory(50_000, args.seed)


if __name__ == "__main__":
    main()
