"""Several `ocadm serve` replicas on one PostgreSQL database (full tier).

Task claiming spreads over the replicas; periodic jobs run under one replica's lease and move when
it dies; tokens issued by one replica are accepted by every other (shared key repository); agents
reach whichever replica the balancer gives them. And the small chaos run: creates through the
balancer while a replica is SIGKILLed every 10 s — everything settles and adds up
(bench/scale.py is the big one).
"""
from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.test_agent_support import upload_tiny_image
from tests.integration.test_scale_support import (
    B,
    Cluster,
    chaos_run,
    invariants,
    need_db,
    new_client,
    pct,
    scale_network,
    wait_for,
)

pytestmark = pytest.mark.full


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    need_db("pg")
    from tests.e2e.test_agent_support import libvirt_or_skip

    libvirt_or_skip()
    cl = Cluster.start(tmp_path_factory.mktemp("replicas"), replicas=3, db="pg")
    try:
        cl.hollow(6)
        upload_tiny_image(cl.first)
        yield cl
    finally:
        cl.stop()


def _lease_holder(cl: Cluster, name: str) -> str | None:

    from core.db.base import utcnow
    from core.db.lease import DbLease

    db = cl.database()
    try:
        with db.session() as s:
            row = s.get(DbLease, name)
            return row.holder if row is not None and row.expires_at > utcnow() else None
    finally:
        db.dispose()


def test_tokens_from_one_replica_work_on_every_other(cluster: Cluster) -> None:
    cl = cluster
    ports = [r.port for r in cl.replicas]
    for issuer in ports:
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": cl.first.env["OS_USERNAME"], "password": cl.first.env["OS_PASSWORD"],
            "domain": {"name": "Default"}}}}, "scope": {"project": {"name": "system", "domain": {"name": "Default"}}}}}
        r = httpx.post(f"http://127.0.0.1:{issuer}/api/s/identity/v3/auth/tokens", json=body, timeout=30)
        assert r.status_code == 201, r.text
        tok = r.headers["x-subject-token"]
        for other in ports:
            got = httpx.get(f"http://127.0.0.1:{other}{B}/servers", headers={"X-Auth-Token": tok}, timeout=30)
            assert got.status_code == 200, (issuer, other, got.text)
    # a revocation on one replica reaches the others (keystone's revision counter in the DB)
    tok = cl.first.token()
    admin = cl.first.token()
    r = httpx.delete(f"http://127.0.0.1:{ports[0]}/api/s/identity/v3/auth/tokens",
                     headers={"X-Auth-Token": admin, "X-Subject-Token": tok}, timeout=30)
    assert r.status_code == 204, r.text
    wait_for(lambda: all(httpx.get(f"http://127.0.0.1:{p}{B}/servers", headers={"X-Auth-Token": tok},
                                   timeout=30).status_code == 401 for p in ports), 60, "revoked everywhere")


def test_tasks_run_on_every_replica_and_agents_reach_any(cluster: Cluster) -> None:
    cl = cluster
    token = cl.first.token()
    ids = []
    for i in range(12):  # each create straight to one replica, round robin
        port = cl.replicas[i % 3].port
        with new_client(cl.first, port=port, token=token) as c:
            r = c.post(f"{B}/servers", json={"server": {"name": f"spread-{i}", "vcpu_count": 1, "vmem_size": 256,
                                                         "disks": ["tiny"], "nets": ["default"], "auto_start": True}})
            assert r.status_code == 200, r.text
            ids.append(r.json()["server"]["id"])
    rows = [wait_for(lambda i=i: (s := cl.api.get(f"{B}/servers/{i}").json()["server"])["status"] == "running"
                     and s, 60, f"server {i} running") for i in ids]
    assert len({s["host_id"] for s in rows}) >= 3  # spread over the hollow hosts
    by: set[str] = set()
    for sid in ids:
        tasks = cl.api.get(f"{B}/tasks", params={"obj_id": sid, "limit": 50}).json()["tasks"]
        for t in tasks:
            by |= {st.get("by") for st in t.get("stages", []) if st.get("by")}
    owners = {cl.owner(i) for i in range(3)}
    assert by <= owners and len(by) >= 2, (by, owners)  # stages ran on several replicas
    # the hollow agents' long polls and reports went through the balancer to every replica
    assert all(n > 0 for n in cl.lb.connections.values()), cl.lb.connections
    assert invariants(cl) == []
    r = cl.first.climc("server-delete", "-f", *ids)
    assert r.returncode == 0, r.stderr
    wait_for(lambda: all(cl.api.get(f"{B}/servers/{i}").status_code == 404 for i in ids), 60, "deleted")


