"""Faults lose nothing (full tier, PostgreSQL): a replica SIGKILLed mid-stage, the database restarted
under load, a user token expiring while its task runs.

(An agent killed → host offline, guests unknown, actions 409: tests/e2e/test_agent.py, which runs on
PostgreSQL and MariaDB too under CLOUDPODS_TEST_DB=pg|mysql.)
"""
from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.test_agent_support import upload_tiny_image
from tests.integration.test_scale_support import B, Cluster, need_db, wait_for
from tests.support.controller import Controller, free_port
from tests.support.peers import need, need_root

pytestmark = pytest.mark.full
PG_BIN = Path("/usr/lib/postgresql/15/bin")


def manual_host(api: httpx.Client, name: str) -> str:
    """A host row with no agent: the test answers its work items itself (exact timing)."""
    from core.region.defaults import DEFAULTS

    tag = uuid.uuid4().hex[:6]
    r = api.post(f"{B}/zones/{DEFAULTS.zone}/hosts", json={"host": {
        "name": name, "access_mac": f"00:16:3e:{tag[:2]}:{tag[2:4]}:{tag[4:6]}", "cpu_count": 16, "mem_size": 65536,
        "storages": [{"name": f"{name}-local", "capacity": 1_000_000}],
        "wires": [{"wire": DEFAULTS.wire, "bridge": "br0"}]}})
    assert r.status_code == 200, r.text
    return str(r.json()["host"]["id"])


def create_request(api: httpx.Client, host: str, name: str) -> httpx.Response:
    return api.post(f"{B}/servers", json={"server": {"name": name, "vcpu_count": 1, "vmem_size": 256,
                                                     "disks": ["tiny"], "nets": ["default"], "prefer_host": host,
                                                     "auto_start": True}})


def create_on(api: httpx.Client, host: str, name: str) -> str:
    r = create_request(api, host, name)
    assert r.status_code == 200, r.text
    return str(r.json()["server"]["id"])


def take_item(api: httpx.Client, host_id: str, server_id: str) -> dict[str, Any]:
    def get() -> dict[str, Any] | None:
        items = api.get(f"{B}/agent/hosts/{host_id}/work-items", params={"wait": 1}).json()["work_items"]
        if items:  # as an agent does: what arrived is acknowledged (else handed out again)
            api.post(f"{B}/agent/hosts/{host_id}/work-items/ack", json={"ids": [w["id"] for w in items]})
        return next((w for w in items if w["payload"]["server"]["id"] == server_id), None)
    return dict(wait_for(get, 60, f"work item of {server_id}"))


def deployed(wi: dict[str, Any]) -> dict[str, Any]:
    """The agent's report of a deploy, in the contract's shape (core.host_protocol.DeployResult)."""
    return {"work_item_id": wi["id"], "guest_status": "running",
            "disks": [{"id": d["id"], "access_path": f"/fake/{d['id']}"} for d in wi["payload"]["disks"]]}


def status(api: httpx.Client, sid: str) -> str:
    return str(api.get(f"{B}/servers/{sid}").json()["server"]["status"])


# ---- a replica killed mid-stage ----------------------------------------------------------------------
@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Cluster]:
    need_db("pg")
    cl = Cluster.start(tmp_path, replicas=2, db="pg")
    try:
        upload_tiny_image(cl.first)
        yield cl
    finally:
        cl.stop()


