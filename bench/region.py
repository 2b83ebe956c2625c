"""Region benchmark: list/show latency with 10,000 servers, and server-create acceptance rate.

    .venv/bin/python bench/region.py [--servers 10000] [--creates 400]

Starts a private controller (real `ocadm init` + `ocadm serve`, SQLite), registers a zone, wire,
network and a large host, bulk-inserts N server rows straight into the database (reads are what
is measured), then times over HTTP:

  GET /servers?limit=20               p50 (target <= 10 ms)
  GET /servers?limit=1000 (details)   p50 (target <= 50 ms)
  GET /servers/<id>                   p50 (target <= 5 ms)
  POST /servers (task queued)         accepted per second, 2 client threads (target >= 200/s)

Each line also gives the controller's CPU time per request (utime+stime of its process over the
block): wall-clock figures depend on the machine and on whatever else runs on it (run those on a
quiet box); CPU per request barely moves with the load.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from tests.support.controller import Controller
from tests.support.procs import cpu_seconds

B = "/api/s/compute_v2"




class ServerCpu:
    """CPU the controller process spends per request over a block of requests."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def __enter__(self) -> ServerCpu:
        self.t0 = cpu_seconds(self.pid)
        return self

    def __exit__(self, *exc: object) -> None:
        self.used = cpu_seconds(self.pid) - self.t0

    def per(self, n: int) -> float:
        return self.used * 1000 / n


def timed(client: httpx.Client, path: str, n: int, **params: object) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = client.get(B + path, params=params)
        out.append((time.perf_counter() - t0) * 1000)
        r.raise_for_status()
    return out


def p(xs: list[float], q: float) -> float:
    return sorted(xs)[min(len(xs) - 1, int(q * len(xs)))]


def seed(ctl: Controller, n: int) -> str:
    api = ctl.api
    api.post(f"{B}/zones", json={"zone": {"name": "bz"}}).raise_for_status()
    api.post(f"{B}/wires", json={"wire": {"name": "bw", "zone": "bz"}}).raise_for_status()
    api.post(f"{B}/networks", json={"network": {"name": "bn", "wire": "bw", "guest_ip_prefix": "10.8.0.0/16"}}
             ).raise_for_status()
    api.post(f"{B}/zones/bz/hosts", json={"host": {
        "name": "bh", "cpu_count": 4096, "mem_size": 1 << 30, "cpu_cmtbound": 100.0,
        "storages": [{"name": "bs", "capacity": 1 << 40}], "wires": [{"wire": "bw"}]}}).raise_for_status()
    api.post(f"{B}/quotas", json={"quota": {k: -1 for k in ("cpu", "memory", "storage", "servers", "ips")}}
             ).raise_for_status()
    first = api.post(f"{B}/servers", json={"server": {"name": "seed", "vcpu_count": 1, "vmem_size": 64,
                                                        "disks": ["1g"]}})
    first.raise_for_status()
    tenant = first.json()["server"]["tenant_id"]
    from sqlalchemy import insert, select

    from core.db.base import utcnow
    from core.db.engine import Database
    from core.region.models import Server

    db = Database(f"sqlite:///{ctl.data_dir / 'cloudpods.db'}")
    with db.session() as s:  # every row gets a real create spec (disks, nets, groups), as a created server has
        spec = s.scalar(select(Server.create_spec).where(Server.name == "seed"))
    now = utcnow()
    rows = [{"id": str(uuid.uuid4()), "name": f"bench-{i:05d}", "description": "", "status": "ready",
             "meta": {}, "tenant_id": tenant, "domain_id": "default", "is_public": False, "pending_deleted": False,
             "vcpu_count": 1 + i % 8, "vmem_size": 1024, "hypervisor": "kvm", "os_type": "Linux", "os_arch": "",
             "power_status": "off", "auto_start": False, "create_spec": spec, "user_data": "", "held": {},
             "created_at": now, "updated_at": now} for i in range(n)]
    with db.session() as s:
        for k in range(0, n, 2000):
            s.execute(insert(Server), rows[k:k + 2000])
    db.dispose()
    return rows[n // 2]["id"]


def creates(ctl: Controller, total: int, threads: int = 2) -> float:
    token = ctl.api.headers["X-Auth-Token"]
    done: list[int] = []

    def work(k: int) -> None:
        with httpx.Client(base_url=ctl.url, headers={"X-Auth-Token": token}, timeout=60) as c:
            for i in range(total // threads):
                r = c.post(f"{B}/servers", json={"server": {"name": f"c{k}-{i}", "vcpu_count": 1, "vmem_size": 64,
                                                            "disks": ["1g"], "nets": ["bn"]}})
                r.raise_for_status()
                done.append(1)

    t0 = time.perf_counter()
    ts = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return len(done) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--servers", type=int, default=10_000)
    ap.add_argument("--creates", type=int, default=400)
    ap.add_argument("--reps", type=int, default=100)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        ctl = Controller.start(Path(d))
        try:
            one = seed(ctl, a.servers)
            api = ctl.api
            timed(api, "/servers", 10, limit=20)  # warm up
            pid = ctl.proc.pid  # type: ignore[union-attr]
            nbig = max(10, a.reps // 5)
            with ServerCpu(pid) as c_small:
                small = timed(api, "/servers", a.reps, limit=20)
            with ServerCpu(pid) as c_big:
                big = timed(api, "/servers", nbig, limit=1000, details="true")
            with ServerCpu(pid) as c_get:
                get = timed(api, f"/servers/{one}", a.reps)
            with ServerCpu(pid) as c_post:
                rate = creates(ctl, a.creates)
            print(f"servers in db: {a.servers + 1}")
            print(f"GET /servers?limit=20            p50 {statistics.median(small):6.1f} ms  p90 {p(small, .9):6.1f} ms"
                  f"  server CPU {c_small.per(a.reps):5.1f} ms/req  (target p50 <= 10)")
            print(f"GET /servers?limit=1000&details  p50 {statistics.median(big):6.1f} ms  p90 {p(big, .9):6.1f} ms"
                  f"  server CPU {c_big.per(nbig):5.1f} ms/req  (target p50 <= 50)")
            print(f"GET /servers/<id>                p50 {statistics.median(get):6.1f} ms  p90 {p(get, .9):6.1f} ms"
                  f"  server CPU {c_get.per(a.reps):5.1f} ms/req  (target p50 <= 5)")
            print(f"POST /servers accepted           {rate:6.0f} /s  ({a.creates} creates, 2 threads; target >= 200)"
                  f"  server CPU {c_post.per(a.creates):5.1f} ms/create")
        finally:
            ctl.stop()


if __name__ == "__main__":
    main()
