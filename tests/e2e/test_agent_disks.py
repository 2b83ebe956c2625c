"""Disk verbs end to end (fast tier): climc → a real controller → the real `ocadm agent` on test:///.

`server-attach-disk`, `server-detach-disk` and `server-rebuild-root` (from another image) end with
the server back in ready/running, `disk-list` and `server-show` saying so, and the agent's instance
dir and persisted guest description holding the files the region records. libvirt's test driver
cannot hot-plug, so the host does not declare attach_disk_hot and the API refuses disk changes on a
running server (400, "stop the server first"); hot-plug is tested on real qemu (tests/integration).
"""
from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_agent_support import AgentProc, B, agent_host, libvirt_or_skip, server, wait_for
from tests.support.controller import Controller


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Controller, AgentProc]]:
    libvirt_or_skip()
    with agent_host(tmp_path_factory.mktemp("disks"), "disk-node", images=("tiny", "tiny-two")) as cloud:
        yield cloud


def climc_json(ctl: Controller, *args: str) -> Any:
    r = ctl.climc(*args, "-o", "json")
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout)


def settled(ctl: Controller, name: str, status: str, what: str) -> dict[str, Any]:
    return dict(wait_for(lambda: (s := server(ctl, name))["status"] == status and not s["active_task_id"] and s,
                         60, what))


def disk_row(ctl: Controller, name: str) -> dict[str, Any]:
    rows = [d for d in climc_json(ctl, "disk-list", "--search", name)["data"] if d["name"] == name]
    assert len(rows) == 1, rows
    return dict(rows[0])


def access_path(ctl: Controller, disk_id: str) -> str:
    r = ctl.api.get(f"{B}/disks/{disk_id}")
    assert r.status_code == 200, r.text
    return str(r.json()["disk"]["access_path"])


