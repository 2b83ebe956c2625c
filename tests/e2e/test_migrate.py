"""Cold migration end to end (fast tier): a controller, two real `ocadm agent` processes on libvirt's
test:/// driver; `climc server-migrate` moves a stopped server to the other host with its disks
copied through the controller, its IP and MAC kept, the source's copy gone; a migration whose target
is gone leaves the server on its source with the reason."""
from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_agent_support import AgentProc, B, libvirt_or_skip, server, upload_tiny_image, wait_for
from tests.support.controller import Controller


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Controller, list[AgentProc]]]:
    libvirt_or_skip()
    root = tmp_path_factory.mktemp("migrate")
    ctl = Controller.init(root / "ctl")
    ctl.env.update({"CLOUDPODS_HOST_OFFLINE_S": "4", "CLOUDPODS_JOB_HOSTS_OFFLINE_INTERVAL_S": "1"})
    agents: list[AgentProc] = []
    try:
        ctl.serve()
        agents += [AgentProc.join(ctl, root / f"m{i}", f"mig-{i}") for i in range(2)]
        for a in agents:
            a.start()
        upload_tiny_image(ctl)
        yield ctl, agents
    finally:
        for a in agents:
            a.stop()
        ctl.stop()


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

    r = ctl.climc("server-migrate", "mover", "--host", dst.cfg["host_name"])
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
    wait_for(lambda: server(ctl, "mover")["status"] == "running", 20, "started on the new host")
    assert server(ctl, "mover")["host_id"] == dst.host_id
    assert ctl.climc("server-stop", "mover").returncode == 0
    _ready(ctl, "mover")
    # and back again, to the host it came from
    r = ctl.climc("server-migrate", "mover", "--host", src.cfg["host_name"])
    assert r.returncode == 0, r.stderr
    back = _ready(ctl, "mover")
    assert back["host_id"] == src.host_id and back["ips"] == before["ips"]
    assert after["id"] in src.instance_dirs() and after["id"] not in dst.instance_dirs()
    assert ctl.climc("server-delete", "-f", "mover").returncode == 0
    wait_for(lambda: ctl.api.get(f"{B}/servers/mover").status_code == 404, 30, "deleted")


def test_a_running_server_is_refused_and_a_dead_target_leaves_the_server_on_its_source(
        cloud: tuple[Controller, list[AgentProc]]) -> None:
    ctl, agents = cloud
    by_host = {a.host_id: a for a in agents}
    s = _create_stopped(ctl, "stayer")
    src = by_host[s["host_id"]]
    dst = next(a for a in agents if a is not src)
    assert ctl.climc("server-start", "stayer").returncode == 0
    wait_for(lambda: server(ctl, "stayer")["status"] == "running", 20, "running")
    r = ctl.climc("server-migrate", "stayer")
    assert r.returncode != 0 and "running" in (r.stderr + r.stdout)
    assert ctl.climc("server-stop", "stayer").returncode == 0
    _ready(ctl, "stayer")

    # the target's agent dies after the scheduler picked it; its host goes offline and the region
    # refuses to wait for it: the server stays where it was, with the reason
    dst.kill()
    try:
        wait_for(lambda: ctl.api.get(f"{B}/hosts/{dst.host_id}").json()["host"]["host_status"] == "offline", 20,
                 "target offline")
        r = ctl.climc("server-migrate", "stayer", "--host", dst.cfg["host_name"])
        if r.returncode == 0:  # accepted: then the task must fail and say why
            failed = wait_for(lambda: (x := server(ctl, "stayer"))["status"] == "migrate_fail" and x, 60,
                              "migrate_fail")
            assert failed["host_id"] == src.host_id and failed["status_reason"], failed
        else:
            assert "offline" in (r.stderr + r.stdout) or "no other host" in (r.stderr + r.stdout), r.stderr
        assert server(ctl, "stayer")["host_id"] == src.host_id
        assert s["id"] in src.instance_dirs() and s["id"] not in dst.instance_dirs()
    finally:
        dst.start()
    assert _staged(ctl) == []
