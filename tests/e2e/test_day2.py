"""Day-2 server operations end to end (fast tier): climc → a real controller → the real `ocadm agent`
on libvirt's test:/// (its disks real qcow2 files made with qemu-img where it is installed).

The recycle bin as Cloudpods has it (the guest stopped, the disks in the bin with their server, both
back on cancel-delete, both gone on purge, the addresses held until then), names unique in a project,
a kvm server without a system disk refused.
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
    with agent_host(tmp_path_factory.mktemp("day2"), "day2-node") as cloud:
        yield cloud


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
                      60, "stopped in the recycle bin")[0]
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
    wait_for(lambda: not ctl.api.get(f"{B}/servers/{srv['id']}").json()["server"]["active_task_id"], 60, "stopped")
    assert ctl.climc("server-purge", "vm-bin").returncode == 0
    wait_for(lambda: ctl.api.get(f"{B}/servers/{srv['id']}").status_code == 404, 60, "purged")
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


def disk_file(ctl: Controller, disk_id: str) -> str:
    r = ctl.api.get(f"{B}/disks/{disk_id}")
    assert r.status_code == 200, r.text
    return str(r.json()["disk"]["access_path"])


def guest_write(path: str, pattern: int) -> None:
    """Write 64 KiB of ``pattern`` at offset 1 MiB as the guest would see it (qemu-io: through qcow2)."""
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", f"write -P {pattern} 1M 64k", path], check=True,
                   capture_output=True)


def guest_reads(path: str, pattern: int) -> bool:
    r = subprocess.run(["qemu-io", "-f", "qcow2", "-r", "-U", "-c", f"read -P {pattern} 1M 64k", path],
                       capture_output=True, text=True)
    return r.returncode == 0 and "Pattern verification failed" not in r.stdout + r.stderr


def file_snapshots(path: str) -> set[str]:
    out = subprocess.run(["qemu-img", "info", "-U", "--output=json", path], check=True, capture_output=True,
                         text=True).stdout
    return {s["name"] for s in json.loads(out).get("snapshots") or []}


def snap_row(ctl: Controller, name: str) -> dict[str, Any]:
    r = ctl.api.get(f"{B}/snapshots/{name}")
    assert r.status_code == 200, r.text
    return dict(r.json()["snapshot"])


def snap_ready(ctl: Controller, name: str) -> dict[str, Any]:
    return dict(wait_for(lambda: (s := snap_row(ctl, name))["status"] == "ready" and s, 60, f"snapshot {name}"))


def test_snapshot_then_disk_reset_brings_the_data_back_and_delete_removes_it(
        cloud: tuple[Controller, AgentProc]) -> None:
    if not (shutil.which("qemu-img") and shutil.which("qemu-io")):
        from tests.support.peers import need

        need(False, "qemu-img/qemu-io missing (apt install qemu-utils)")
    ctl, agent = cloud
    host = ctl.api.get(f"{B}/hosts/{agent.host_id}").json()["host"]
    assert "snapshot" in host["capabilities"]
    r = ctl.climc("server-create", "vm-snap", "--disk", "tiny", "--disk", "64m", "--net", "default")
    assert r.returncode == 0, r.stderr
    srv = settled(ctl, "vm-snap", "ready", "created")
    data = next(d for d in srv["disks_info"] if d["index"] == 1)
    path = disk_file(ctl, data["id"])
    used = ctl.api.get(f"{B}/quotas").json()["quota"]["usage.snapshot"]
    guest_write(path, 0x61)

    # a snapshot of a stopped server's disk: ready, inside the disk's file, counted in the quota
    made = climc_json(ctl, "disk-create-snapshot", "vm-snap-disk1", "before")
    assert made["name"] == "before" and made["disk_id"] == data["id"]
    before = snap_ready(ctl, "before")
    assert before["id"] in file_snapshots(path) and before["size"] == 64
    assert ctl.api.get(f"{B}/quotas").json()["quota"]["usage.snapshot"] == used + 1
    assert "before" in {s["name"] for s in climc_json(ctl, "snapshot-list", "--disk", "vm-snap-disk1")["data"]}
    guest_write(path, 0x62)

    # ... and of a running one (snapshot-create, Cloudpods' other spelling)
    assert ctl.climc("server-start", "vm-snap").returncode == 0
    settled(ctl, "vm-snap", "running", "running")
    assert climc_json(ctl, "snapshot-create", "while-running", "--disk", data["id"])["status"] == "creating"
    running = snap_ready(ctl, "while-running")
    assert running["id"] in file_snapshots(path)
    settled(ctl, "vm-snap", "running", "the server let go")
    # a reset needs the server stopped: 400 naming the status, nothing changes
    r = ctl.api.post(f"{B}/disks/{data['id']}/disk-reset", json={"snapshot_id": before["id"]})
    assert r.status_code == 400 and r.json()["class"] == "InvalidStatusError" and "stop" in r.json()["details"]
    assert ctl.climc("server-stop", "vm-snap").returncode == 0
    settled(ctl, "vm-snap", "ready", "stopped")
    # a snapshot of another disk, a snapshot that does not exist: 400
    root = next(d for d in srv["disks_info"] if d["index"] == 0)
    r = ctl.climc("disk-reset", root["id"], "before")
    assert r.returncode != 0 and "not a snapshot of disk" in r.stderr, r.stderr
    r = ctl.climc("disk-reset", "vm-snap-disk1", "no-such-snapshot")
    assert r.returncode != 0 and "no-such-snapshot" in r.stderr, r.stderr
    assert not guest_reads(path, 0x61) and guest_reads(path, 0x62)

    # disk-reset: what the guest wrote before the snapshot is back
    assert ctl.climc("disk-reset", "vm-snap-disk1", "before").returncode == 0
    wait_for(lambda: (d := ctl.api.get(f"{B}/disks/{data['id']}").json()["disk"])["status"] == "ready"
             and not d["active_task_id"], 60, "reset")
    assert guest_reads(path, 0x61) and not guest_reads(path, 0x62)
    assert ctl.climc("server-start", "vm-snap").returncode == 0
    settled(ctl, "vm-snap", "running", "starts after the reset")

    # snapshot-delete: gone from the list, the file and the quota
    assert ctl.climc("snapshot-delete", "while-running").returncode == 0
    wait_for(lambda: ctl.api.get(f"{B}/snapshots/{running['id']}").status_code == 404, 60, "deleted")
    assert running["id"] not in file_snapshots(path) and before["id"] in file_snapshots(path)
    assert ctl.api.get(f"{B}/quotas").json()["quota"]["usage.snapshot"] == used + 1

    # the quota: at the limit, the next snapshot is refused before anything starts
    assert ctl.climc("quota-set", "--snapshot", str(used + 1)).returncode == 0
    try:
        r = ctl.climc("disk-create-snapshot", "vm-snap-disk1", "one-too-many")
        assert r.returncode != 0 and "snapshot" in r.stderr and "quota" in r.stderr.lower(), r.stderr
        assert ctl.api.get(f"{B}/snapshots/one-too-many").status_code == 404
    finally:
        assert ctl.climc("quota-set", "--snapshot", "100").returncode == 0

    # the server purged: its disks' snapshots go with them (they were inside the files)
    settled(ctl, "vm-snap", "running", "idle")
    assert ctl.climc("server-delete", "-f", "vm-snap").returncode == 0
    wait_for(lambda: ctl.api.get(f"{B}/servers/{srv['id']}").status_code == 404, 60, "purged")
    assert ctl.api.get(f"{B}/snapshots/{before['id']}").status_code == 404
    assert ctl.api.get(f"{B}/quotas").json()["quota"]["usage.snapshot"] == used


def test_another_projects_member_gets_404_on_these_snapshots(cloud: tuple[Controller, AgentProc]) -> None:
    import httpx

    from tests.e2e.test_agent_support import outsider_token

    ctl, _agent = cloud
    assert ctl.climc("server-create", "vm-mine", "--disk", "tiny", "--net", "default").returncode == 0
    srv = settled(ctl, "vm-mine", "ready", "created")
    root = srv["disks_info"][0]["id"]
    snap = climc_json(ctl, "disk-create-snapshot", root, "mine")
    snap_ready(ctl, "mine")
    with httpx.Client(base_url=ctl.url, headers={"X-Auth-Token": outsider_token(ctl)}, timeout=30) as c:
        assert c.get(f"{B}/snapshots/{snap['id']}").status_code == 404
        assert snap["id"] not in json.dumps(c.get(f"{B}/snapshots").json())
        assert c.delete(f"{B}/snapshots/{snap['id']}").status_code == 404
        assert c.post(f"{B}/disks/{root}/create-snapshot", json={"name": "theirs"}).status_code == 404
        assert c.post(f"{B}/disks/{root}/disk-reset", json={"snapshot_id": snap["id"]}).status_code == 404
        r = c.post(f"{B}/snapshots", json={"snapshot": {"name": "theirs", "disk": root}})
        assert r.status_code == 400 and "not found" in r.text, r.text  # a reference in a body: 400 naming it
    assert snap_row(ctl, "mine")["status"] == "ready"
    assert ctl.climc("server-delete", "-f", "vm-mine").returncode == 0
    wait_for(lambda: ctl.api.get(f"{B}/servers/{srv['id']}").status_code == 404, 60, "gone")


def _set_capabilities(ctl: Controller, host_id: str, caps: list[str]) -> None:
    """What the host registered, changed in place (as if its driver declared ``caps``)."""
    from sqlalchemy import update
    from sqlalchemy.orm import Session

    from core.db.engine import Database
    from core.region.models import Host

    db = Database(ctl.db_url)
    try:
        with Session(db.engine) as s, s.begin():
            s.execute(update(Host).where(Host.id == host_id).values(capabilities=caps))
    finally:
        db.dispose()


def test_a_host_without_the_snapshot_capability_is_refused_before_any_task(
        cloud: tuple[Controller, AgentProc]) -> None:
    ctl, agent = cloud
    caps = ctl.api.get(f"{B}/hosts/{agent.host_id}").json()["host"]["capabilities"]
    assert ctl.climc("server-create", "vm-nocap", "--disk", "tiny", "--net", "default").returncode == 0
    srv = settled(ctl, "vm-nocap", "ready", "created")
    _set_capabilities(ctl, agent.host_id, [c for c in caps if c != "snapshot"])
    try:
        for r in (ctl.api.post(f"{B}/disks/{srv['disks_info'][0]['id']}/create-snapshot", json={"name": "nocap"}),
                  ctl.api.post(f"{B}/snapshots", json={"snapshot": {"name": "nocap",
                                                                    "disk": srv["disks_info"][0]["id"]}})):
            assert r.status_code == 400 and "snapshot" in r.json()["details"] and "day2-node" in r.json()["details"], \
                r.text
        assert ctl.api.get(f"{B}/snapshots/nocap").status_code == 404
        assert not server(ctl, "vm-nocap")["active_task_id"]
    finally:
        _set_capabilities(ctl, agent.host_id, caps)
    assert ctl.climc("server-delete", "-f", "vm-nocap").returncode == 0
    wait_for(lambda: ctl.api.get(f"{B}/servers/{srv['id']}").status_code == 404, 60, "gone")


def test_server_save_image_makes_an_image_a_second_server_boots_with_the_same_data(
        cloud: tuple[Controller, AgentProc]) -> None:
    if not (shutil.which("qemu-img") and shutil.which("qemu-io")):
        from tests.support.peers import need

        need(False, "qemu-img/qemu-io missing (apt install qemu-utils)")
    ctl, agent = cloud
    assert "save_image" in ctl.api.get(f"{B}/hosts/{agent.host_id}").json()["host"]["capabilities"]
    r = ctl.climc("server-create", "vm-gold", "--disk", "tiny:64m", "--disk", "32m", "--net", "default",
                  "--auto-start")
    assert r.returncode == 0, r.stderr
    srv = settled(ctl, "vm-gold", "running", "running")
    root = next(d for d in srv["disks_info"] if d["index"] == 0)
    # a running server: 400 naming the status, no image made
    r = ctl.climc("server-save-image", "vm-gold", "gold-img")
    assert r.returncode != 0 and "InvalidStatusError" in r.stderr and "running" in r.stderr, r.stderr
    assert ctl.api.get("/api/s/image/v1/images/gold-img").status_code == 404
    assert ctl.climc("server-stop", "vm-gold").returncode == 0
    settled(ctl, "vm-gold", "ready", "stopped")
    guest_write(disk_file(ctl, root["id"]), 0x63)  # what the guest installed

    out = climc_json(ctl, "server-save-image", "vm-gold", "gold-img")
    assert out["status"] == "save_image" and out["image_name"] == "gold-img"
    settled(ctl, "vm-gold", "ready", "saved")
    img = ctl.api.get("/api/s/image/v1/images/gold-img").json()["image"]
    assert img["status"] == "active" and img["disk_format"] == "qcow2" and img["size"] > 0, img
    # the host compressed it (zstd clusters: fewer bytes for glance to take in and for hosts to fetch)
    info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(ctl.data_dir / "images" / img["id"])],
                                     check=True, capture_output=True, text=True).stdout)
    assert info["format-specific"]["data"]["compression-type"] == "zstd", info
    # glance's own intake accounted for it: the project's image bytes include it
    tenant = srv["tenant_id"]
    q = ctl.api.get(f"/api/s/image/v1/image_quotas/{tenant}").json()["image_quota"]
    assert q["used_bytes"] >= img["size"]

    # a second server from it sees what the first one wrote
    r = ctl.climc("server-create", "vm-clone", "--disk", "gold-img", "--net", "default")
    assert r.returncode == 0, r.stderr
    clone = settled(ctl, "vm-clone", "ready", "clone deployed")
    assert guest_reads(disk_file(ctl, clone["disks_info"][0]["id"]), 0x63)

    # disk-save: a data disk of the stopped server
    data = next(d for d in srv["disks_info"] if d["index"] == 1)
    # Cloudpods' disk-save ID NAME OSTYPE: the OS type is the new image's (a data disk inherits none)
    assert climc_json(ctl, "disk-save", data["id"], "gold-data", "Linux")["image_name"] == "gold-data"
    settled(ctl, "vm-gold", "ready", "data disk saved")
    saved = ctl.api.get("/api/s/image/v1/images/gold-data").json()["image"]
    assert saved["status"] == "active" and saved["properties"]["os_type"] == "Linux", saved

    # glance's intake refuses (the project's image bytes are full): no half image, the server says why
    ctl.api.put(f"/api/s/image/v1/image_quotas/{tenant}", json={"image_quota": {"max_bytes": q["used_bytes"]}}
                ).raise_for_status()
    try:
        assert ctl.climc("server-save-image", "vm-gold", "gold-too-much").returncode == 0
        s = settled(ctl, "vm-gold", "ready", "save refused")
        assert "save-image failed" in s["status_reason"] and "quota" in s["status_reason"].lower(), s
        assert ctl.api.get("/api/s/image/v1/images/gold-too-much").status_code == 404
    finally:
        # back to what it was (-1 is no "unlimited" here: a 400 that left the quota full for later tests)
        ctl.api.put(f"/api/s/image/v1/image_quotas/{tenant}", json={"image_quota": {"max_bytes": q["max_bytes"]}}
                    ).raise_for_status()
    for n in ("vm-gold", "vm-clone"):
        assert ctl.climc("server-delete", "-f", n).returncode == 0
    assert not (agent.data / "saving").exists() or not list((agent.data / "saving").iterdir())


def virtual_mb(path: str) -> int:
    out = subprocess.run(["qemu-img", "info", "-U", "--output=json", path], check=True, capture_output=True,
                         text=True).stdout
    return int(json.loads(out)["virtual-size"]) >> 20


def test_disk_resize_grows_only_and_the_quota_follows(cloud: tuple[Controller, AgentProc]) -> None:
    if not shutil.which("qemu-img"):
        from tests.support.peers import need

        need(False, "qemu-img missing (apt install qemu-utils)")
    import httpx

    from tests.e2e.test_agent_support import outsider_token

    ctl, _agent = cloud
    r = ctl.climc("server-create", "vm-grow", "--disk", "tiny:64m", "--disk", "32m", "--net", "default",
                  "--auto-start")
    assert r.returncode == 0, r.stderr
    srv = settled(ctl, "vm-grow", "running", "running")
    data = next(d for d in srv["disks_info"] if d["index"] == 1)
    path = disk_file(ctl, data["id"])
    used = ctl.api.get(f"{B}/quotas").json()["quota"]["usage.storage"]
    for size, words in (("16m", "only grow"), ("32m", "already"), ("nonsense", "size")):
        r = ctl.climc("disk-resize", data["id"], size)
        assert r.returncode != 0 and words in r.stderr, (size, r.stderr)
    with httpx.Client(base_url=ctl.url, headers={"X-Auth-Token": outsider_token(ctl)}, timeout=30) as c:
        assert c.post(f"{B}/disks/{data['id']}/resize", json={"size": "48m"}).status_code == 404
    assert virtual_mb(path) == 32

    # a running server's data disk, then its system disk
    out = climc_json(ctl, "disk-resize", data["id"], "48m")
    assert out["status"] == "resizing"
    wait_for(lambda: (d := ctl.api.get(f"{B}/disks/{data['id']}").json()["disk"])["status"] == "ready"
             and d["disk_size"] == 48 and not d["active_task_id"], 60, "resized")
    assert virtual_mb(path) == 48
    assert ctl.api.get(f"{B}/quotas").json()["quota"]["usage.storage"] == used + 16
    root = next(d for d in srv["disks_info"] if d["index"] == 0)
    assert ctl.climc("disk-resize", root["id"], "96m").returncode == 0
    wait_for(lambda: ctl.api.get(f"{B}/disks/{root['id']}").json()["disk"]["disk_size"] == 96, 60, "root resized")
    assert virtual_mb(disk_file(ctl, root["id"])) == 96
    s = settled(ctl, "vm-grow", "running", "still running")
    assert s["disk"] == 96 + 48
    # the grown disks give it all back when the server goes
    assert ctl.climc("server-delete", "-f", "vm-grow").returncode == 0
    wait_for(lambda: ctl.api.get(f"{B}/servers/{srv['id']}").status_code == 404, 60, "gone")
    assert ctl.api.get(f"{B}/quotas").json()["quota"]["usage.storage"] == used - 64 - 32


def test_metadata_and_user_tags_of_a_server(cloud: tuple[Controller, AgentProc]) -> None:
    import httpx

    from tests.e2e.test_agent_support import outsider_token

    ctl, _agent = cloud
    assert ctl.climc("server-create", "vm-meta", "--disk", "tiny", "--net", "default").returncode == 0
    srv = settled(ctl, "vm-meta", "ready", "created")
    assert climc_json(ctl, "server-set-metadata", "vm-meta", "owner=alice", "tier=web") == \
        {"owner": "alice", "tier": "web"}
    assert climc_json(ctl, "server-add-user-metadata", "vm-meta", "env=prod")["user:env"] == "prod"
    got = climc_json(ctl, "server-set-user-metadata", "vm-meta", "team=ops")
    assert got == {"owner": "alice", "tier": "web", "user:team": "ops"}, got
    assert climc_json(ctl, "server-set-metadata", "vm-meta", "tier=") == {"owner": "alice", "user:team": "ops"}
    assert climc_json(ctl, "server-metadata", "vm-meta") == {"owner": "alice", "user:team": "ops"}
    assert server(ctl, "vm-meta")["metadata"] == {"owner": "alice", "user:team": "ops"}
    # bad input: 400 naming it, nothing changes
    for body, words in (({"a b": "1"}, "a b"), ({"k": "x" * 2000}, "longer"), ({"k": {"nested": 1}}, "string"),
                        ({f"k{i}": "v" for i in range(70)}, "at most")):
        r = ctl.api.post(f"{B}/servers/vm-meta/metadata", json=body)
        assert r.status_code == 400 and words in r.json()["details"], r.text
    r = ctl.climc("server-set-metadata", "vm-meta", "no-equals-sign")
    assert r.returncode != 0 and "KEY=VALUE" in r.stderr
    assert climc_json(ctl, "server-metadata", "vm-meta") == {"owner": "alice", "user:team": "ops"}
    with httpx.Client(base_url=ctl.url, headers={"X-Auth-Token": outsider_token(ctl)}, timeout=30) as c:
        assert c.get(f"{B}/servers/{srv['id']}/metadata").status_code == 404
        assert c.post(f"{B}/servers/{srv['id']}/metadata", json={"owner": "mallory"}).status_code == 404
    assert climc_json(ctl, "server-metadata", "vm-meta")["owner"] == "alice"
    acts = climc_json(ctl, "action-list", "--limit", "200")["data"]
    assert any(a.get("obj_id") == srv["id"] and a.get("action") == "set-user-metadata" for a in acts), acts[:3]
    assert ctl.climc("server-delete", "-f", "vm-meta").returncode == 0


def test_keypair_create_without_a_key_generates_one_and_shows_the_private_key_once(
        cloud: tuple[Controller, AgentProc], tmp_path: Path) -> None:
    import os

    from cryptography.hazmat.primitives import serialization

    ctl, _agent = cloud
    made = climc_json(ctl, "keypair-create", "kp-generated")
    assert made["scheme"] == "RSA" and made["public_key"].startswith("ssh-rsa ")
    key = serialization.load_pem_private_key(made["private_key"].encode(), None)
    assert key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
                                         ).decode() == made["public_key"]
    shown = climc_json(ctl, "keypair-show", "kp-generated")
    assert "private_key" not in shown and shown["fingerprint"] == made["fingerprint"]
    assert made["private_key"] not in json.dumps(climc_json(ctl, "keypair-list"))
    # ... or written to a new 0600 file, not printed
    path = tmp_path / "id_ed25519"
    r = ctl.climc("keypair-create", "kp-file", "--scheme", "ED25519", "--private-key-file", str(path))
    assert r.returncode == 0 and "BEGIN" not in r.stdout, r.stdout
    assert path.read_text().startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert (os.stat(path).st_mode & 0o777) == 0o600
    assert climc_json(ctl, "keypair-show", "kp-file")["public_key"].startswith("ssh-ed25519 ")
    r = ctl.api.post(f"{B}/keypairs", json={"keypair": {"name": "kp-bad", "scheme": "DSA"}})
    assert r.status_code == 400 and "scheme" in r.json()["details"], r.text
    for n in ("kp-generated", "kp-file"):
        assert ctl.climc("keypair-delete", n).returncode == 0


def test_snapshots_go_to_the_recycle_bin_with_their_disk(cloud: tuple[Controller, AgentProc]) -> None:
    if not shutil.which("qemu-img"):
        from tests.support.peers import need

        need(False, "qemu-img missing (apt install qemu-utils)")
    ctl, _agent = cloud
    assert ctl.climc("server-create", "vm-binsnap", "--disk", "tiny", "--net", "default").returncode == 0
    srv = settled(ctl, "vm-binsnap", "ready", "created")
    climc_json(ctl, "disk-create-snapshot", srv["disks_info"][0]["id"], "binsnap")
    snap_ready(ctl, "binsnap")
    assert "binsnap" in names(ctl, "snapshot-list")
    assert ctl.climc("server-delete", "vm-binsnap").returncode == 0
    wait_for(lambda: "binsnap" not in names(ctl, "snapshot-list"), 60, "snapshot in the bin")
    assert "binsnap" in names(ctl, "snapshot-list", "--pending-delete")
    assert ctl.climc("server-cancel-delete", "vm-binsnap").returncode == 0
    assert "binsnap" in names(ctl, "snapshot-list")
    assert ctl.climc("server-delete", "-f", "vm-binsnap").returncode == 0
    wait_for(lambda: ctl.api.get(f"{B}/servers/{srv['id']}").status_code == 404, 60, "purged")
    assert "binsnap" not in names(ctl, "snapshot-list", "--pending-delete")


def test_attach_and_detach_a_network_through_climc(cloud: tuple[Controller, AgentProc]) -> None:
    import httpx

    from tests.e2e.test_agent_support import outsider_token

    ctl, agent = cloud
    assert "attach_nic" in ctl.api.get(f"{B}/hosts/{agent.host_id}").json()["host"]["capabilities"]
    assert ctl.climc("server-create", "vm-nic", "--disk", "tiny", "--net", "default", "--auto-start").returncode == 0
    srv = settled(ctl, "vm-nic", "running", "running")
    inst = agent.data / "instances" / srv["id"]
    ips_before = ctl.api.get(f"{B}/quotas").json()["quota"]["usage.ips"]
    # test:/// cannot hot-plug: a running server is refused before any task (400 naming the capability)
    r = ctl.climc("server-attach-network", "vm-nic", "default")
    assert r.returncode != 0 and "attach_nic_hot" in r.stderr and "stop the server first" in r.stderr, r.stderr
    assert len(server(ctl, "vm-nic")["nics"]) == 1
    assert ctl.climc("server-stop", "vm-nic").returncode == 0
    settled(ctl, "vm-nic", "ready", "stopped")

    taken = srv["nics"][0]["ip_addr"]
    r = ctl.climc("server-attach-network", "vm-nic", f"default:{taken}")  # IPAM: never the same address twice
    assert r.returncode != 0 and "already in use" in r.stderr, r.stderr
    assert ctl.climc("server-attach-network", "vm-nic", "default").returncode == 0
    s = settled(ctl, "vm-nic", "ready", "attached")
    assert [n["index"] for n in s["nics"]] == [0, 1] and s["nics"][1]["ip_addr"] != taken
    new = s["nics"][1]
    assert new["mac"] in (inst / "domain.xml").read_text() and new["mac"] in (inst / "nics.json").read_text()
    assert ctl.api.get(f"{B}/quotas").json()["quota"]["usage.ips"] == ips_before + 1
    with httpx.Client(base_url=ctl.url, headers={"X-Auth-Token": outsider_token(ctl)}, timeout=30) as c:
        assert c.post(f"{B}/servers/{srv['id']}/detachnetwork", json={"ip_addr": new["ip_addr"]}).status_code == 404
        assert c.post(f"{B}/servers/{srv['id']}/attachnetwork", json={"network": "default"}).status_code == 404
    r = ctl.climc("server-detach-network", "vm-nic", "--ip-addr", "10.255.255.255")
    assert r.returncode != 0 and "no such NIC" in r.stderr, r.stderr
    assert ctl.climc("server-start", "vm-nic").returncode == 0
    settled(ctl, "vm-nic", "running", "boots with two NICs")
    assert ctl.climc("server-stop", "vm-nic").returncode == 0
    settled(ctl, "vm-nic", "ready", "stopped again")

    assert ctl.climc("server-detach-network", "vm-nic", new["mac"].upper()).returncode == 0  # Cloudpods' MACORIP
    s = settled(ctl, "vm-nic", "ready", "detached")
    assert [n["ip_addr"] for n in s["nics"]] == [taken]
    assert new["mac"] not in (inst / "domain.xml").read_text() and new["mac"] not in (inst / "nics.json").read_text()
    assert ctl.api.get(f"{B}/quotas").json()["quota"]["usage.ips"] == ips_before
    # the released address can be taken again; Cloudpods' SERVER NETDESC...: two NICs, one after the other
    assert ctl.climc("server-attach-network", "vm-nic", f"default:{new['ip_addr']}", "default").returncode == 0
    s = settled(ctl, "vm-nic", "ready", "re-attached")
    assert s["nics"][1]["ip_addr"] == new["ip_addr"] and [n["index"] for n in s["nics"]] == [0, 1, 2], s["nics"]
    assert ctl.climc("server-delete", "-f", "vm-nic").returncode == 0
    wait_for(lambda: ctl.api.get(f"{B}/servers/{srv['id']}").status_code == 404, 60, "gone")
    assert ctl.api.get(f"{B}/quotas").json()["quota"]["usage.ips"] == ips_before - 1


def isnap_row(ctl: Controller, ident: str) -> dict[str, Any]:
    r = ctl.api.get(f"{B}/instance_snapshots/{ident}")
    assert r.status_code == 200, r.text
    return dict(r.json()["instance_snapshot"])


def test_instance_snapshot_takes_every_disk_and_a_clone_boots_from_it(cloud: tuple[Controller, AgentProc]) -> None:
    import httpx

    from tests.e2e.test_agent_support import outsider_token

    if not (shutil.which("qemu-img") and shutil.which("qemu-io")):
        from tests.support.peers import need

        need(False, "qemu-img/qemu-io missing (apt install qemu-utils)")
    ctl, agent = cloud
    r = ctl.climc("server-create", "vm-is", "--disk", "tiny", "--disk", "64m", "--net", "default", "--ncpu", "2",
                  "--mem-spec", "768m")
    assert r.returncode == 0, r.stderr
    srv = settled(ctl, "vm-is", "ready", "created")
    paths = {d["index"]: disk_file(ctl, d["id"]) for d in srv["disks_info"]}
    used = ctl.api.get(f"{B}/quotas").json()["quota"]["usage.snapshot"]
    guest_write(paths[1], 0x71)
    guest_write(paths[0], 0x73)
    assert ctl.climc("server-start", "vm-is").returncode == 0
    settled(ctl, "vm-is", "running", "running")

    # every disk of the running server in one instance snapshot: one disk snapshot per disk, in its file
    made = climc_json(ctl, "instance-snapshot-create", "vm-is", "is1")
    assert made["name"] == "is1" and made["guest_id"] == srv["id"] and made["status"] == "creating"
    is1 = wait_for(lambda: (x := isnap_row(ctl, "is1"))["status"] == "ready" and x, 60, "instance snapshot")
    assert is1["snapshot_count"] == 2 and is1["guest"] == "vm-is"
    assert is1["size"] == sum(d["size"] for d in srv["disks_info"])
    disk_snaps = {s["name"]: s for s in climc_json(ctl, "snapshot-list", "--limit", "200")["data"]
                  if s["name"].startswith("is1-")}
    assert set(disk_snaps) == {"is1-disk0", "is1-disk1"}
    assert disk_snaps["is1-disk0"]["id"] in file_snapshots(paths[0])
    assert disk_snaps["is1-disk1"]["id"] in file_snapshots(paths[1])
    assert ctl.api.get(f"{B}/quotas").json()["quota"]["usage.snapshot"] == used + 2
    assert "is1" in names(ctl, "instance-snapshot-list", "--server", "vm-is")
    assert climc_json(ctl, "instance-snapshot-show", "is1")["id"] == is1["id"]
    # its disk snapshots go with it, not one by one
    r = ctl.climc("snapshot-delete", "is1-disk1")
    assert r.returncode != 0 and "instance snapshot is1" in r.stderr, r.stderr
    settled(ctl, "vm-is", "running", "the server let go")
    assert ctl.climc("server-stop", "vm-is").returncode == 0
    settled(ctl, "vm-is", "ready", "stopped")
    guest_write(paths[1], 0x72)  # after the snapshot: not in the clone

    # a clone: CPU, memory, networks and disks from the instance snapshot, on the host that keeps it
    r = ctl.climc("server-create", "vm-is-clone", "--disk", "tiny", "--instance-snapshot", "is1")
    assert r.returncode != 0 and "drop --disk" in r.stderr, r.stderr
    assert ctl.climc("server-create", "vm-is-clone", "--instance-snapshot", "is1").returncode == 0
    clone = settled(ctl, "vm-is-clone", "ready", "clone deployed")
    assert (clone["vcpu_count"], clone["vmem_size"], clone["host_id"]) == (2, 768, srv["host_id"])
    assert [(d["index"], d["size"]) for d in clone["disks_info"]] == [(d["index"], d["size"])
                                                                      for d in srv["disks_info"]]
    assert len(clone["nics"]) == 1 and clone["nics"][0]["network_id"] == srv["nics"][0]["network_id"]
    cpaths = {d["index"]: disk_file(ctl, d["id"]) for d in clone["disks_info"]}
    assert not set(cpaths.values()) & set(paths.values())
    assert guest_reads(cpaths[1], 0x71) and not guest_reads(cpaths[1], 0x72)
    assert guest_reads(cpaths[0], 0x73)
    assert guest_reads(paths[1], 0x72)  # the source disk unchanged by the copy
    assert ctl.climc("server-start", "vm-is-clone").returncode == 0
    settled(ctl, "vm-is-clone", "running", "the clone runs")

    # another project's member: 404 on the instance snapshot and the server, 400 naming it in a create
    with httpx.Client(base_url=ctl.url, headers={"X-Auth-Token": outsider_token(ctl)}, timeout=30) as c:
        assert c.get(f"{B}/instance_snapshots/{is1['id']}").status_code == 404
        assert is1["id"] not in json.dumps(c.get(f"{B}/instance_snapshots").json())
        assert c.delete(f"{B}/instance_snapshots/{is1['id']}").status_code == 404
        assert c.post(f"{B}/servers/{srv['id']}/instance-snapshot", json={"name": "theirs"}).status_code == 404
        r = c.post(f"{B}/servers", json={"server": {"name": "theirs", "instance_snapshot": is1["id"]}})
        assert r.status_code == 400 and "not found" in r.text, r.text
    assert isnap_row(ctl, "is1")["status"] == "ready"

    # instance-snapshot-delete: its disk snapshots leave the files, the list and the quota
    r = ctl.climc("instance-snapshot-delete", "is1", "--wait")  # no task id in the answer: waits for the 404
    assert r.returncode == 0 and "instance_snapshot is1: deleted" in r.stderr, r.stderr
    assert ctl.api.get(f"{B}/instance_snapshots/{is1['id']}").status_code == 404
    assert not file_snapshots(paths[0]) and not file_snapshots(paths[1])
    assert not {"is1-disk0", "is1-disk1"} & names(ctl, "snapshot-list")
    assert ctl.api.get(f"{B}/quotas").json()["quota"]["usage.snapshot"] == used
    assert guest_reads(cpaths[1], 0x71)  # the clone stands on its own

    # wrong state: a server in the recycle bin is a 400 InvalidStatusError; purged, its snapshots go
    climc_json(ctl, "instance-snapshot-create", "vm-is", "is2")
    wait_for(lambda: isnap_row(ctl, "is2")["status"] == "ready", 60, "is2")
    settled(ctl, "vm-is", "ready", "idle")
    assert ctl.climc("server-delete", "vm-is").returncode == 0
    r = ctl.api.post(f"{B}/servers/{srv['id']}/instance-snapshot", json={"name": "is3"})
    assert r.status_code == 400 and r.json()["class"] == "InvalidStatusError", r.text
    r = ctl.climc("instance-snapshot-create", "vm-is-clone", "")
    assert r.returncode != 0 and "name" in r.stderr, r.stderr
    assert ctl.climc("server-purge", "vm-is").returncode == 0
    wait_for(lambda: ctl.api.get(f"{B}/servers/{srv['id']}").status_code == 404, 60, "purged")
    assert ctl.api.get(f"{B}/instance_snapshots/is2").status_code == 404
    assert ctl.api.get(f"{B}/quotas").json()["quota"]["usage.snapshot"] == used
    assert ctl.climc("server-delete", "-f", "vm-is-clone").returncode == 0
    wait_for(lambda: ctl.api.get(f"{B}/servers/{clone['id']}").status_code == 404, 60, "clone gone")


def test_server_change_owner_moves_disks_snapshots_and_quota(cloud: tuple[Controller, AgentProc]) -> None:
    import httpx

    from tests.e2e.test_identity_support import admin, grant, login, mk_project, mk_user

    if not shutil.which("qemu-img"):
        from tests.support.peers import need

        need(False, "qemu-img missing (apt install qemu-utils)")
    ctl, _agent = cloud
    assert ctl.climc("server-create", "vm-own", "--disk", "tiny", "--disk", "64m", "--net", "default").returncode == 0
    srv = settled(ctl, "vm-own", "ready", "created")
    climc_json(ctl, "disk-create-snapshot", srv["disks_info"][0]["id"], "own-snap")
    snap_ready(ctl, "own-snap")
    ks = admin(ctl)
    theirs = mk_project(ks)
    u = mk_user(ks, "pw-Secret-1")
    grant(ks, f"projects/{theirs['id']}", u["id"], "member")
    their_tok = login(ctl, u["name"], "pw-Secret-1", {"project": {"id": theirs["id"]}})
    m = mk_user(ks, "pw-Secret-1")  # a plain member (not admin) of the server's own project
    grant(ks, f"projects/{srv['tenant_id']}", m["id"], "member")
    member_tok = login(ctl, m["name"], "pw-Secret-1", {"project": {"id": srv["tenant_id"]}})
    ours_before = ctl.api.get(f"{B}/quotas").json()["quota"]
    with httpx.Client(base_url=ctl.url, headers={"X-Auth-Token": their_tok}, timeout=30) as them, \
            httpx.Client(base_url=ctl.url, headers={"X-Auth-Token": member_tok}, timeout=30) as member:
        theirs_before = them.get(f"{B}/quotas").json()["quota"]
        # another project's member: 404; a member of its own project: 403 (admins move servers)
        assert them.post(f"{B}/servers/{srv['id']}/change-owner", json={"tenant": theirs["id"]}).status_code == 404
        r = member.post(f"{B}/servers/{srv['id']}/change-owner", json={"tenant": theirs["id"]})
        assert r.status_code == 403, r.text
        r = ctl.climc("server-change-owner", "vm-own", "no-such-project")
        assert r.returncode != 0 and "no-such-project" in r.stderr, r.stderr
        r = ctl.climc("server-change-owner", "vm-own", srv["tenant_id"])
        assert r.returncode != 0 and "already" in r.stderr, r.stderr

        moved = climc_json(ctl, "server-change-owner", "vm-own", theirs["name"])
        assert moved["tenant_id"] == theirs["id"] and moved["secgroup"] == "Default"
        assert moved["secgroups"][0]["id"] not in {g["id"] for g in srv["secgroups"]}
        assert "vm-own" not in names(ctl, "server-list", "--scope", "project")
        assert them.get(f"{B}/servers/{srv['id']}").json()["server"]["name"] == "vm-own"
        assert {d["id"] for d in srv["disks_info"]} <= {d["id"] for d in them.get(f"{B}/disks").json()["disks"]}
        assert them.get(f"{B}/snapshots/own-snap").status_code == 200
        assert srv["id"] in {s["id"] for s in them.get(f"{B}/servers").json()["servers"]}
        ours = ctl.api.get(f"{B}/quotas").json()["quota"]
        now = them.get(f"{B}/quotas").json()["quota"]
        for key, n in (("servers", 1), ("snapshot", 1), ("storage", sum(d["size"] for d in srv["disks_info"]))):
            assert ours[f"usage.{key}"] == ours_before[f"usage.{key}"] - n, key
            assert now[f"usage.{key}"] == theirs_before[f"usage.{key}"] + n, key
        assert them.delete(f"{B}/servers/{srv['id']}", params={"override_pending_delete": "true"}).status_code == 200
        wait_for(lambda: them.get(f"{B}/servers/{srv['id']}").status_code == 404, 60, "gone")
        assert them.get(f"{B}/quotas").json()["quota"]["usage.snapshot"] == theirs_before["usage.snapshot"]


def _iso_password_hashes(iso: Path) -> set[str]:
    import re

    return set(re.findall(rb"\$6\$[A-Za-z0-9./]+\$[A-Za-z0-9./]+", iso.read_bytes()))


def test_reset_password_rewrites_the_config_drive_and_logininfo_shows_it_to_the_owner(
        cloud: tuple[Controller, AgentProc]) -> None:
    import httpx

    from drivers.kvm.configdrive import sha512_crypt
    from tests.e2e.test_agent_support import outsider_token

    ctl, agent = cloud
    r = ctl.climc("server-create", "vm-pw", "--disk", "tiny", "--net", "default", "--password", "pw-First-Secret1")
    assert r.returncode == 0, r.stderr
    srv = settled(ctl, "vm-pw", "ready", "created")
    info = climc_json(ctl, "server-logininfo", "vm-pw")
    assert info["username"] == "root" and info["password"] == "pw-First-Secret1"
    iso = agent.data / "instances" / srv["id"] / "config.iso"
    assert b"pw-First-Secret1" not in iso.read_bytes()  # the hash only, never the password
    assert ctl.climc("server-start", "vm-pw").returncode == 0
    settled(ctl, "vm-pw", "running", "running")
    # running: through the qemu guest agent (virDomainSetUserPassword; test:/// accepts it with no guest
    # OS behind it, so this shows the path, not a guest's /etc/shadow), the drive rewritten for the next boot
    assert ctl.climc("server-reset-password", "vm-pw", "--password", "pw-Running-Secret9").returncode == 0
    settled(ctl, "vm-pw", "running", "set while running")
    assert climc_json(ctl, "server-logininfo", "vm-pw")["password"] == "pw-Running-Secret9"
    hashes = _iso_password_hashes(iso)
    assert hashes and all(sha512_crypt("pw-Running-Secret9", h.decode().split("$")[2]) == h.decode() for h in hashes)
    r = ctl.climc("server-reset-password", "vm-pw", "--password", "short")
    assert r.returncode != 0 and "password" in r.stderr, r.stderr
    assert ctl.climc("server-stop", "vm-pw").returncode == 0
    settled(ctl, "vm-pw", "ready", "stopped")

    assert ctl.climc("server-reset-password", "vm-pw", "--password", "pw-Second-Secret2").returncode == 0
    settled(ctl, "vm-pw", "ready", "reset")
    hashes = _iso_password_hashes(iso)
    assert hashes and b"pw-Second-Secret2" not in iso.read_bytes()
    assert all(sha512_crypt("pw-Second-Secret2", h.decode().split("$")[2]) == h.decode() for h in hashes)
    assert b"bootcmd" in iso.read_bytes()  # set at every boot: the next one takes the new password
    assert climc_json(ctl, "server-logininfo", "vm-pw")["password"] == "pw-Second-Secret2"
    assert "pw-Second-Secret2" not in json.dumps(ctl.api.get(f"{B}/servers/{srv['id']}").json())
    actions = ctl.climc("action-list", "--limit", "50", "-o", "json")
    assert actions.returncode == 0 and "login-info" in actions.stdout, actions.stdout[:500]
    with httpx.Client(base_url=ctl.url, headers={"X-Auth-Token": outsider_token(ctl)}, timeout=30) as c:
        assert c.post(f"{B}/servers/{srv['id']}/login-info", json={}).status_code == 404
        assert c.post(f"{B}/servers/{srv['id']}/set-password", json={"password": "pw-Their-Secret3"}).status_code \
            == 404
    assert climc_json(ctl, "server-logininfo", "vm-pw")["password"] == "pw-Second-Secret2"
    # rebuild-root with a password: logininfo shows the new root's
    assert ctl.climc("server-rebuild-root", "vm-pw", "--password", "pw-Rebuilt-Secret5").returncode == 0
    settled(ctl, "vm-pw", "ready", "rebuilt")
    assert climc_json(ctl, "server-logininfo", "vm-pw")["password"] == "pw-Rebuilt-Secret5"
    # wrong state: in the recycle bin
    assert ctl.climc("server-delete", "vm-pw").returncode == 0
    r = ctl.api.post(f"{B}/servers/{srv['id']}/set-password", json={"password": "pw-Binned-Secret4"})
    assert r.status_code == 400 and r.json()["class"] == "InvalidStatusError", r.text
    assert ctl.climc("server-purge", "vm-pw").returncode == 0
    wait_for(lambda: ctl.api.get(f"{B}/servers/{srv['id']}").status_code == 404, 60, "gone")


def test_disk_create_from_an_image_is_attached_with_its_contents(cloud: tuple[Controller, AgentProc]) -> None:
    if not shutil.which("qemu-img"):
        from tests.support.peers import need

        need(False, "qemu-img missing (apt install qemu-utils)")
    ctl, _agent = cloud
    r = ctl.climc("disk-create", "d-noimg")
    assert r.returncode != 0 and "--image" in r.stderr, r.stderr
    r = ctl.climc("disk-create", "d-img", "--image", "no-such-image")
    assert r.returncode != 0 and "no-such-image" in r.stderr, r.stderr
    assert ctl.climc("server-create", "vm-dimg", "--disk", "tiny", "--net", "default").returncode == 0
    srv = settled(ctl, "vm-dimg", "ready", "created")
    disk = climc_json(ctl, "disk-create", "d-img", "--image", "tiny", "--storage", srv["disks_info"][0]["storage_id"])
    assert disk["status"] == "ready" and disk["template_id"] and disk["disk_size"] >= 1, disk
    assert ctl.climc("server-attach-disk", "vm-dimg", "d-img").returncode == 0
    srv = settled(ctl, "vm-dimg", "ready", "attached")
    data = next(d for d in srv["disks_info"] if d["index"] == 1)
    assert data["id"] == disk["id"] and data["image_id"] == disk["template_id"]
    info = json.loads(subprocess.run(["qemu-img", "info", "-U", "--output=json", disk_file(ctl, disk["id"])],
                                     check=True, capture_output=True, text=True).stdout)
    root = json.loads(subprocess.run(["qemu-img", "info", "-U", "--output=json",
                                      disk_file(ctl, srv["disks_info"][0]["id"])],
                                     check=True, capture_output=True, text=True).stdout)
    assert info.get("backing-filename") and info["backing-filename"] == root.get("backing-filename")
    assert ctl.climc("server-delete", "-f", "vm-dimg").returncode == 0
    wait_for(lambda: ctl.api.get(f"{B}/servers/{srv['id']}").status_code == 404, 60, "gone")


def test_server_create_disk_makes_and_attaches_one_that_goes_with_the_server(
        cloud: tuple[Controller, AgentProc]) -> None:
    import httpx

    from tests.e2e.test_agent_support import outsider_token

    ctl, _agent = cloud
    assert ctl.climc("server-create", "vm-cdisk", "--disk", "tiny", "--net", "default").returncode == 0
    srv = settled(ctl, "vm-cdisk", "ready", "created")
    storage = ctl.api.get(f"{B}/quotas").json()["quota"]["usage.storage"]
    r = ctl.climc("server-create-disk", "vm-cdisk", "not-a-size-or-image")
    assert r.returncode != 0 and "not-a-size-or-image" in r.stderr, r.stderr
    with httpx.Client(base_url=ctl.url, headers={"X-Auth-Token": outsider_token(ctl)}, timeout=30) as c:
        assert c.post(f"{B}/servers/{srv['id']}/createdisk", json={"disks": ["32m"]}).status_code == 404
    # Cloudpods' server-create-disk SERVER DISK...: two disks, one after the other
    assert ctl.climc("server-create-disk", "vm-cdisk", "32m", "16m").returncode == 0
    s = settled(ctl, "vm-cdisk", "ready", "disks made and attached")
    assert [(d["index"], d["size"]) for d in s["disks_info"]][1:] == [(1, 32), (2, 16)]
    assert ctl.api.get(f"{B}/quotas").json()["quota"]["usage.storage"] == storage + 48
    assert ctl.climc("server-delete", "-f", "vm-cdisk").returncode == 0
    wait_for(lambda: ctl.api.get(f"{B}/servers/{srv['id']}").status_code == 404, 60, "gone")
    assert not {"vm-cdisk-disk1", "vm-cdisk-disk2"} & names(ctl, "disk-list")
    assert ctl.api.get(f"{B}/quotas").json()["quota"]["usage.storage"] == storage - srv["disk"]


def _upload_iso(ctl: Controller, name: str) -> dict[str, Any]:
    """A small real ISO 9660 image (pycdlib), uploaded as disk format iso."""
    import io

    import pycdlib

    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, vol_ident="INSTALL")
    data = b"an installer would be here\n"
    iso.add_fp(io.BytesIO(data), len(data), "/README.;1")
    buf = io.BytesIO()
    iso.write_fp(buf)
    iso.close()
    r = ctl.api.post("/api/s/image/v1/images", content=buf.getvalue(), headers={
        "Content-Type": "application/octet-stream", "X-Image-Meta-Name": name, "X-Image-Meta-Disk-Format": "iso"})
    assert r.status_code in (200, 201), r.text
    return dict(wait_for(lambda: (i := ctl.api.get(f"/api/s/image/v1/images/{name}").json()["image"])["status"]
                         == "active" and i, 60, "iso active"))


def test_iso_in_the_cdrom_drive_boots_first_and_the_boot_order_is_set_while_stopped(
        cloud: tuple[Controller, AgentProc]) -> None:
    import httpx

    from tests.e2e.test_agent_support import outsider_token

    ctl, agent = cloud
    img = _upload_iso(ctl, "day2-installer-iso")
    r = ctl.climc("server-create", "vm-iso", "--disk", "tiny", "--net", "default", "--iso", "tiny")
    assert r.returncode != 0 and "not an ISO" in r.stderr, r.stderr
    assert ctl.climc("server-create", "vm-iso", "--disk", "64m", "--net", "default",
                     "--iso", "day2-installer-iso").returncode == 0
    srv = settled(ctl, "vm-iso", "ready", "created")
    assert srv["cdrom"] == "day2-installer-iso" and srv["boot_order"] == "cdrom,disk0"
    assert climc_json(ctl, "server-iso", "vm-iso")["image_id"] == img["id"]
    xml = agent.data / "instances" / srv["id"] / "domain.xml"

    def drive() -> tuple[str | None, dict[str, int]]:
        import xml.etree.ElementTree as ET

        root = ET.fromstring(xml.read_text())
        iso = next(d for d in root.iterfind("devices/disk") if d.findtext("serial") == "cloudpods-iso")
        src = iso.find("source")
        order = {("cdrom" if d is iso else (d.find("source").get("file") or "").rsplit("/", 1)[-1]):
                 int(d.find("boot").get("order")) for d in root.iterfind("devices/disk") if d.find("boot") is not None}
        return (src.get("file") if src is not None else None), order

    path, order = drive()
    assert path and path.startswith(str(agent.data)) and order == {"cdrom": 1, "disk0.qcow2": 2}

    # eject, then a second eject has nothing to eject; a raw image is not an ISO
    r = ctl.climc("server-eject-iso", "vm-iso", "--wait", "-o", "json")  # returns once the drive is empty
    assert r.returncode == 0 and json.loads(r.stdout)["status"] == "ready", r.stderr
    settled(ctl, "vm-iso", "ready", "ejected")
    assert drive()[0] is None and climc_json(ctl, "server-iso", "vm-iso")["status"] == "empty"
    r = ctl.api.post(f"{B}/servers/{srv['id']}/ejectiso", json={})
    assert r.status_code == 400 and r.json()["class"] == "InvalidStatusError", r.text
    r = ctl.climc("server-insert-iso", "vm-iso", "tiny")
    assert r.returncode != 0 and "not an ISO" in r.stderr, r.stderr
    assert ctl.climc("server-insert-iso", "vm-iso", "day2-installer-iso").returncode == 0
    settled(ctl, "vm-iso", "ready", "inserted")
    assert drive()[0] == path

    # the system disk first, the drive after it
    r = ctl.climc("server-set-boot-index", "vm-iso", "--disks", "0:0", "--cdroms", "0:1", "--wait")
    assert r.returncode == 0, r.stderr
    assert settled(ctl, "vm-iso", "ready", "boot order set")["boot_order"] == "disk0,cdrom"
    assert drive()[1] == {"disk0.qcow2": 1, "cdrom": 2}
    r = ctl.climc("server-set-boot-index", "vm-iso", "--disks", "7:0")
    assert r.returncode != 0 and "no disk with index 7" in r.stderr, r.stderr

    with httpx.Client(base_url=ctl.url, headers={"X-Auth-Token": outsider_token(ctl)}, timeout=30) as c:
        for action, body in (("insertiso", {"image_id": img["id"]}), ("ejectiso", {}),
                             ("set-boot-index", {"disks": {"0": 0}})):
            assert c.post(f"{B}/servers/{srv['id']}/{action}", json=body).status_code == 404, action
        assert c.get(f"{B}/servers/{srv['id']}/iso").status_code == 404

    # running: the boot order waits for a stop; test:/// has no media change (a real host does)
    assert ctl.climc("server-start", "vm-iso").returncode == 0
    settled(ctl, "vm-iso", "running", "running")
    r = ctl.api.post(f"{B}/servers/{srv['id']}/set-boot-index", json={"disks": {"0": 1}, "cdroms": {"0": 0}})
    assert r.status_code == 400 and r.json()["class"] == "InvalidStatusError" and "stop" in r.json()["details"]
    r = ctl.climc("server-eject-iso", "vm-iso")
    assert r.returncode != 0 and "cdrom_hot" in r.stderr and "stop the server first" in r.stderr, r.stderr
    assert ctl.climc("server-delete", "-f", "vm-iso").returncode == 0
    wait_for(lambda: ctl.api.get(f"{B}/servers/{srv['id']}").status_code == 404, 60, "gone")


def test_change_ipaddr_gives_a_nic_another_address_of_its_network_or_of_another(
        cloud: tuple[Controller, AgentProc]) -> None:
    import httpx

    from tests.e2e.test_agent_support import outsider_token

    ctl, agent = cloud
    assert ctl.climc("server-create", "vm-chip", "--disk", "tiny", "--net", "default", "--auto-start").returncode == 0
    srv = settled(ctl, "vm-chip", "running", "running")
    nic = srv["nics"][0]
    inst = agent.data / "instances" / srv["id"]
    net = ctl.api.get(f"{B}/networks/default").json()["network"]

    def leases() -> list[tuple[str, str, str]]:
        return [(n["mac"], n["ip"], n["network_id"]) for n in json.loads((inst / "nics.json").read_text())]

    with httpx.Client(base_url=ctl.url, headers={"X-Auth-Token": outsider_token(ctl)}, timeout=30) as c:
        r = c.post(f"{B}/servers/{srv['id']}/change-ipaddr",
                   json={"mac": nic["mac"], "net_desc": "default:10.199.0.241"})
        assert r.status_code == 404, r.text

    # a reserved address is IPAM's: 409, nothing changes
    assert ctl.api.post(f"{B}/networks/{net['id']}/reserve-ip", json={"ips": ["10.199.0.242"]}).status_code == 200
    r = ctl.climc("server-change-ipaddr", "vm-chip", nic["mac"], "default:10.199.0.242")
    assert r.returncode != 0 and "already in use" in r.stderr, r.stderr
    r = ctl.climc("server-change-ipaddr", "vm-chip", "10.255.0.1", "default:10.199.0.241")
    assert r.returncode != 0 and "no NIC" in r.stderr, r.stderr

    # running, by its IP, to a free address, the old one kept reserved: the host answers the MAC's
    # DHCP with the new address at once (the guest takes it at its next renewal)
    assert ctl.climc("server-change-ipaddr", "vm-chip", nic["ip_addr"], "default:10.199.0.241",
                     "--reserve").returncode == 0
    s = settled(ctl, "vm-chip", "running", "address changed")
    assert [(n["mac"], n["ip_addr"]) for n in s["nics"]] == [(nic["mac"], "10.199.0.241")]
    assert leases() == [(nic["mac"], "10.199.0.241", net["id"])]
    held = {a["ip_addr"]: a["owner_type"] for a in
            ctl.api.get(f"{B}/networks/{net['id']}/addresses").json()["addresses"]}
    assert held[nic["ip_addr"]] == "reserved" and held["10.199.0.241"] == "server", held
    assert "changing" not in held.values()

    # another network, on a wire of the host with its own bridge: running on a host that cannot change
    # a running guest's devices (test:///) is a 400 naming the fix; stopped, the NIC moves there
    host = ctl.api.get(f"{B}/hosts/{agent.host_id}").json()["host"]
    assert ctl.climc("wire-create", host["zone_id"], "chip-w2", "1000").returncode == 0
    r = ctl.climc("network-create", "chip-w2", "chip-n2", "10.198.7.10", "10.198.7.20", "24")
    assert r.returncode == 0, r.stderr
    r = ctl.climc("server-change-ipaddr", "vm-chip", "0", "chip-n2")
    assert r.returncode != 0 and "wire the server's host is not on" in r.stderr, r.stderr
    assert ctl.api.post(f"{B}/hosts/{agent.host_id}/wires/chip-w2", json={"bridge": "br-chip2"}).status_code == 200
    r = ctl.api.post(f"{B}/servers/{srv['id']}/change-ipaddr", json={"index": 0, "net_desc": "chip-n2"})
    assert r.status_code == 400 and "stop the server first" in r.json()["details"], r.text
    assert ctl.climc("server-stop", "vm-chip").returncode == 0
    settled(ctl, "vm-chip", "ready", "stopped")
    assert ctl.climc("server-change-ipaddr", "vm-chip", "0", "chip-n2:10.198.7.15").returncode == 0
    s = settled(ctl, "vm-chip", "ready", "moved")
    n2 = ctl.api.get(f"{B}/networks/chip-n2").json()["network"]
    assert [(n["mac"], n["ip_addr"], n["network_id"]) for n in s["nics"]] == [(nic["mac"], "10.198.7.15", n2["id"])]
    assert leases() == [(nic["mac"], "10.198.7.15", n2["id"])]
    assert "br-chip2" in (inst / "domain.xml").read_text()  # the same NIC (MAC, device) on the new bridge
    held = {a["ip_addr"] for a in ctl.api.get(f"{B}/networks/{net['id']}/addresses").json()["addresses"]}
    assert "10.199.0.241" not in held  # given back to its network (no --reserve)

    # back by its index to a policy-chosen address of the first network
    assert ctl.climc("server-change-ipaddr", "vm-chip", "0", "default").returncode == 0
    s = settled(ctl, "vm-chip", "ready", "address changed again")
    assert s["nics"][0]["network_id"] == net["id"]
    assert s["nics"][0]["ip_addr"] not in ("10.199.0.241", nic["ip_addr"])
    assert "br-chip2" not in (inst / "domain.xml").read_text()
    assert not ctl.api.get(f"{B}/networks/{n2['id']}/addresses").json()["addresses"]
    for ip in (nic["ip_addr"], "10.199.0.242"):
        ctl.api.post(f"{B}/networks/{net['id']}/release-reserved-ip", json={"ip": ip}).raise_for_status()
    assert ctl.climc("server-delete", "-f", "vm-chip").returncode == 0
    wait_for(lambda: ctl.api.get(f"{B}/servers/{srv['id']}").status_code == 404, 60, "gone")


def test_instance_snapshot_reset_rolls_every_disk_back(cloud: tuple[Controller, AgentProc]) -> None:
    import httpx

    from tests.e2e.test_agent_support import outsider_token

    if not (shutil.which("qemu-img") and shutil.which("qemu-io")):
        from tests.support.peers import need

        need(False, "qemu-img/qemu-io missing (apt install qemu-utils)")
    ctl, _agent = cloud
    assert ctl.climc("server-create", "vm-isr", "--disk", "tiny", "--disk", "32m", "--net", "default").returncode == 0
    srv = settled(ctl, "vm-isr", "ready", "created")
    paths = {d["index"]: disk_file(ctl, d["id"]) for d in srv["disks_info"]}
    guest_write(paths[0], 0x51)
    guest_write(paths[1], 0x52)
    climc_json(ctl, "instance-snapshot-create", "vm-isr", "isr1")
    isr1 = wait_for(lambda: (x := isnap_row(ctl, "isr1"))["status"] == "ready" and x, 60, "instance snapshot")
    settled(ctl, "vm-isr", "ready", "idle")
    guest_write(paths[0], 0x61)
    guest_write(paths[1], 0x62)

    with httpx.Client(base_url=ctl.url, headers={"X-Auth-Token": outsider_token(ctl)}, timeout=30) as c:
        r = c.post(f"{B}/servers/{srv['id']}/instance-snapshot-reset", json={"instance_snapshot": isr1["id"]})
        assert r.status_code == 404, r.text
    r = ctl.climc("instance-snapshot-reset", "vm-isr", "--instance-snapshot", "no-such-isnap")
    assert r.returncode != 0 and "no-such-isnap" in r.stderr, r.stderr
    assert ctl.climc("instance-snapshot-reset", "vm-isr", "--instance-snapshot", "isr1").returncode == 0
    s = settled(ctl, "vm-isr", "ready", "reset")
    assert all(d["status"] == "ready" for d in s["disks_info"]), s["disks_info"]
    assert guest_reads(paths[0], 0x51) and guest_reads(paths[1], 0x52)
    assert not guest_reads(paths[1], 0x62)

    # running: 400 (stop it first); --auto-start starts it once its disks are back
    assert ctl.climc("server-start", "vm-isr").returncode == 0
    settled(ctl, "vm-isr", "running", "running")
    r = ctl.api.post(f"{B}/servers/{srv['id']}/instance-snapshot-reset", json={"instance_snapshot": "isr1"})
    assert r.status_code == 400 and r.json()["class"] == "InvalidStatusError" and "stop" in r.json()["details"]
    assert ctl.climc("server-stop", "vm-isr").returncode == 0
    settled(ctl, "vm-isr", "ready", "stopped")
    assert ctl.climc("instance-snapshot-reset", "vm-isr", "--instance-snapshot", "isr1", "--auto-start").returncode == 0
    settled(ctl, "vm-isr", "running", "reset and started")
    assert ctl.climc("server-delete", "-f", "vm-isr").returncode == 0
    wait_for(lambda: ctl.api.get(f"{B}/servers/{srv['id']}").status_code == 404, 60, "gone")


def test_schedtags_come_from_host_and_zone_metadata(cloud: tuple[Controller, AgentProc]) -> None:
    ctl, agent = cloud
    host = ctl.api.get(f"{B}/hosts/{agent.host_id}").json()["host"]
    assert ctl.api.post(f"{B}/hosts/{host['id']}/metadata", json={"rack": "r1", "user:ssd": "yes"}).status_code == 200
    assert ctl.api.post(f"{B}/zones/{host['zone_id']}/metadata", json={"user:tier": "gold"}).status_code == 200

    def fits(*tags: str) -> dict[str, Any]:
        args = [a for t in tags for a in ("--schedtag", t)]
        return dict(climc_json(ctl, "server-create", "vm-tagged", "--disk", "tiny", "--net", "default", *args,
                               "--dry-run"))

    try:
        assert fits("rack=r1:require", "ssd:require", "tier=gold:require:zones")["can_create"] is True
        no = fits("rack=r2:require")
        assert no["can_create"] is False and "schedtag" in json.dumps(no), no
        assert fits("rack:exclude")["can_create"] is False
        assert fits("tier=silver:require:zones")["can_create"] is False
        r = ctl.climc("server-create", "vm-tagged", "--disk", "tiny", "--schedtag", "rack", "--dry-run")
        assert r.returncode != 0 and "--schedtag" in r.stderr, r.stderr
    finally:
        ctl.api.post(f"{B}/hosts/{host['id']}/metadata", json={"rack": None, "user:ssd": None})
        ctl.api.post(f"{B}/zones/{host['zone_id']}/metadata", json={"user:tier": None})
