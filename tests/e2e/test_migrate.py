"""Cold migration end to end (fast tier): a controller, two real `ocadm agent` processes on libvirt's
test:/// driver; `climc server-migrate` moves a stopped server to the other host with its disks
copied through the controller, its IP and MAC kept, the source's copy gone; a migration whose target
is gone leaves the server on its source with the reason."""
from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_agent_support import AgentProc, B, agent_cloud, libvirt_or_skip, server, wait_for
from tests.support.controller import Controller
from tests.support.subnets import unique_octet


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Controller, list[AgentProc]]]:
    libvirt_or_skip()
    with agent_cloud(tmp_path_factory.mktemp("migrate"), 2, "mig") as cloud:
        yield cloud


def _ready(ctl: Controller, name: str, timeout: float = 30) -> dict[str, Any]:
    return dict(wait_for(lambda: (s := server(ctl, name))["status"] == "ready" and not s["active_task_id"] and s,
                         timeout, f"{name} ready"))


def _create_stopped(ctl: Controller, name: str) -> dict[str, Any]:
    r = ctl.climc("server-create", name, "--disk", "tiny", "--disk", "64", "--net", "default", "-o", "json")
    assert r.returncode == 0, r.stderr
    return _ready(ctl, name)


def _staged(ctl: Controller) -> list[str]:
    d = Path(ctl.data_dir) / "migrations"
    return sorted(os.listdir(d)) if d.exists() else []


def test_server_migrate_moves_a_stopped_server_with_its_disks_and_address(
        cloud: tuple[Controller, list[AgentProc]]) -> None:
    ctl, agents = cloud
    by_host = {a.host_id: a for a in agents}
    before = _create_stopped(ctl, "mover")
    src = by_host[before["host_id"]]
    dst = next(a for a in agents if a is not src)
    assert before["id"] in src.instance_dirs()
    # something the guest wrote to its data disk travels with it
    data_disk = Path(src.data) / "instances" / before["id"] / "disk1.qcow2"
    nics_before = json.loads((Path(src.data) / "instances" / before["id"] / "nics.json").read_text())
    marker = b"written by the guest before it moved"
    with open(data_disk, "r+b") as f:
        f.seek(0, os.SEEK_END)
        end = f.tell()
        f.write(marker)

    r = ctl.climc("server-migrate", "mover", "--prefer-host", dst.cfg["host_name"])
    assert r.returncode == 0, r.stderr
    after = _ready(ctl, "mover")
    assert after["host_id"] == dst.host_id and after["status"] == "ready", after
    show = json.loads(ctl.climc("server-show", "mover", "-o", "json").stdout)
    assert show["host"] == dst.cfg["host_name"]
    assert after["ips"] == before["ips"]
    assert after["id"] in dst.instance_dirs() and after["id"] not in src.instance_dirs()
    moved = Path(dst.data) / "instances" / after["id"] / "disk1.qcow2"
    with open(moved, "rb") as f:
        f.seek(end)
        assert f.read(len(marker)) == marker
    # the NIC keeps its MAC (the target's lease, the config drive): read what the target keeps
    kept = json.loads((Path(dst.data) / "instances" / after["id"] / "nics.json").read_text())
    assert [n["ip"] for n in kept] == [after["ips"]]
    assert [n["mac"] for n in kept] == [n["mac"] for n in nics_before]
    assert _staged(ctl) == []  # the controller's copy went with the task
    assert ctl.climc("server-start", "mover").returncode == 0
    wait_for(lambda: server(ctl, "mover")["status"] == "running", 60, "started on the new host")
    assert server(ctl, "mover")["host_id"] == dst.host_id
    assert ctl.climc("server-stop", "mover").returncode == 0
    _ready(ctl, "mover")
    # and back again, to the host it came from
    r = ctl.climc("server-migrate", "mover", "--prefer-host", src.cfg["host_name"])
    assert r.returncode == 0, r.stderr
    back = _ready(ctl, "mover")
    assert back["host_id"] == src.host_id and back["ips"] == before["ips"]
    assert after["id"] in src.instance_dirs() and after["id"] not in dst.instance_dirs()
    assert ctl.climc("server-delete", "-f", "mover").returncode == 0
    wait_for(lambda: ctl.api.get(f"{B}/servers/mover").status_code == 404, 60, "deleted")


