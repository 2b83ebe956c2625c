"""Metrics benchmark: /metrics scrape with 10,000 servers, usage-history ingest and a 24 h query.

    .venv/bin/python bench/metrics.py [--servers 10000] [--tasks 20000] [--projects 1000]
                                      [--guests 1000] [--history-guests 200]

Starts a private controller (real `ocadm init` + `ocadm serve`, SQLite), bulk-inserts N server
rows (bench/region.py's seed), task rows and per-project quota rows, then:

  GET /metrics (admin token, parsed by prometheus_client)   p50/p95 (target <= 100 ms)
  ingest of --guests guests' samples (one ping's worth)      ms per batch and % of one core at one
                                                              batch per 60 s (target <= 5 %)
  GET /servers/<id>/metrics?since=24h (1440 minute buckets)  p50/p95 (target <= 50 ms)

The ingest is timed in-process on the controller's database (core.metrics.history.ingest + commit,
what POST /hosts/<id>/ping adds); the history table holds a day of minute buckets for
--history-guests other guests too. Figures depend on the machine and whatever else runs on it.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prometheus_client.parser import text_string_to_metric_families

from bench.region import p, seed
from tests.support.controller import Controller

B = "/api/s/compute_v2"
DAY = 86400


def seed_more(ctl: Controller, tasks: int, projects: int) -> None:
    from sqlalchemy import insert

    from core.db.base import utcnow
    from core.db.engine import Database
    from core.region.models import Quota
    from core.tasks.models import Task

    db = Database(f"sqlite:///{ctl.data_dir / 'cloudpods.db'}")
    now = utcnow()
    names = ("ServerCreateTask", "ServerStartTask", "ServerStopTask", "ServerDeleteTask", "DiskResizeTask")
    rows = [{"id": str(uuid.uuid4()), "task_name": names[i % len(names)], "obj_type": "server",
             "obj_id": str(uuid.uuid4()), "status": "failed" if i % 50 == 0 else ("queued" if i % 97 == 0 else "done"),
             "params": {}, "user_cred": {}, "stages_log": [], "created_at": now, "updated_at": now, "run_after": now}
            for i in range(tasks)]
    quotas = [{"tenant_id": uuid.uuid4().hex, "domain_id": "default", "cpu": 64, "memory": 65536, "storage": 1 << 20,
               "servers": 50, "ips": 50, "images": 10, "snapshot": 10, "used_cpu": i % 64} for i in range(projects)]
    with db.session() as s:
        for k in range(0, len(rows), 5000):
            s.execute(insert(Task), rows[k:k + 5000])
        s.execute(insert(Quota), quotas)
        s.commit()
    db.dispose()


def history(ctl: Controller, server_id: str, others: int) -> tuple[float, int]:
    """A day of minute buckets for ``server_id`` and ``others`` more guests; (seconds, rows)."""
    from sqlalchemy import insert

    from core.db.engine import Database
    from core.metrics.models import MetricSample

    db = Database(f"sqlite:///{ctl.data_dir / 'cloudpods.db'}")
    now = int(time.time()) // 60 * 60
    t0 = time.perf_counter()
    n = 0
    with db.session() as s:
        for obj in [server_id] + [str(uuid.uuid4()) for _ in range(others)]:
            rows = [{"obj_id": obj, "resolution": 60, "ts": now - m * 60, "obj_type": "server", "n": 1,
                     "cpu_percent": float(m % 100), "mem_mb": 512.0, "disk_read_bps": 1e5, "disk_write_bps": 2e5,
                     "net_rx_bps": 3e4, "net_tx_bps": 4e4} for m in range(1, 1440)]
            s.execute(insert(MetricSample), rows)
            n += len(rows)
        s.commit()
    db.dispose()
    return time.perf_counter() - t0, n


def ingest_cost(ctl: Controller, guests: int, rounds: int = 5) -> list[float]:
    from core.db.engine import Database
    from core.metrics.history import ingest

    db = Database(f"sqlite:///{ctl.data_dir / 'cloudpods.db'}")
    ids = [str(uuid.uuid4()) for _ in range(guests)]
    samples = {"host": {"cpu_percent": 12.5, "mem_mb": 4096.0, "load_1m": 1.0},
               "guests": [{"id": i, "running": True, "cpu_percent": 3.5, "mem_mb": 1024.0, "disk_read_bps": 1e5,
                           "disk_write_bps": 2e5, "net_rx_bps": 1e4, "net_tx_bps": 2e4} for i in ids]}
    out = []
    base = time.time()
    for r in range(rounds):
        t0 = time.process_time()
        with db.session() as s:
            ingest(s, "bench-host", samples, set(ids), now=base + r * 60)
            s.commit()
        out.append((time.process_time() - t0) * 1000)
    db.dispose()
    return out


def cpu_ms(fn, n: int) -> float:  # type: ignore[no-untyped-def]
    """Median CPU time of ``fn()`` in this process: what a loaded machine's wall clock hides."""
    out = []
    for _ in range(n):
        t0 = time.process_time()
        fn()
        out.append((time.process_time() - t0) * 1000)
    return statistics.median(out)