def test_replica_killed_mid_stage_its_task_is_taken_over_after_the_lease(pair: Cluster) -> None:
    from sqlalchemy import create_engine, select, text

    from core.tasks.models import Task

    cl = pair
    host = manual_host(cl.api, "h-manual")
    sid = create_on(cl.api, "h-manual", "victim-task")
    wi = take_item(cl.api, host, sid)
    tid = wi["task_id"]
    # Hold the server row: the stage that handles the agent's report blocks on it, mid-stage, with
    # its claim (owner + lease) recorded — exactly a replica caught by kill -9 in the middle of work.
    eng = create_engine(cl.first.db_url)
    db = cl.database()
    try:
        with eng.connect() as lock:
            lock.execute(text("SELECT id FROM servers WHERE id = :i FOR UPDATE"), {"i": sid})
            r = cl.api.post(f"{B}/agent/tasks/{tid}", json=deployed(wi))
            assert r.status_code == 200, r.text

            def claimed() -> str | None:
                # the stage has started, not only been claimed: a replica records its attempt in a
                # transaction after the claim's, and a kill between the two leaves no attempt of its own
                # in the log (CI killed one there once: the log then held only the take-over's run)
                with db.session() as s:
                    t = s.get(Task, tid)
                    assert t is not None
                    last = t.stages_log[-1] if t.stages_log else {}
                    started = t.status == "running" and t.stage == "on_deploy_complete" and \
                        last.get("stage") == "on_deploy_complete" and last.get("by") == t.owner
                    return t.owner if started else None

            owner = wait_for(claimed, 60, "a replica running on_deploy_complete")
            victim = next(i for i in range(2) if cl.owner(i) == owner)
            cl.kill(victim)
            lock.rollback()
        t0 = time.monotonic()
        wait_for(lambda: status(cl.api, sid) == "running", 40, "the other replica finished the task")
        took = time.monotonic() - t0
        with db.session() as s:
            t = s.get(Task, tid)
            assert t is not None and t.status == "done" and not t.owner
            runs = [x for x in t.stages_log if x["stage"] == "on_deploy_complete"]
        assert [x["by"] for x in runs] == [owner, cl.owner(1 - victim)], runs
        assert took >= 2, "taken over before the lease (5 s) expired?"
        with db.session() as s:  # nothing left running without an owner
            assert s.scalar(select(Task).where(Task.status == "running", Task.owner == "")) is None
        cl.restart(victim)  # its restart finds nothing of its own to recover
        assert status(cl.api, sid) == "running"
    finally:
        eng.dispose()
        db.dispose()