def test_attach_detach_and_rebuild_root_through_climc(cloud: tuple[Controller, AgentProc]) -> None:
    ctl, agent = cloud
    host = ctl.api.get(f"{B}/hosts/{agent.host_id}").json()["host"]
    assert "attach_disk" in host["capabilities"] and "rebuild_root" in host["capabilities"]
    assert "attach_disk_hot" not in host["capabilities"]  # test:/// cannot hot-plug, and says so

    r = ctl.climc("server-create", "vm-disks", "--disk", "tiny", "--net", "default", "--auto-start")
    assert r.returncode == 0, r.stderr
    srv = settled(ctl, "vm-disks", "running", "server running")
    inst = agent.data / "instances" / srv["id"]
    storage = srv["disks_info"][0]["storage_id"]
    made = climc_json(ctl, "disk-create", "vm-data", "64m", "--storage", storage)
    assert made["status"] == "ready" and not made.get("server_id")

    # a running server on a host that cannot hot-plug: refused before any task, nothing changes
    r = ctl.climc("server-attach-disk", "vm-disks", "vm-data")
    assert r.returncode != 0 and "attach_disk_hot" in r.stderr and "stop the server first" in r.stderr, r.stderr
    assert server(ctl, "vm-disks")["status"] == "running" and disk_row(ctl, "vm-data")["status"] == "ready"

    # stopped: attach, and it is the server's second disk
    assert ctl.climc("server-stop", "vm-disks").returncode == 0
    settled(ctl, "vm-disks", "ready", "stopped")
    assert ctl.climc("server-attach-disk", "vm-disks", "vm-data").returncode == 0
    srv = settled(ctl, "vm-disks", "ready", "attached")
    assert [(d["index"], d["id"]) for d in srv["disks_info"]][1:] == [(1, made["id"])]
    row = disk_row(ctl, "vm-data")
    assert row["status"] == "ready" and row["server_id"] == srv["id"]
    path = access_path(ctl, made["id"])
    assert path.startswith(str(inst)) and Path(path).exists()
    assert path in (inst / "domain.xml").read_text()  # the guest's definition has it

    # detach: the disk is free again, its file kept for a later attach
    assert ctl.climc("server-detach-disk", "vm-disks", "vm-data").returncode == 0
    srv = settled(ctl, "vm-disks", "ready", "detached")
    assert [d["index"] for d in srv["disks_info"]] == [0]
    row = disk_row(ctl, "vm-data")
    assert row["status"] == "ready" and not row.get("server_id")
    assert Path(path).exists() and path not in (inst / "domain.xml").read_text()

    # attached again (the same file back); the server starts with it and stays operable
    assert ctl.climc("server-attach-disk", "vm-disks", "vm-data").returncode == 0
    srv = settled(ctl, "vm-disks", "ready", "re-attached")
    assert [d["index"] for d in srv["disks_info"]] == [0, 1]
    assert access_path(ctl, made["id"]) == path and path in (inst / "domain.xml").read_text()
    assert ctl.climc("server-start", "vm-disks").returncode == 0
    settled(ctl, "vm-disks", "running", "started with the data disk")
    r = ctl.climc("server-detach-disk", "vm-disks", "vm-data")  # running: refused as well
    assert r.returncode != 0 and "attach_disk_hot" in r.stderr, r.stderr
    assert ctl.climc("server-stop", "vm-disks").returncode == 0
    srv = settled(ctl, "vm-disks", "ready", "stopped again")
    # the system disk is refused before any task starts
    root = srv["disks_info"][0]["id"]
    r = ctl.climc("server-detach-disk", "vm-disks", root)
    assert r.returncode != 0 and "system disk" in r.stderr + r.stdout

    # rebuild the root from another image: a fresh system disk on it, the data disk kept, running again
    root_file = Path(access_path(ctl, root))
    root_file.write_bytes(root_file.read_bytes() + b"old-system-writes")
    r = ctl.climc("server-rebuild-root", "vm-disks", "--image", "tiny-two")
    assert r.returncode == 0, r.stderr
    srv = settled(ctl, "vm-disks", "running", "rebuilt (auto-start)")
    two = ctl.api.get("/api/s/image/v1/images/tiny-two").json()["image"]["id"]
    assert srv["disks_info"][0]["image_id"] == two
    assert [d["id"] for d in srv["disks_info"]] == [root, made["id"]] and srv["power_status"] == "on"
    assert b"old-system-writes" not in root_file.read_bytes()
    if shutil.which("qemu-img"):  # a simulated host without qemu-img has sparse files instead
        info = subprocess.run(["qemu-img", "info", "-U", "--output=json", str(root_file)], capture_output=True,
                              text=True, check=True)
        assert two in json.loads(info.stdout)["backing-filename"], info.stdout
    assert Path(path).exists() and path in (inst / "domain.xml").read_text()
    assert disk_row(ctl, "vm-data")["server_id"] == srv["id"]

    assert ctl.climc("server-delete", "-f", "vm-disks").returncode == 0
    wait_for(lambda: ctl.api.get(f"{B}/servers/{srv['id']}").status_code == 404, 60, "server gone")
    assert disk_row(ctl, "vm-data")["status"] == "ready"  # attached after create: kept (auto_delete off)
    # ... and its data with it: the file moved out of the deleted instance, the row says where
    kept = access_path(ctl, made["id"])
    assert kept != path and Path(kept).exists() and not Path(path).exists() and not inst.exists()
    assert kept.startswith(str(agent.data / "disks")), kept
    Path(kept).write_bytes(Path(kept).read_bytes()[:4096] + b"data-that-outlives-its-server")
    # a new server gets the same disk, with that data, at that path
    r = ctl.climc("server-create", "vm-heir", "--disk", "tiny", "--net", "default")
    assert r.returncode == 0, r.stderr
    heir = settled(ctl, "vm-heir", "ready", "heir created")
    assert ctl.climc("server-attach-disk", "vm-heir", "vm-data").returncode == 0
    heir = settled(ctl, "vm-heir", "ready", "heir has the disk")
    assert access_path(ctl, made["id"]) == kept
    assert kept in (agent.data / "instances" / heir["id"] / "domain.xml").read_text()
    assert Path(kept).read_bytes().endswith(b"data-that-outlives-its-server")
    assert ctl.climc("server-delete", "-f", "vm-heir").returncode == 0
    wait_for(lambda: ctl.api.get(f"{B}/servers/{heir['id']}").status_code == 404, 60, "heir gone")
    assert Path(kept).exists()  # kept again, in place
    # deleting the disk deletes its data: the host removes the file, then the row goes
    assert ctl.climc("disk-delete", "vm-data").returncode == 0
    wait_for(lambda: ctl.api.get(f"{B}/disks/{made['id']}").status_code == 404, 60, "disk gone")
    assert not Path(kept).exists()


def _config_drive(agent: AgentProc, server_id: str) -> dict[str, Any]:
    """The user-data the host wrote into the server's config drive (what cloud-init will apply)."""
    import io

    import pycdlib
    import yaml

    iso = pycdlib.PyCdlib()
    iso.open(str(agent.data / "instances" / server_id / "config.iso"))
    try:
        buf = io.BytesIO()
        iso.get_file_from_iso_fp(buf, rr_path="/user-data")
    finally:
        iso.close()
    return dict(yaml.safe_load(buf.getvalue().decode().removeprefix("#cloud-config")) or {})


