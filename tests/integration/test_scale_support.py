"""N controller replicas over one PostgreSQL/MariaDB database, behind a test balancer, with hollow agents.

    cl = Cluster.start(tmp_path, replicas=3, db="pg")      # ocadm init once, N x ocadm serve
    hollow = cl.hollow(10)                                 # `ocadm agent --hollow 10` subprocess
    cl.kill(0); cl.restart(0)                              # SIGKILL a replica, serve it again
    problems = invariants(cl)                              # [] when everything adds up

Used by tests/integration/test_scale*.py, test_faults*.py and bench/scale.py.
"""
from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support import waiting
from tests.support.balancer import Balancer
from tests.support.controller import Controller, free_port
from tests.support.procs import stop_process

B = "/api/s/compute_v2"
FAST_ENV = {
    "CLOUDPODS_TASK_LEASE_S": "5",  # a dead replica's tasks are taken over after 5 s (default 60)
    "CLOUDPODS_JOB_HOSTS_OFFLINE_INTERVAL_S": "1",
}
# the shared wait, where a replica being killed under us (a refused or reset connection) is "not yet"
wait_for = functools.partial(waiting.wait_for, tolerate=(httpx.HTTPError, OSError))


def need_db(kind: str) -> None:
    from tests.support.controller import DB_ENV
    from tests.support.peers import need

    need(bool(os.environ.get(DB_ENV[kind])),
         f"{DB_ENV[kind]} is not set (run scripts/setup-db.sh up as root; .ci/run does)")


@dataclass
class HollowProc:
    proc: subprocess.Popen[bytes]
    log_path: Path
    n: int

    def stop(self) -> None:
        stop_process(self.proc, 30, group=True)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)


