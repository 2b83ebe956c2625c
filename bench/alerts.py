"""Alert evaluator benchmark: one ``alerts-evaluate`` pass over R rules on a project of N servers.

    .venv/bin/python bench/alerts.py [--servers 1000] [--rules 50]

An in-process SQLite database (the controller's default) with N servers, a day of minute buckets
for each (one metric set per minute, as agents send), and R project-scoped rules on cpu_percent
(5 min window). Prints the CPU and wall time of one evaluation pass with no state change (the
steady state) and of the pass where every server starts alerting (records + state rows). The job
runs every 30 s by default: its CPU share of one core is the steady figure / 30 s. Figures depend on
the machine and whatever else runs on it.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

T0 = 1_800_000_000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--servers", type=int, default=1000)
    ap.add_argument("--rules", type=int, default=50)
    a = ap.parse_args()

    import core.db.models  # noqa: F401
    from core.db.base import Base
    from core.db.engine import Database
    from core.metrics.evaluator import evaluate
    from core.metrics.models import Commonalert, MetricSample
    from core.region.models import Server

    with tempfile.TemporaryDirectory(prefix="bench-alerts-") as d:
        db = Database(f"sqlite:///{Path(d) / 'b.db'}")
        Base.metadata.create_all(db.engine)
        with db.session() as s:
            ids = []
            for i in range(a.servers):
                srv = Server(name=f"b-{i}", tenant_id="p1", domain_id="default", status="running", vcpu_count=1,
                             vmem_size=64)
                s.add(srv)
                s.flush()
                ids.append(srv.id)
            rows = [{"obj_id": sid, "resolution": 60, "ts": T0 - m * 60, "obj_type": "server", "n": 1,
                     "cpu_percent": 10.0 + (m % 7)} for sid in ids for m in range(1440)]
            s.execute(MetricSample.__table__.insert(), rows)
            for r in range(a.rules):
                s.add(Commonalert(name=f"r{r}", metric="cpu_percent", comparator=">", threshold=50.0 + r,
                                  window_seconds=300, for_seconds=0, scope="project", res_type="server",
                                  tenant_id="p1", notify_configs=[], status="ready"))
            s.commit()

            def timed(now: float) -> tuple[float, float, int]:
                c0, w0 = time.process_time(), time.perf_counter()
                n = evaluate(s, now)
                return (time.process_time() - c0) * 1000, (time.perf_counter() - w0) * 1000, n

            cpu, wall, n = timed(T0 + 30)
            print(f"steady pass: {a.rules} rules x {a.servers} servers: {cpu:.0f} ms CPU, {wall:.0f} ms wall, "
                  f"{n} changes; {cpu / 300:.2f} % of a core at one pass per 30 s")
            s.execute(MetricSample.__table__.update().where(MetricSample.ts >= T0 - 300).values(cpu_percent=99.0))
            s.commit()
            cpu, wall, n = timed(T0 + 31)
            print(f"storm pass (every server starts alerting on every rule): {cpu:.0f} ms CPU, {wall:.0f} ms wall, "
                  f"{n} changes")


if __name__ == "__main__":
    main()