def test_rebuild_root_sets_a_new_password_and_keypair(cloud: tuple[Controller, AgentProc]) -> None:
    pytest.importorskip("pycdlib", reason="pycdlib not installed (pip install '.[kvm]')")
    from drivers.kvm.configdrive import sha512_crypt

    ctl, agent = cloud
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDy0pCp1c7N8y3mR0nQm0ZxJ8S4fQd8mHq6mYHc9c3vS rebuild@test"
    assert ctl.climc("keypair-create", "kp-rebuild", "--public-key", key).returncode == 0
    assert ctl.climc("server-create", "vm-rb", "--disk", "tiny", "--net", "default").returncode == 0
    srv = settled(ctl, "vm-rb", "ready", "created")
    assert "chpasswd" not in _config_drive(agent, srv["id"])  # created without a password

    # a password the policy refuses: a 400 naming the rule, before any task, nothing changes
    r = ctl.climc("server-rebuild-root", "vm-rb", "--password", "abc")
    assert r.returncode != 0 and "at least" in r.stderr, r.stderr
    assert server(ctl, "vm-rb")["status"] == "ready" and not server(ctl, "vm-rb")["active_task_id"]
    r = ctl.climc("server-rebuild-root", "vm-rb", "--keypair", "no-such-keypair")
    assert r.returncode != 0 and "no-such-keypair" in r.stderr, r.stderr  # a bad reference: 400

    pw = "Rebuilt-" + srv["id"][:8]
    r = ctl.climc("server-rebuild-root", "vm-rb", "--password", pw, "--keypair", "kp-rebuild")
    assert r.returncode == 0, r.stderr
    srv = settled(ctl, "vm-rb", "ready", "rebuilt")
    ud = _config_drive(agent, srv["id"])
    (user,) = ud["chpasswd"]["users"]
    assert user["password"] == sha512_crypt(pw, user["password"].split("$")[2])  # the new root gets it
    assert key in ud.get("ssh_authorized_keys", []) or key in str(ud)
    kp = climc_json(ctl, "keypair-show", "kp-rebuild")
    assert ctl.api.get(f"{B}/servers/{srv['id']}").json()["server"]["keypair_id"] == kp["id"]
    tasks = ctl.api.get(f"{B}/tasks", params={"limit": 2048}).text
    assert pw not in tasks and pw not in ctl.log_path.read_text()  # never in clear at rest or in logs
    assert ctl.climc("server-delete", "-f", "vm-rb").returncode == 0
    wait_for(lambda: ctl.api.get(f"{B}/servers/{srv['id']}").status_code == 404, 60, "server gone")


def test_another_projects_member_cannot_see_or_act_on_these_servers_and_disks(
        cloud: tuple[Controller, AgentProc]) -> None:
    import httpx

    from tests.e2e.test_agent_support import outsider_token

    ctl, _agent = cloud
    r = ctl.climc("server-create", "vm-private", "--disk", "tiny", "--net", "default")
    assert r.returncode == 0, r.stderr
    srv = settled(ctl, "vm-private", "ready", "private server")
    disk = climc_json(ctl, "disk-create", "d-private", "16m", "--storage", srv["disks_info"][0]["storage_id"])
    with httpx.Client(base_url=ctl.url, headers={"X-Auth-Token": outsider_token(ctl)}, timeout=30) as c:
        assert c.get(f"{B}/disks/{disk['id']}").status_code == 404
        for action, body in (("attachdisk", {"disk_id": disk["id"]}), ("detachdisk", {"disk_id": disk["id"]}),
                             ("rebuild-root", {"password": "Outsider-123"}), ("migrate", {}),
                             ("live-migrate", {})):
            r = c.post(f"{B}/servers/{srv['id']}/{action}", json=body)
            assert r.status_code == 404, (action, r.status_code, r.text)
        assert c.delete(f"{B}/disks/{disk['id']}").status_code == 404  # disk-delete: not theirs to remove
    # nothing changed for the owner
    assert server(ctl, "vm-private")["status"] == "ready" and disk_row(ctl, "d-private")["status"] == "ready"
    assert ctl.climc("server-delete", "-f", "vm-private").returncode == 0
    wait_for(lambda: ctl.api.get(f"{B}/servers/{srv['id']}").status_code == 404, 60, "private server gone")