def test_periodic_job_runs_under_one_lease_and_moves_when_its_replica_dies(cluster: Cluster) -> None:
    cl = cluster
    name = "periodic:hosts-offline"  # every 1 s here, lease 3 s
    holder = wait_for(lambda: _lease_holder(cl, name), 60, "a holder")
    seen = set()
    for _ in range(15):  # renewals keep the same holder: nobody else runs it meanwhile
        seen.add(_lease_holder(cl, name))
        time.sleep(0.2)
    assert seen == {holder}, seen
    victim = next(i for i in range(3) if cl.owner(i) == holder)
    cl.kill(victim)
    try:
        t0 = time.monotonic()
        new = wait_for(lambda: (h := _lease_holder(cl, name)) and h != holder and h, 60, "another holder")
        assert new in {cl.owner(i) for i in range(3)} - {holder}
        # lease 3 s + a 1 s tick; the rest is room for a loaded CI box (a lease never taken over fails above)
        assert time.monotonic() - t0 < 30
    finally:
        cl.restart(victim)


def test_replica_killed_as_it_answers_a_poll_strands_no_work_item(cluster: Cluster) -> None:
    """The worst moment: the replica committed the hand-out of a deploy to an agent's long poll and
    dies before its reply reaches the agent. The item, never acknowledged, goes out again with the
    agent's next poll (work_item_ack_s, 10 s) and the server runs within seconds, not after 900 s."""
    import re
    import uuid

    cl = cluster
    marker = re.compile(rb'"work_items":\s*\[\s*\{')
    killed: list[int] = []

    def kill_as_it_answers(port: int, block: bytes) -> bool:
        if killed or not marker.search(block):
            return False
        victim = next(i for i, r in enumerate(cl.replicas) if r.port == port)
        cl.kill(victim)  # SIGKILL, waited for: this replica's reply is the block being dropped
        killed.append(victim)
        return True

    name = f"strand-{uuid.uuid4().hex[:6]}"
    cl.lb.on_reply = kill_as_it_answers
    try:
        t0 = time.monotonic()
        r = cl.api.post(f"{B}/servers", json={"server": {"name": name, "vcpu_count": 1, "vmem_size": 256,
                                                          "disks": ["tiny"], "nets": ["default"], "auto_start": True}})
        assert r.status_code == 200, r.text
        sid = r.json()["server"]["id"]
        wait_for(lambda: killed, 60, "a replica killed as it answered a poll with the deploy")
        cl.lb.on_reply = None
        wait_for(lambda: cl.api.get(f"{B}/servers/{sid}").json()["server"]["status"] == "running", 90,
                 f"{name} running after its deploy was lost with the replica")
        took = time.monotonic() - t0
        assert took < 90, took  # 900 s before the acknowledgement (10 s + a loaded machine's slack)
    finally:
        cl.lb.on_reply = None
        for i in killed:
            cl.restart(i)
    r = cl.first.climc("server-delete", "-f", sid)
    assert r.returncode == 0, r.stderr
    print(f"stranded deploy redelivered: running {took:.1f}s after the create (replica {killed} killed)")


def test_chaos_small(cluster: Cluster) -> None:
    """A replica SIGKILLed every 3 s during 60 creates: every server settles, everything adds up.

    (The issue's "every 10 s" is bench/scale.py's default at 500 creates; 60 creates settle in ~7 s
    on a quiet machine, so here the kills come faster to be sure some land mid-run.)"""
    cl = cluster
    net = scale_network(cl)
    lines: list[str] = []
    rep, ids = chaos_run(cl, 60, image="tiny", net=net, concurrency=10, kill_every_s=3, settle_timeout_s=240,
                         prefix="chaos-s", log=lines.append)
    assert rep.create_errors == [], rep.create_errors[:3]
    assert rep.accepted == 60
    assert rep.kills >= 1, lines
    try:
        wait_for(lambda: not invariants(cl), 60, "invariants after the lease time", every=1)
    except AssertionError:
        pass  # the assertion below names what does not hold (a bare timeout said nothing in CI)
    problems = invariants(cl)
    assert problems == [], (problems[:10], rep)
    assert set(rep.statuses) <= {"running"} | {s for s in rep.statuses if s.endswith("_fail")}, rep.statuses
    print(f"chaos: {rep.statuses}, kills {rep.kills}, to agent p95 {pct(rep.reached_agent_s, 95):.1f}s, "
          f"running p95 {pct(rep.running_s, 95):.1f}s, failures {rep.fail_reasons}")