# ---- the database restarted under load ----------------------------------------------------------------
class PrivatePostgres:
    """A PostgreSQL 15 cluster of our own (initdb in a temp dir), so restarting it disturbs nobody."""

    def __init__(self) -> None:
        import tempfile

        # not under pytest's tmp dir: that is private to root, and the server runs as postgres
        self.root = Path(tempfile.mkdtemp(prefix="cpone-pg-"))
        self.dir = self.root / "pgdata"
        self.port = free_port()

    def _pg(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["runuser", "-u", "postgres", "--", *args], capture_output=True, text=True,
                              check=check, timeout=120, cwd="/")

    def init(self) -> PrivatePostgres:
        os.chmod(self.root, 0o755)
        self.dir.mkdir(mode=0o700)
        shutil.chown(self.dir, "postgres", "postgres")
        self._pg(str(PG_BIN / "initdb"), "-D", str(self.dir), "-A", "trust", "-U", "postgres")
        return self

    def start(self) -> None:
        self._pg(str(PG_BIN / "pg_ctl"), "-D", str(self.dir), "-l", str(self.dir / "log"), "-w", "-o",
                 f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1", "start")

    def stop(self, mode: str = "fast") -> None:
        self._pg(str(PG_BIN / "pg_ctl"), "-D", str(self.dir), "-m", mode, "-w", "stop", check=False)

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"


def test_database_restart_under_load_is_503_then_recovers(tmp_path: Path) -> None:
    need_root()
    need((PG_BIN / "initdb").exists(), "postgresql-15 is not installed (scripts/setup-db.sh installs it)")
    pg = PrivatePostgres().init()
    pg.start()
    ctl = None
    try:
        ctl = Controller.start(tmp_path / "ctl", "--db-url", pg.url)
        upload_tiny_image(ctl)
        host = manual_host(ctl.api, "h-outage")
        sid = create_on(ctl.api, "h-outage", "survivor")
        wi = take_item(ctl.api, host, sid)
        token = ctl.token()
        seen: dict[str, list[str]] = {"ok": [], "503": [], "other": []}
        stop = threading.Event()

        def load() -> None:
            with httpx.Client(base_url=ctl.url, headers={"X-Auth-Token": token}, timeout=30) as c:
                i = 0
                while not stop.is_set():
                    i += 1
                    try:
                        r = (c.get(f"{B}/servers") if i % 2 else
                             c.post(f"{B}/secgroups", json={"secgroup": {"name": f"sg-{uuid.uuid4().hex[:8]}"}}))
                    except httpx.HTTPError as e:
                        seen["other"].append(f"{type(e).__name__}")
                        continue
                    key = "ok" if r.status_code == 200 else "503" if r.status_code == 503 else "other"
                    seen[key].append(f"{r.status_code} {r.text[:160]}")
                    time.sleep(0.02)

        threads = [threading.Thread(target=load) for _ in range(3)]
        for t in threads:
            t.start()
        time.sleep(1.5)
        pg.stop("fast")  # connections die, new ones are refused
        time.sleep(3)
        during = {k: len(v) for k, v in seen.items()}
        pg.start()
        t0 = time.monotonic()
        # back without restarting the controller: every request succeeds again
        wait_for(lambda: httpx.get(ctl.url + f"{B}/servers", headers={"X-Auth-Token": token},
                                   timeout=10).status_code == 200, 60, "requests succeed again")
        recovered = time.monotonic() - t0
        n_ok = len(seen["ok"])
        time.sleep(1.5)
        stop.set()
        for t in threads:
            t.join(30)
        assert during["503"] > 0, seen["other"][:5]
        assert all("database unavailable" in x for x in seen["503"]), seen["503"][:3]
        assert seen["other"] == [], seen["other"][:5]  # never a 500, a 401 or a dropped connection
        assert len(seen["ok"]) > n_ok  # the load kept succeeding after the restart
        assert ctl.proc is not None and ctl.proc.poll() is None
        # the task that waited through the outage completes when its agent reports
        r = ctl.api.post(f"{B}/agent/tasks/{wi['task_id']}", json=deployed(wi))
        assert r.status_code == 200, r.text
        wait_for(lambda: status(ctl.api, sid) == "running", 60, "task after the outage")
        print(f"db outage: {during['503']} x 503 during 3 s down; recovered {recovered:.1f}s after restart")
    finally:
        if ctl is not None:
            ctl.stop()
        pg.remove()


# ---- a token that expires while its task runs ----------------------------------------------------------
def test_task_completes_after_its_users_token_expired(tmp_path: Path) -> None:
    """The task runs on the authority recorded when it was queued, not on its user's token. Only the
    user's token is short-lived: tokens last 3 s from a restart after the setup on, and the test's own
    admin and agent calls use a token issued before it (a token keeps the expiry it was issued with).
    With every token at 3 s, a step that took longer under load (taking the work item) got a 401."""
    ctl = Controller.init(tmp_path)
    ctl.serve()
    try:
        upload_tiny_image(ctl)
        host = manual_host(ctl.api, "h-slow")
        admin_token = ctl.token()  # valid for the default hour
        ctl.stop()
        ctl.env["CLOUDPODS_TOKEN_LIFETIME_S"] = "3"
        ctl.serve()

        def create() -> tuple[str, str] | None:
            user_token = ctl.token()
            with httpx.Client(base_url=ctl.url, headers={"X-Auth-Token": user_token}, timeout=30) as c:
                r = create_request(c, host, "outlives-token")
            if r.status_code == 401:  # expired before its first use (a stalled box): with a new one
                return None
            assert r.status_code == 200, r.text
            return str(r.json()["server"]["id"]), user_token

        sid, user_token = wait_for(create, 60, "a create with a 3-s token")
        with httpx.Client(base_url=ctl.url, headers={"X-Auth-Token": admin_token}, timeout=60) as admin:
            wi = take_item(admin, host, sid)
            wait_for(lambda: httpx.get(ctl.url + f"{B}/servers/{sid}", headers={"X-Auth-Token": user_token},
                                       timeout=30).status_code == 401, 60, "the user's token expired")
            r = admin.post(f"{B}/agent/tasks/{wi['task_id']}", json=deployed(wi))
            assert r.status_code == 200, r.text
            wait_for(lambda: status(admin, sid) == "running", 60, "completed on its recorded authority")
            task = admin.get(f"{B}/tasks/{wi['task_id']}").json()["task"]
            assert task["status"] == "done"
    finally:
        ctl.stop()
