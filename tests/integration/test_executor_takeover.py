"""The in-controller executor under leases (full tier, PostgreSQL, two replicas): a replica
SIGKILLed while it runs an executor host's work item loses it to the other replica once its lease
expires; the server ends running, reported once, by the survivor."""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from sqlalchemy import text

from tests.e2e.test_agent_support import upload_tiny_image
from tests.integration.test_scale_support import B, Cluster, need_db, wait_for

pytestmark = pytest.mark.full


def _dispatched(cl: Cluster, server_id: str) -> list[tuple[str, str]]:
    db = cl.database()
    try:
        with db.engine.connect() as c:
            rows = c.execute(text("SELECT w.owner, w.status FROM work_items w JOIN tasks t ON t.id = w.task_id "
                                  "WHERE w.kind = 'guest-deploy' AND t.obj_id = :s"), {"s": server_id}).all()
        return [(str(o or ""), str(s)) for o, s in rows]
    finally:
        db.dispose()


def test_a_killed_replicas_executor_item_is_taken_over(tmp_path: Path) -> None:
    need_db("pg")
    from tests.e2e.test_agent_support import libvirt_or_skip

    libvirt_or_skip()
    hold = tmp_path / "hold"
    hold.write_text("held")  # every executor thread waits here before its driver call
    cl = Cluster.start(tmp_path / "cl", replicas=2, db="pg",
                       env={"CLOUDPODS_TEST_EXECUTOR_HOLD": str(hold), "CLOUDPODS_EXECUTOR_HEARTBEAT_S": "1"})
    try:
        upload_tiny_image(cl.first)
        r = cl.first.climc("host-create", "exec-ha", "--zone", "zone0", "--driver", "kvm", "--config",
                           "uri=test:///default", "--wire", "default", "-o", "json")
        assert r.returncode == 0, r.stderr
        r = cl.first.climc("server-create", "ha-vm", "--ncpu", "1", "--mem-spec", "256m", "--disk", "tiny",
                           "--net", "default", "--host", "exec-ha", "--auto-start", "-o", "json")
        assert r.returncode == 0, r.stderr
        sid = cl.api.get(f"{B}/servers/ha-vm").json()["server"]["id"]
        # one replica claims the deploy and holds it mid-item (lease renewed while it waits)
        owners = wait_for(lambda: [o for o, s in _dispatched(cl, sid) if s == "dispatched" and o], 60, "a claim")
        holder = owners[0]
        victim = next(i for i in range(2) if cl.owner(i) == holder)
        cl.kill(victim)
        hold.unlink()  # the survivor may now run what it takes over
        t0 = time.monotonic()
        wait_for(lambda: cl.api.get(f"{B}/servers/{sid}", timeout=10).json()["server"]["status"] == "running",
                 60, "running after the takeover")
        took = time.monotonic() - t0
        rows = _dispatched(cl, sid)
        assert rows and all(s == "done" for _o, s in rows), rows
        assert {o for o, _s in rows} <= {cl.owner(1 - victim), ""}, (rows, holder)
        assert took < 45, f"takeover took {took:.1f} s (lease 5 s)"
        tasks = cl.api.get(f"{B}/servers/{sid}/tasks").json()["tasks"]
        assert [t["status"] for t in tasks if t["task_name"] == "ServerCreateTask"] == ["done"], tasks
    finally:
        cl.stop()
