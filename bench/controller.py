"""Controller figures: `ocadm serve` start-to-ready, idle RSS, `climc endpoint-list` round trip.

    .venv/bin/python bench/controller.py [--runs 15]

Targets (issue 22): serve ready ≤ 1 s, idle RSS ≤ 100 MB, after a few thousand requests ≤ 125 MB and flat;
(issue 2) endpoint-list ≤ 250 ms including httpx's import.
Machine noise: ±20 % on a shared 2-core box.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.controller import Controller
from tests.support.procs import cpu_seconds


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--requests", type=int, default=3000,
                    help="GETs before the RSS-after-load figure (issue 22: a few thousand)")
    ap.add_argument("--settle-s", type=float, default=3.0, help="wait after ready before the idle RSS figure")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        ctl = Controller.init(Path(d))
        print(f"ocadm init                    {time.perf_counter() - t0:7.2f} s")
        starts, cpus = [], []
        for _ in range(3):
            t0 = time.perf_counter()
            ctl.serve()
            starts.append(time.perf_counter() - t0)
            cpus.append(cpu_seconds(ctl.proc.pid))  # type: ignore[union-attr]
            ctl.stop()
        ctl.serve()
        print(f"ocadm serve start→ready       {statistics.median(starts):7.2f} s (median of 3)")
        print(f"  its CPU until ready         {statistics.median(cpus):7.2f} s (compare this on a loaded machine)")
        # Not at the first answer to /ping: the background services are still starting then, so the
        # figure raced them. An idle controller is one that has settled.
        time.sleep(a.settle_s)
        print(f"idle RSS {a.settle_s:.0f} s after ready       {rss_mb(ctl.proc.pid):7.1f} MB")  # type: ignore[union-attr]
        ctl.climc("endpoint-list")  # warm the token cache, as a user's second call would be
        xs = []
        for _ in range(a.runs):
            t0 = time.perf_counter()
            r = ctl.climc("endpoint-list")
            xs.append((time.perf_counter() - t0) * 1000)
            assert r.returncode == 0, r.stderr
        print(f"climc endpoint-list           {statistics.median(xs):7.1f} ms median ({a.runs} runs, token cached)")
        tok = ctl.token()
        rss_at = {}
        with httpx.Client(base_url=ctl.url, headers={"X-Auth-Token": tok}) as c:
            ys = []
            for i in range(1, a.requests + 1):
                t0 = time.perf_counter()
                c.get("/api/s/identity/v3/endpoints").raise_for_status()
                ys.append((time.perf_counter() - t0) * 1000)
                if i in (a.requests // 3, a.requests):
                    rss_at[i] = rss_mb(ctl.proc.pid)  # type: ignore[union-attr]
        ys.sort()
        print(f"GET /endpoints (in-process)   p50 {statistics.median(ys):.1f} ms  "
              f"p99 {ys[int(len(ys) * 0.99) - 1]:.1f} ms")
        # two points: flat under load means the second is no higher than the first
        print("RSS after requests            " + "  ".join(f"{n}: {mb:.1f} MB" for n, mb in sorted(rss_at.items())))
        ctl.stop()


if __name__ == "__main__":
    main()