def _item_status(ctl: Controller, task_id: str, kind: str) -> str | None:
    from sqlalchemy import select

    from core.db.engine import Database
    from core.tasks.models import WorkItem

    db = Database(ctl.db_url)  # CI runs this suite on PostgreSQL and MariaDB too
    try:
        with db.session() as s:
            return s.scalar(select(WorkItem.status).where(WorkItem.task_id == task_id, WorkItem.kind == kind))
    finally:
        db.dispose()


def _task_id(ctl: Controller, sid: str) -> str | None:
    tasks = ctl.api.get(f"{B}/tasks", params={"obj_id": sid, "task_name": "ServerMigrateTask"}).json()
    open_ = [t for t in tasks.get("tasks", []) if t["status"] not in ("done", "failed")]
    return open_[0]["id"] if open_ else None


def test_a_running_server_is_refused_and_a_failed_migrate_in_leaves_the_server_on_its_source(
        cloud: tuple[Controller, list[AgentProc]]) -> None:
    ctl, agents = cloud
    by_host = {a.host_id: a for a in agents}
    s = _create_stopped(ctl, "stayer")
    sid = s["id"]
    src = by_host[s["host_id"]]
    dst = next(a for a in agents if a is not src)
    assert ctl.climc("server-start", "stayer").returncode == 0
    wait_for(lambda: server(ctl, "stayer")["status"] == "running", 60, "running")
    r = ctl.climc("server-migrate", "stayer")
    assert r.returncode != 0 and "running" in (r.stderr + r.stdout), r.stdout + r.stderr
    # libvirt's test:/// migrates nothing live: its hosts do not declare it, the API says so (no task)
    for a in agents:
        assert "live_migrate" not in ctl.api.get(f"{B}/hosts/{a.host_id}").json()["host"]["capabilities"]
    r = ctl.climc("server-live-migrate", "stayer", "--prefer-host", dst.cfg["host_name"])
    assert r.returncode != 0 and "live_migrate" in r.stderr, r.stdout + r.stderr
    s = server(ctl, "stayer")
    assert s["status"] == "running" and s["host_id"] == src.host_id and not s["active_task_id"]
    assert ctl.climc("server-stop", "stayer").returncode == 0
    _ready(ctl, "stayer")
    src_files = sorted(os.listdir(src.data / "instances" / sid))

    # the target is frozen in its long poll while the source hands the disks over; a staged disk is
    # then damaged on the controller: the target refuses it (sha256) and the server stays where it was
    dst.signal(signal.SIGSTOP)
    try:
        r = ctl.climc("server-migrate", "stayer", "--prefer-host", dst.cfg["host_name"])
        assert r.returncode == 0, r.stderr
        tid = wait_for(lambda: _task_id(ctl, sid), 60, "migrate task")
        wait_for(lambda: _item_status(ctl, tid, "guest-migrate-in") == "dispatched", 60,
                 "migrate-in handed to the frozen target")
        staged = Path(ctl.data_dir) / "migrations" / sid
        files = [p for p in staged.iterdir() if not p.name.endswith(".sha256") and not p.name.startswith(".")]
        assert files and all(oct(p.stat().st_mode & 0o777) == "0o600" for p in files)
        assert oct(staged.stat().st_mode & 0o777) == "0o700"
        # only the target of the open migrate-in reads a staged disk; nobody writes one any more
        disk = files[0].name
        path = f"{B}/agent/hosts/{{}}/migrations/{sid}/disks/{disk}"
        with src.client() as c:
            assert c.get(path.format(src.host_id)).status_code == 403
            assert c.put(path.format(src.host_id), content=b"x").status_code == 403  # its migrate-out is done
            assert c.get(path.format(dst.host_id)).status_code == 403  # another host's route
        with dst.client() as c:
            assert c.put(path.format(dst.host_id), content=b"x").status_code == 403
        with open(files[0], "r+b") as f:
            f.write(b"bitrot")
    finally:
        dst.signal(signal.SIGCONT)
    failed = wait_for(lambda: (x := server(ctl, "stayer"))["status"] == "migrate_fail" and not x["active_task_id"]
                      and x, 60, "migrate_fail")
    assert failed["host_id"] == src.host_id and "sha256" in failed["status_reason"], failed
    assert sorted(os.listdir(src.data / "instances" / sid)) == src_files  # the source's guest is untouched
    assert sid not in dst.instance_dirs()  # nothing half-built is left on the target
    assert _staged(ctl) == []
    # the target's claim went back: a second attempt fits and succeeds
    r = ctl.climc("server-migrate", "stayer", "--prefer-host", dst.cfg["host_name"])
    assert r.returncode == 0, r.stderr
    moved = _ready(ctl, "stayer")
    assert moved["host_id"] == dst.host_id and moved["ips"] == s["ips"] and not moved["status_reason"]
    assert sid in dst.instance_dirs() and sid not in src.instance_dirs()
    assert ctl.climc("server-delete", "-f", "stayer").returncode == 0
    wait_for(lambda: ctl.api.get(f"{B}/servers/{sid}").status_code == 404, 60, "deleted")


