"""Day-2 server operations end to end (fast tier): climc → a real controller → the real `ocadm agent`
on libvirt's test:/// (its disks real qcow2 files made with qemu-img where it is installed).

The recycle bin as Cloudpods has it (the guest stopped, the disks in the bin with their server, both
back on cancel-delete, both gone on purge, the addresses held until then), names unique in a project,
a kvm server without a system disk refused.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_agent_support import AgentProc, B, libvirt_or_skip, server, upload_tiny_image, wait_for
from tests.support.controller import Controller


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Controller, AgentProc]]:
    libvirt_or_skip()
    root = tmp_path_factory.mktemp("day2")
    ctl = Controller.init(root / "ctl")
    agent = None
    try:
        ctl.serve()
        agent = AgentProc.join(ctl, root / "a", "day2-node")
        agent.start()
        upload_tiny_image(ctl)
        yield ctl, agent
    finally:
        if agent is not None:
            agent.stop()
        ctl.stop()


def climc_json(ctl: Controller, *args: str) -> Any:
    r = ctl.climc(*args, "-o", "json")
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout)


def settled(ctl: Controller, name: str, status: str, what: str, timeout: float = 30) -> dict[str, Any]:
    return dict(wait_for(lambda: (s := server(ctl, name))["status"] == status and not s["active_task_id"] and s,
                         timeout, what))


def names(ctl: Controller, verb: str, *args: str) -> set[str]:
    return {x["name"] for x in climc_json(ctl, verb, "--limit", "200", *args)["data"]}


def test_recycle_bin_stops_the_guest_holds_its_disks_and_gives_both_back(
        cloud: tuple[Controller, AgentProc]) -> None:
    ctl, agent = cloud
    r = ctl.climc("server-create", "vm-bin", "--disk", "tiny", "--disk", "64m", "--net", "default")
    assert r.returncode == 0, r.stderr
    srv = settled(ctl, "vm-bin", "ready", "created")
    storage = srv["disks_info"][0]["storage_id"]
    kept = climc_json(ctl, "disk-create", "vm-bin-kept", "32m", "--storage", storage)
    assert ctl.climc("server-attach-disk", "vm-bin", "vm-bin-kept").returncode == 0
    settled(ctl, "vm-bin", "ready", "attached")
    assert ctl.climc("server-start", "vm-bin").returncode == 0
    srv = settled(ctl, "vm-bin", "running", "running")
    ip = srv["ips"]
    own = {"vm-bin-disk0", "vm-bin-disk1", "vm-bin-kept"}
    assert own <= names(ctl, "disk-list")

    # to the recycle bin: the guest is stopped, the disks go with it, the address stays held
    assert ctl.climc("server-delete", "vm-bin").returncode == 0
    binned = wait_for(lambda: [s for s in climc_json(ctl, "server-list", "--pending-delete")["data"]
                               if s["name"] == "vm-bin" and s["status"] == "ready" and not s["active_task_id"]],
                      30, "stopped in the recycle bin")[0]
    assert binned["pending_deleted"] is True and binned["ips"] == ip
    assert "vm-bin" not in names(ctl, "server-list")
    assert not own & names(ctl, "disk-list")
    assert own <= names(ctl, "disk-list", "--pending-delete")
    r = ctl.climc("server-start", "vm-bin")
    assert r.returncode != 0 and "recycle bin" in r.stderr, r.stderr
    r = ctl.climc("disk-delete", "vm-bin-kept")  # its disks stay with it while it is there
    assert r.returncode != 0 and "attached" in r.stderr, r.stderr
    inst = agent.data / "instances" / srv["id"]
    assert inst.exists()  # nothing destroyed yet

    # cancel-delete: server and disks back, stopped
    assert ctl.climc("server-cancel-delete", "vm-bin").returncode == 0
    back = settled(ctl, "vm-bin", "ready", "back")
    assert back["pending_deleted"] is False and back["ips"] == ip
    assert own <= names(ctl, "disk-list")
    assert ctl.climc("server-start", "vm-bin").returncode == 0
    settled(ctl, "vm-bin", "running", "starts again")

    # delete + purge: the server and its own disks gone for good; the kept disk back on its own
    assert ctl.climc("server-delete", "vm-bin").returncode == 0
    wait_for(lambda: not ctl.api.get(f"{B}/servers/{srv['id']}").json()["server"]["active_task_id"], 30, "stopped")
    assert ctl.climc("server-purge", "vm-bin").returncode == 0
    wait_for(lambda: ctl.api.get(f"{B}/servers/{srv['id']}").status_code == 404, 30, "purged")
    assert not {"vm-bin-disk0", "vm-bin-disk1"} & names(ctl, "disk-list", "--pending-delete")
    assert not {"vm-bin-disk0", "vm-bin-disk1"} & names(ctl, "disk-list")
    row = [d for d in climc_json(ctl, "disk-list", "--search", "vm-bin-kept")["data"] if d["id"] == kept["id"]]
    assert row and row[0]["status"] == "ready" and not row[0].get("server_id")
    assert not inst.exists()


def test_a_taken_name_is_409_and_a_kvm_server_needs_a_system_disk(cloud: tuple[Controller, AgentProc]) -> None:
    ctl, _agent = cloud
    assert ctl.climc("server-create", "vm-once", "--disk", "tiny", "--net", "default").returncode == 0
    r = ctl.climc("server-create", "vm-once", "--disk", "tiny", "--net", "default")
    assert r.returncode != 0 and "already in use" in r.stderr and "409" in r.stderr, r.stderr
    r = ctl.api.post(f"{B}/servers", json={"server": {"name": "vm-once", "disks": ["tiny"]}})
    assert r.status_code == 409 and r.json()["class"] == "DuplicateNameError", r.text
    # the generated series is the way to more of the same name
    assert ctl.climc("server-create", "vm-once", "--generate-name", "--disk", "tiny").returncode == 0
    assert {"vm-once", "vm-once-1"} <= names(ctl, "server-list", "--search", "vm-once")

    before = names(ctl, "server-list")
    for args in (("--net", "default"), ()):
        r = ctl.climc("server-create", "vm-empty", *args)
        assert r.returncode != 0 and "system disk" in r.stderr and "--disk" in r.stderr, r.stderr
    r = ctl.api.post(f"{B}/servers", json={"server": {"name": "vm-empty", "nets": ["default"]}})
    assert r.status_code == 400 and r.json()["class"] == "InputParameterError", r.text
    assert names(ctl, "server-list") == before
    for n in ("vm-once", "vm-once-1"):
        assert ctl.climc("server-delete", "-f", n).returncode == 0
