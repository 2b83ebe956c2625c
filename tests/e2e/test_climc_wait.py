"""``--wait`` through climc against a running controller: a create that cannot be scheduled exits 1
with the scheduler's reason, which server-show, server-tasks and the audit log all carry; and, on
libvirt's test driver, create/stop/start/delete with --wait return once the server has got there."""
from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

import pytest

from tests.e2e.test_agent_support import libvirt_or_skip, upload_tiny_image
from tests.support.controller import Controller


def test_unschedulable_create_waits_fails_and_says_why(controller: Controller,
                                                       cirros_image: dict[str, object]) -> None:
    name = f"huge-{uuid.uuid4().hex[:6]}"
    # its own empty zone: no host another test registered on the shared controller can take it
    assert controller.climc("zone-create", name).returncode == 0
    r = controller.climc("server-create", name, "--ncpu", "100", "--disk", "cirros", "--count", "2", "--wait",
                         "--timeout", "240", "--zone", name)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "not scheduled" in r.stderr and "Traceback" not in r.stderr
    servers = json.loads(controller.climc("server-list", "--search", name, "-o", "json").stdout)["data"]
    assert len(servers) == 2
    for s in servers:
        assert s["status"] == "sched_fail" and s["fail_reason"], s
        # every server of the batch lists the batch task, failed, with the scheduler's verdict
        tasks = json.loads(controller.climc("server-tasks", s["id"], "-o", "json").stdout)["data"]
        batch = [t for t in tasks if t["task_name"] == "ServerBatchCreateTask"]
        assert batch and batch[0]["status"] == "failed" and "not scheduled" in batch[0]["reason"]
    acts = json.loads(controller.climc("action-list", "--obj-type", "server", "--limit", "200",
                                       "-o", "json").stdout)["data"]
    mine = [a for a in acts if a["obj_id"] == servers[0]["id"] and a["action"] == "create"]
    assert {a["success"] for a in mine} == {True, False}  # accepted, then failed: both recorded
    assert any(servers[0]["fail_reason"][:40] in a["notes"] for a in mine if not a["success"])


@pytest.fixture(scope="module")
def ctl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Controller]:
    libvirt_or_skip()
    with Controller.serving(tmp_path_factory.mktemp("wait"), {"CLOUDPODS_EXECUTOR_HEARTBEAT_S": "1"}) as c:
        upload_tiny_image(c)
        r = c.climc("host-create", "wait-kvm", "--zone", "zone0", "--driver", "kvm", "--config",
                    "uri=test:///default", "--wire", "default")
        assert r.returncode == 0, r.stderr
        yield c


def test_wait_returns_when_the_server_is_there(ctl: Controller) -> None:
    r = ctl.climc("server-create", "w-vm", "--ncpu", "1", "--mem-spec", "256m", "--disk", "tiny", "--net",
                  "default", "--auto-start", "--wait", "-o", "json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["status"] == "running"
    assert "server w-vm: done" in r.stderr  # one line per state change when not on a terminal
    r = ctl.climc("server-stop", "w-vm", "--wait", "-o", "json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["status"] == "ready"
    r = ctl.climc("server-start", "w-vm", "--wait", "-o", "json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["status"] == "running"
    r = ctl.climc("server-delete", "-f", "w-vm", "--wait", "-o", "json")  # gone: no stale "deleting" row
    assert r.returncode == 0 and r.stdout == "" and "server w-vm: deleted" in r.stderr, r.stdout + r.stderr
    assert ctl.api.get("/api/s/compute_v2/servers/w-vm").status_code == 404


def test_wait_on_disk_and_nic_verbs(ctl: Controller) -> None:
    """The verbs that queue a server task (create/attach/detach a disk, attach/detach a NIC) take
    --wait too and show the server as the task left it."""
    r = ctl.climc("server-create", "wd-vm", "--ncpu", "1", "--mem-spec", "256m", "--disk", "tiny", "--net",
                  "default", "--wait")
    assert r.returncode == 0, r.stderr
    r = ctl.climc("server-create-disk", "wd-vm", "1g", "--wait", "-o", "json")
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert len(s["disks_info"]) == 2 and not s["active_task_id"], s
    data = next(d for d in s["disks_info"] if d["index"] == 1)
    r = ctl.climc("server-detach-disk", "wd-vm", data["id"], "--wait", "-o", "json")
    assert r.returncode == 0, r.stderr
    assert [d["index"] for d in json.loads(r.stdout)["disks_info"]] == [0]
    r = ctl.climc("server-attach-network", "wd-vm", "default", "--wait", "-o", "json")
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)["nics"]) == 2
    assert ctl.climc("server-delete", "-f", "wd-vm", "--wait").returncode == 0