def in_process(ctl: Controller, server_id: str, n: int) -> tuple[float, float]:
    """CPU ms of rendering /metrics and of the 24 h query, in this process on the same database."""
    from core.db.engine import Database
    from core.metrics.history import query
    from core.metrics.routes import render

    db = Database(f"sqlite:///{ctl.data_dir / 'cloudpods.db'}")

    def q() -> None:
        with db.session() as s:
            query(s, server_id, "server", DAY)

    try:
        return cpu_ms(lambda: render(db), n), cpu_ms(q, n)
    finally:
        db.dispose()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--servers", type=int, default=10000)
    ap.add_argument("--tasks", type=int, default=20000)
    ap.add_argument("--projects", type=int, default=1000)
    ap.add_argument("--guests", type=int, default=1000)
    ap.add_argument("--history-guests", type=int, default=200)
    ap.add_argument("--n", type=int, default=30)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="cpone-bench-metrics-") as d:
        ctl = Controller.start(Path(d))
        try:
            one = seed(ctl, a.servers)
            seed_more(ctl, a.tasks, a.projects)
            api = ctl.api
            for _ in range(3):  # warm: first scrape imports and fills caches
                api.get("/metrics").raise_for_status()
            scrape, size, fams = [], 0, 0
            for _ in range(a.n):
                t0 = time.perf_counter()
                r = api.get("/metrics")
                scrape.append((time.perf_counter() - t0) * 1000)
                r.raise_for_status()
                size = len(r.content)
            fams = sum(1 for _ in text_string_to_metric_families(r.text))
            print(f"scrape /metrics, {a.servers} servers, {a.tasks} tasks, {a.projects} projects: "
                  f"p50 {statistics.median(scrape):.1f} ms, p95 {p(scrape, 0.95):.1f} ms "
                  f"({size / 1024:.0f} KiB, {fams} families; target <= 100 ms)")
            cost = ingest_cost(ctl, a.guests)
            per = statistics.median(cost)
            print(f"ingest of {a.guests} guests' samples: {per:.0f} ms CPU per batch = "
                  f"{per / 60000 * 100:.2f} % of one core at one batch per 60 s (target <= 5 %)")
            secs, rows = history(ctl, one, a.history_guests)
            print(f"seeded {rows} minute buckets ({a.history_guests + 1} guests x 1 day) in {secs:.1f} s")
            q = []
            for _ in range(a.n):
                t0 = time.perf_counter()
                r = api.get(f"{B}/servers/{one}/metrics", params={"since": "24h"})
                q.append((time.perf_counter() - t0) * 1000)
                r.raise_for_status()
            pts = sum(len(s["points"]) for s in r.json()["metrics"]["series"])
            print(f"GET /servers/<id>/metrics?since=24h: p50 {statistics.median(q):.1f} ms, p95 {p(q, 0.95):.1f} ms "
                  f"({pts} points in 6 series; target <= 50 ms)")
            render_ms, query_ms = in_process(ctl, one, a.n)
            print(f"CPU time in-process (load-independent): render /metrics {render_ms:.1f} ms, "
                  f"24 h query {query_ms:.1f} ms")
        finally:
            ctl.stop()


if __name__ == "__main__":
    main()
