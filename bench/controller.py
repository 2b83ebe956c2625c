"""Controller figures: `ocadm serve` start-to-ready, idle RSS, `climc endpoint-list` round trip.

    .venv/bin/python bench/controller.py [--runs 15]

Targets (issue 2): serve ready ≤ 2 s, idle RSS ≤ 150 MB, endpoint-list ≤ 250 ms including httpx's import.
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
            rss = rss_mb(ctl.proc.pid)  # type: ignore[union-attr]
            ctl.stop()
        ctl.serve()
        print(f"ocadm serve start→ready       {statistics.median(starts):7.2f} s (median of 3)")
        print(f"  its CPU until ready         {statistics.median(cpus):7.2f} s (compare this on a loaded machine)")
        print(f"idle RSS after start          {rss:7.1f} MB")
        ctl.climc("endpoint-list")  # warm the token cache, as a user's second call would be
        xs = []
        for _ in range(a.runs):
            t0 = time.perf_counter()
            r = ctl.climc("endpoint-list")
            xs.append((time.perf_counter() - t0) * 1000)
            assert r.returncode == 0, r.stderr
        print(f"climc endpoint-list           {statistics.median(xs):7.1f} ms median ({a.runs} runs, token cached)")
        tok = ctl.token()
        with httpx.Client(base_url=ctl.url, headers={"X-Auth-Token": tok}) as c:
            ys = []
            for _ in range(200):
                t0 = time.perf_counter()
                c.get("/api/s/identity/v3/endpoints").raise_for_status()
                ys.append((time.perf_counter() - t0) * 1000)
        ys.sort()
        print(f"GET /endpoints (in-process)   p50 {ys[100]:.1f} ms  p99 {ys[197]:.1f} ms")
        print(f"RSS after requests            {rss_mb(ctl.proc.pid):7.1f} MB")  # type: ignore[union-attr]
        ctl.stop()



if __name__ == "__main__":
    main()
