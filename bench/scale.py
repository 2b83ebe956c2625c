"""Scale-out figures: N `ocadm serve` replicas on PostgreSQL, hollow agents, concurrent server creates.

    .venv/bin/python bench/scale.py                         # 200 creates on 70 hollow hosts, 1/2/3 replicas
    .venv/bin/python bench/scale.py --replicas 3 --servers 500 --hosts 70 --kill-every 10   # chaos

Needs CLOUDPODS_TEST_PG_URL (scripts/setup-db.sh up prints it) and libvirt-python. Each run gets a
fresh database, `ocadm init` once, R replicas behind a TCP balancer (tests/support/balancer.py) and
one `ocadm agent --hollow N` process. Creates are single-server POSTs through the balancer, all
submitted at once (``--concurrency``). Printed per run: time to accept every create; per server,
create -> deploy work item taken by its agent, and create -> running (p50/p95/max, from the rows);
throughput (servers running per second of the run); with ``--kill-every`` the replica kills; and
whether the invariants hold (tests/integration/test_scale_support.invariants). Also the replicas'
CPU (utime+stime, which moves far less with the machine's load than wall time): with the agents
idle (their long polls only, over ``--idle-s``), and over the whole create run, per server.
Figures depend on what else the machine runs: repeat before comparing.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.test_agent_support import upload_tiny_image
from tests.integration.test_scale_support import (
    Cluster,
    chaos_run,
    invariants,
    pct,
    scale_network,
    wait_for,
)
from tests.support.controller import drop_test_databases
from tests.support.procs import cpu_seconds


def replicas_cpu_s(cl: Cluster) -> float:
    """utime+stime of every live replica, seconds."""
    return sum(cpu_seconds(r.proc.pid) for r in cl.replicas if r.proc is not None and r.proc.poll() is None)


def run(replicas: int, servers: int, hosts: int, concurrency: int, kill_every: float, db: str,
        idle_s: float = 20.0) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="cpone-scale-") as d:
        t0 = time.monotonic()
        cl = Cluster.start(Path(d), replicas=replicas, db=db)
        try:
            cl.hollow(hosts, cpus=64, memory_mb=262144, wait=300)
            upload_tiny_image(cl.first)
            net = scale_network(cl)
            print(f"  {replicas} replica(s), {hosts} hollow hosts ready in {time.monotonic() - t0:.0f}s", flush=True)
            c0, w0 = replicas_cpu_s(cl), time.monotonic()
            time.sleep(idle_s)
            idle_pct = 100 * (replicas_cpu_s(cl) - c0) / (time.monotonic() - w0)
            print(f"  replicas' CPU with {hosts} agents idle (long polls only): {idle_pct:.0f}% of a core "
                  f"(load {os.getloadavg()[0]:.1f})", flush=True)
            c0 = replicas_cpu_s(cl)
            rep, ids = chaos_run(cl, servers, image="tiny", net=net, concurrency=concurrency, kill_every_s=kill_every,
                                 settle_timeout_s=900, prefix="bench", log=lambda s: print(s, flush=True))
            if kill_every:
                try:
                    wait_for(lambda: not invariants(cl), 30, "invariants", every=1)
                except AssertionError:
                    pass
            run_cpu = replicas_cpu_s(cl) - c0  # a killed replica's CPU is lost: chaos runs under-count
            problems = invariants(cl)
            running = rep.statuses.get("running", 0)
            last = max(rep.running_s) if rep.running_s else float("nan")
            out = {
                "replicas": replicas, "servers": servers, "hosts": hosts, "accepted": rep.accepted,
                "create_errors": len(rep.create_errors), "statuses": rep.statuses, "kills": rep.kills,
                "accept_all_s": round(rep.submit_s, 1),
                "to_agent_p50_s": round(pct(rep.reached_agent_s, 50), 1),
                "to_agent_p95_s": round(pct(rep.reached_agent_s, 95), 1),
                "to_agent_max_s": round(max(rep.reached_agent_s or [float("nan")]), 1),
                "running_p50_s": round(pct(rep.running_s, 50), 1),
                "running_p95_s": round(pct(rep.running_s, 95), 1),
                "running_max_s": round(last, 1),
                "throughput_per_s": round(running / last, 1) if running and last == last else 0.0,
                "invariant_problems": problems[:10], "fail_reasons": rep.fail_reasons,
                "create_error_samples": rep.create_errors[:3],
                "load_1m": round(os.getloadavg()[0], 1),
                "idle_cpu_pct": round(idle_pct), "run_cpu_s": round(run_cpu, 1),
                "cpu_ms_per_server": round(1000 * run_cpu / max(1, rep.accepted)),
                "lb_refused": cl.lb.refused,
            }
            return out
        finally:
            cl.stop()
            drop_test_databases()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--replicas", default="1,2,3", help="comma-separated replica counts (one run each)")
    ap.add_argument("--servers", type=int, default=200)
    ap.add_argument("--hosts", type=int, default=70)
    ap.add_argument("--concurrency", type=int, default=200, help="creates in flight at once")
    ap.add_argument("--kill-every", type=float, default=0.0, help="SIGKILL a replica every N s (0: never)")
    ap.add_argument("--db", choices=["pg", "mysql"], default="pg")
    ap.add_argument("--idle-s", type=float, default=20.0, help="seconds to measure the replicas' idle CPU")
    a = ap.parse_args()
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the replicas and agents on the way out
    from tests.support.controller import DB_ENV

    if not os.environ.get(DB_ENV[a.db]):
        sys.exit(f"{DB_ENV[a.db]} is not set: eval \"$(sudo scripts/setup-db.sh up | grep ^CLOUDPODS_ | "
                 "sed 's/^/export /')\"")
    print(f"bench/scale: {a.servers} creates on {a.hosts} hollow hosts, {os.cpu_count()} CPUs", flush=True)
    for r in [int(x) for x in a.replicas.split(",") if x.strip()]:
        res = run(r, a.servers, a.hosts, a.concurrency, a.kill_every, a.db, a.idle_s)
        print(f"replicas={res['replicas']}: {res['statuses']} accepted {res['accepted']}/{res['servers']} "
              f"in {res['accept_all_s']}s; to agent p50/p95/max {res['to_agent_p50_s']}/{res['to_agent_p95_s']}/"
              f"{res['to_agent_max_s']}s; running p50/p95/max {res['running_p50_s']}/{res['running_p95_s']}/"
              f"{res['running_max_s']}s; {res['throughput_per_s']} servers/s; kills {res['kills']}; "
              f"load {res['load_1m']}; connections the balancer closed unserved {res['lb_refused']}", flush=True)
        print(f"  replicas' CPU over the run {res['run_cpu_s']}s ({res['cpu_ms_per_server']} ms per server); "
              f"idle with the agents' polls {res['idle_cpu_pct']}% of a core", flush=True)
        if res["create_error_samples"]:
            print(f"  create errors (first 3): {res['create_error_samples']}")
        if res["fail_reasons"]:
            print(f"  failure reasons: {res['fail_reasons']}")
        print(f"  invariants: {'all hold' if not res['invariant_problems'] else res['invariant_problems']}",
              flush=True)


if __name__ == "__main__":
    main()