def test_a_failed_cleanup_keeps_the_move_and_says_what_was_left(controller: Controller,
                                                                 cirros_image: dict[str, object]) -> None:
    """The source cannot remove its copy: the server still runs from its new host; the reason names the leftover."""
    import uuid

    from tests.e2e.region_agent import TestbedAgent

    ctl = controller
    tag = uuid.uuid4().hex[:6]
    zone, wire, net = f"mz-{tag}", f"mw-{tag}", f"mn-{tag}"
    assert ctl.climc("zone-create", zone).returncode == 0
    assert ctl.climc("wire-create", zone, wire, "1000").returncode == 0
    third = unique_octet()
    r = ctl.climc("network-create", wire, net, f"10.{third}.9.10", f"10.{third}.9.40", "24")
    assert r.returncode == 0, r.stderr
    hosts = []
    for i in range(2):
        h = ctl.api.post(f"{B}/zones/{zone}/hosts", json={"host": {
            "name": f"mh{i}-{tag}", "access_mac": f"00:16:3e:{tag[:2]}:{tag[2:4]}:{i:02x}", "cpu_count": 16,
            "mem_size": 65536, "storages": [{"name": f"mh{i}-{tag}-local", "capacity": 1_000_000}],
            "wires": [{"wire": wire, "bridge": "br0"}]}})
        assert h.status_code == 200, h.text
        hosts.append(h.json()["host"])
    wires = ({"wire": wire, "bridge": "br0"},)
    with TestbedAgent(ctl.env, hosts[0]["id"], host_name=hosts[0]["name"], wires=wires,
                      fail_kinds=("guest-migrate-cleanup",)) as src, \
            TestbedAgent(ctl.env, hosts[1]["id"], host_name=hosts[1]["name"], wires=wires) as dst:
        r = ctl.api.post(f"{B}/servers", json={"server": {
            "name": f"left-{tag}", "vcpu_count": 1, "vmem_size": 256, "disks": [f"{cirros_image['name']}:1g"],
            "nets": [net], "prefer_host": hosts[0]["id"]}})
        assert r.status_code == 200, r.text
        sid = r.json()["server"]["id"]
        s = _ready(ctl, sid)
        assert s["host_id"] == hosts[0]["id"]
        r = ctl.climc("server-migrate", sid, "--prefer-host", hosts[1]["name"])
        assert r.returncode == 0, r.stderr
        moved = _ready(ctl, sid)
        assert moved["host_id"] == hosts[1]["id"] and moved["ips"] == s["ips"]
        assert "not removed" in moved["status_reason"] and "injected failure" in moved["status_reason"], moved
        assert hosts[0]["name"] in moved["status_reason"]
        assert os.path.isdir(os.path.join(dst.cfg.instances_dir, sid))
        assert os.path.isdir(os.path.join(src.cfg.instances_dir, sid))  # the leftover the reason names
        assert ctl.climc("server-delete", "-f", sid).returncode == 0
        wait_for(lambda: ctl.api.get(f"{B}/servers/{sid}").status_code == 404, 60, "deleted")