@dataclass
class Cluster:
    root: Path
    first: Controller  # `ocadm init` ran here; its port is the balancer's, so .api and .climc go through it
    replicas: list[Controller]
    lb: Balancer
    hollows: list[HollowProc] = field(default_factory=list)

    @classmethod
    def start(cls, root: Path, replicas: int = 3, db: str = "pg", env: dict[str, str] | None = None) -> Cluster:
        lb_port = free_port()
        first = Controller.init(root / "ctl", port=lb_port, db=db)
        first.env.update({**FAST_ENV, **(env or {})})
        reps = [first.replica(name=f"replica-{i}") for i in range(replicas)]
        lb = Balancer([r.port for r in reps], port=lb_port).start()
        cl = cls(root, first, reps, lb)
        errors: list[BaseException] = []

        def serve(r: Controller) -> None:
            try:
                r.serve(timeout=60)
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=serve, args=(r,)) for r in reps]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            cl.stop()
            raise errors[0]
        return cl

    @property
    def api(self) -> httpx.Client:
        return self.first.api

    def owner(self, i: int) -> str:
        from core.tasks.worker import default_owner

        return default_owner(self.replicas[i].port)

    def kill(self, i: int) -> None:
        self.replicas[i].stop(signal.SIGKILL)

    def restart(self, i: int) -> None:
        self.replicas[i].serve(timeout=60)

    def alive(self) -> list[int]:
        return [i for i, r in enumerate(self.replicas) if r.proc is not None and r.proc.poll() is None]

    def hollow(self, n: int, *, cpus: int = 16, memory_mb: int = 65536, prefix: str = "hollow",
               wait: float = 120) -> HollowProc:
        d = self.root / f"hollow-{prefix}"
        log = self.root / f"hollow-{prefix}.log"
        with open(log, "ab") as f:
            p = subprocess.Popen([sys.executable, "-m", "ocadm", "agent", "--hollow", str(n), "--data-dir", str(d),
                                  "--controller-data-dir", str(self.first.data_dir), "--hollow-prefix", prefix,
                                  "--hollow-cpus", str(cpus), "--hollow-memory-mb", str(memory_mb),
                                  "--log-level", "warning"],
                                 env=self.first.env, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
        h = HollowProc(p, log, n)
        self.hollows.append(h)

        def online() -> bool:
            if p.poll() is not None:
                raise AssertionError(f"hollow agent exited {p.returncode}: {log.read_text()[-2000:]}")
            hosts = self.api.get(f"{B}/hosts", params={"limit": 1000, "search": prefix}).json()["hosts"]
            return sum(1 for x in hosts if x["host_status"] == "online" and x["name"].startswith(prefix)) >= n

        wait_for(online, wait, f"{n} hollow hosts online")
        return h

    def database(self) -> Any:
        import core.db.models  # noqa: F401
        from core.db.engine import Database

        return Database(self.first.db_url)

    def stop(self) -> None:
        for h in self.hollows:
            h.stop()
        for r in self.replicas:
            r.stop()
        self.first.stop()
        self.lb.stop()


def new_client(ctl: Controller, port: int | None = None, token: str | None = None) -> httpx.Client:
    """A client that opens a new connection per request (the balancer spreads them), or one replica's.

    Plain HTTP, so no TLS context: building one costs ~35 ms of CPU holding the GIL, and a create
    run makes a client per POST in the process that also runs the balancer (every agent's poll and
    report passes through it): 200 creates were ~7 s of that thread's GIL."""
    base = f"http://127.0.0.1:{port}" if port else ctl.url
    return httpx.Client(base_url=base, headers={"X-Auth-Token": token or ctl.token()}, timeout=60,
                        limits=httpx.Limits(max_keepalive_connections=0), verify=False)


def invariants(cl: Cluster, lease_s: float = 5.0) -> list[str]:
    """What must hold after any amount of chaos, read straight from the database; [] if all holds.

    Every server is running or failed with a recorded reason; no address is held twice; no task is
    left running without a live lease; hosts' cpu/mem claims equal the sum of their live servers';
    storages' used capacity equals their disks; each project's quota usage equals its servers.
    """
    from collections import Counter, defaultdict

    from sqlalchemy import func, select

    from core.db.base import utcnow
    from core.region.models import Disk, Host, IpAllocation, Server, Storage
    from core.region.models.misc import Quota
    from core.tasks.models import RUNNING, Task

    problems: list[str] = []
    db = cl.database()
    try:
        with db.session() as s:
            servers = list(s.scalars(select(Server).where(Server.pending_deleted.is_(False))))
            for x in servers:
                if x.status == "running":
                    continue
                if x.status.endswith("_fail") and (x.create_spec or {}).get("fail_reason"):
                    continue
                problems.append(f"server {x.name} ({x.id}) ended {x.status} "
                                f"(task {x.active_task_id}, reason {(x.create_spec or {}).get('fail_reason')!r})")
            dup = s.execute(select(IpAllocation.network_id, IpAllocation.ip_addr, func.count())
                            .group_by(IpAllocation.network_id, IpAllocation.ip_addr).having(func.count() > 1)).all()
            problems += [f"address {ip} of network {net} held {n} times" for net, ip, n in dup]
            owners = Counter(s.scalars(select(IpAllocation.owner_id).where(IpAllocation.owner_type == "server")))
            live = {x.id: x for x in servers}
            for sid, n in owners.items():
                if sid not in live:
                    problems.append(f"address held by missing server {sid}")
                elif live[sid].status != "running":
                    problems.append(f"failed server {live[sid].name} still holds {n} address(es)")
            stale = utcnow()
            for t in s.scalars(select(Task).where(Task.status == RUNNING)):
                if not t.owner or t.lease_expires_at is None or t.lease_expires_at < stale.replace(microsecond=0):
                    problems.append(f"task {t.task_name} {t.id} running with owner {t.owner!r} and lease "
                                    f"{t.lease_expires_at} (now {stale})")
            every = list(s.scalars(select(Server)))  # the recycle bin holds what it held
            disks = list(s.scalars(select(Disk)))
            cpu: dict[str, int] = defaultdict(int)
            mem: dict[str, int] = defaultdict(int)
            for x in every:
                h = (x.held or {}).get("host")
                if h:
                    cpu[h["host_id"]] += int(h.get("vcpu", 0))
                    mem[h["host_id"]] += int(h.get("vmem", 0))
            for h in s.scalars(select(Host)):
                if (int(h.cpu_used), int(h.mem_used)) != (cpu.get(h.id, 0), mem.get(h.id, 0)):
                    problems.append(f"host {h.name}: cpu/mem used {h.cpu_used}/{h.mem_used}, servers hold "
                                    f"{cpu.get(h.id, 0)}/{mem.get(h.id, 0)}")
                if h.cpu_used > h.cpu_count * h.cpu_cmtbound or h.mem_used > h.mem_size * h.mem_cmtbound:
                    problems.append(f"host {h.name} over-committed")
            disk_sum: dict[str, int] = defaultdict(int)
            for d in disks:
                st = (d.held or {}).get("storage")
                if st:
                    disk_sum[st["storage_id"]] += int(st.get("size", 0))
            for sto in s.scalars(select(Storage)):
                if int(sto.used_capacity) != disk_sum.get(sto.id, 0):
                    problems.append(f"storage {sto.name}: used {sto.used_capacity} MB, disks hold "
                                    f"{disk_sum.get(sto.id, 0)} MB")
            by_tenant: dict[str, Counter[str]] = defaultdict(Counter)
            for row in [*every, *disks]:
                for k, v in ((row.held or {}).get("quota") or {}).items():
                    by_tenant[row.tenant_id][k] += int(v)
            for q in s.scalars(select(Quota)):
                want = by_tenant.get(q.tenant_id, Counter())
                for k in ("cpu", "memory", "storage", "servers", "ips"):
                    if int(getattr(q, f"used_{k}")) != want.get(k, 0):
                        problems.append(f"quota of {q.tenant_id}: {k} used {getattr(q, f'used_{k}')}, "
                                        f"servers and disks hold {want.get(k, 0)}")
    finally:
        db.dispose()
    return problems


# ---- load + chaos ------------------------------------------------------------------------------
TERMINAL = ("running",)


def is_terminal(status: str) -> bool:
    return status == "running" or status.endswith("_fail")


def scale_network(cl: Cluster, name: str = "scale") -> str:
    """A /20 on the default wire (the default network has 241 addresses); no quota limits."""
    from core.region.defaults import DEFAULTS

    # the admin project's default quota is 100 servers / 256 addresses: lift it for load runs
    q = cl.api.post(f"{B}/quotas", json={"quota": {k: -1 for k in ("cpu", "memory", "storage", "servers", "ips")}})
    assert q.status_code == 200, q.text
    if cl.api.get(f"{B}/networks/{name}").status_code == 200:
        return name
    r = cl.first.climc("network-create", DEFAULTS.wire, name, "10.200.0.10", "10.200.15.250", "20",
                       "--gateway", "10.200.0.1")
    assert r.returncode == 0, r.stderr
    return name


@dataclass
class ChaosReport:
    requested: int
    accepted: int = 0
    create_errors: list[str] = field(default_factory=list)
    kills: int = 0
    submit_s: float = 0.0
    settle_s: float = 0.0
    statuses: dict[str, int] = field(default_factory=dict)
    reached_agent_s: list[float] = field(default_factory=list)  # create accepted -> work item dispatched
    running_s: list[float] = field(default_factory=list)  # create accepted -> running
    fail_reasons: dict[str, int] = field(default_factory=dict)  # recorded reason -> servers


def _create_one(cl: Cluster, token: str, name: str, image: str, net: str, retries: int = 20) -> str | None:
    """POST one server through the balancer; after a lost reply, find it by name instead of retrying blind."""
    body = {"server": {"name": name, "vcpu_count": 1, "vmem_size": 256, "disks": [f"{image}"], "nets": [net],
                       "auto_start": True}}
    last = ""
    for attempt in range(retries):
        with new_client(cl.first, token=token) as c:
            try:
                if attempt:
                    found = c.get(f"{B}/servers", params={"filter": f"name.equals({name})", "limit": 5})
                    if found.status_code == 200 and found.json().get("servers"):
                        return str(found.json()["servers"][0]["id"])
                r = c.post(f"{B}/servers", json=body)
            except httpx.HTTPError as e:  # the replica died under the request
                last = f"{type(e).__name__}: {e}"
                time.sleep(0.3)
                continue
        if r.status_code == 200:
            return str(r.json()["server"]["id"])
        last = f"{r.status_code} {r.text[:200]}"
        if r.status_code < 500:
            raise AssertionError(f"create {name} refused: {last}")
        time.sleep(0.3)
    raise AssertionError(f"create {name} kept failing: {last}")


def chaos_run(cl: Cluster, n: int, *, image: str, net: str, concurrency: int = 20, kill_every_s: float = 10.0,
              settle_timeout_s: float = 300.0, prefix: str = "chaos", log: Callable[[str], None] = print
              ) -> tuple[ChaosReport, list[str]]:
    """Create ``n`` servers through the balancer while a replica is SIGKILLed every ``kill_every_s``
    (0: never) and served again; wait until every server settles; the report and server ids."""
    from concurrent.futures import ThreadPoolExecutor

    rep = ChaosReport(requested=n)
    stop = threading.Event()

    def killer() -> None:
        i = 0
        while not stop.wait(kill_every_s):
            victim = i % len(cl.replicas)
            i += 1
            log(f"  kill -9 replica {victim} (port {cl.replicas[victim].port})")
            cl.kill(victim)
            rep.kills += 1
            try:
                cl.restart(victim)
            except RuntimeError as e:
                log(f"  restart of replica {victim} failed: {e}")

    token = cl.first.token()
    kt = threading.Thread(target=killer, daemon=True) if kill_every_s > 0 else None
    if kt:
        kt.start()
    t0 = time.monotonic()
    ids: list[str] = []
    try:
        with ThreadPoolExecutor(max_workers=concurrency) as ex:
            futs = [ex.submit(_create_one, cl, token, f"{prefix}-{i:04d}", image, net) for i in range(n)]
            for f in futs:
                try:
                    sid = f.result()
                    if sid:
                        ids.append(sid)
                except AssertionError as e:
                    rep.create_errors.append(str(e))
        rep.accepted = len(ids)
        rep.submit_s = time.monotonic() - t0
        log(f"  {rep.accepted}/{n} creates accepted in {rep.submit_s:.1f}s")
        end = time.monotonic() + settle_timeout_s
        statuses: dict[str, str] = {}
        while time.monotonic() < end:
            try:
                with new_client(cl.first, token=token) as c:
                    rows = c.get(f"{B}/servers", params={"search": prefix, "limit": 2000,
                                                         "details": "false"}).json()["servers"]
                statuses = {x["id"]: x["status"] for x in rows}
            except (httpx.HTTPError, KeyError, ValueError):
                time.sleep(0.5)
                continue
            if ids and all(is_terminal(statuses.get(i, "")) for i in ids):
                break
            time.sleep(0.5)
    finally:
        stop.set()
        if kt:
            kt.join(120)
    rep.settle_s = time.monotonic() - t0
    for i in ids:
        st = statuses.get(i, "missing")
        rep.statuses[st] = rep.statuses.get(st, 0) + 1
    _timings(cl, ids, rep)
    return rep, ids


def _timings(cl: Cluster, ids: list[str], rep: ChaosReport) -> None:
    """From the rows: server created_at -> its deploy work item dispatched, and -> create task done."""
    from sqlalchemy import select

    from core.region.models import Server
    from core.tasks.models import Task, WorkItem

    db = cl.database()
    try:
        with db.session() as s:
            created = dict(s.execute(select(Server.id, Server.created_at).where(Server.id.in_(ids))).all())
            for x in s.scalars(select(Server).where(Server.id.in_(ids), Server.status != "running")):
                why = str((x.create_spec or {}).get("fail_reason") or x.status)[:300]
                rep.fail_reasons[why] = rep.fail_reasons.get(why, 0) + 1
            for sid, at in s.execute(select(Task.obj_id, WorkItem.dispatched_at).join(Task, Task.id == WorkItem.task_id)
                                     .where(Task.obj_id.in_(ids), WorkItem.kind == "guest-deploy")):
                if at is not None and sid in created:
                    rep.reached_agent_s.append((at - created[sid]).total_seconds())
            for sid, at in s.execute(select(Task.obj_id, Task.finished_at).where(
                    Task.obj_id.in_(ids), Task.task_name == "ServerCreateTask", Task.status == "done")):
                if at is not None and sid in created:
                    rep.running_s.append((at - created[sid]).total_seconds())
    finally:
        db.dispose()


def pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    ys = sorted(xs)
    return ys[min(len(ys) - 1, int(round(p / 100 * (len(ys) - 1))))]
