"""Day-2 disk verbs on real qemu under libvirtd (full tier): a live snapshot of a running guest's
disk (QMP blockdev-snapshot-internal-sync), an online resize of the running qemu's disk, a NIC
hot-plugged and unplugged, an ISO changed in the running guest's drive, a password through the guest
agent refused when no qemu-ga answers, and a saved
system disk that boots a second server. Uses test_agent_real's controller + agent, on its own bridge
and subnet (names prefixed d2), so it can run beside that module."""
from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

import tests.integration.test_agent_real as real
from drivers.kvm.xml import interface_xml_of
from tests.e2e.test_agent_support import AgentProc, B, server, wait_for
from tests.integration.test_agent_real import VIRT_WORK, _upload, real_cloud, running_guest  # noqa: F401 (the fixture)
from tests.support.controller import Controller

pytestmark = pytest.mark.full


@pytest.fixture(autouse=True)
def _own_bridge(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(real, "BRIDGE", "d2br0")
    monkeypatch.setattr(real, "GW", "10.213.92.1")
    monkeypatch.setattr(real, "PREFIX", "10.213.92")


def _snapshots(path: str) -> set[str]:
    out = subprocess.run(["qemu-img", "info", "-U", "--output=json", path], check=True, capture_output=True,
                         text=True).stdout
    return {s["name"] for s in json.loads(out).get("snapshots") or []}


def _make_iso(path: Path) -> None:
    import io

    import pycdlib

    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, vol_ident="D2ISO")
    data = b"d2\n"
    iso.add_fp(io.BytesIO(data), len(data), "/D2.;1")
    iso.write(str(path))
    iso.close()


def test_live_snapshot_online_resize_and_a_saved_image_that_boots(
        real_cloud: tuple[Controller, AgentProc], tmp_path: Path) -> None:  # noqa: F811
    import libvirt

    ctl, agent = real_cloud
    kernel = _upload(ctl, "d2-kernel", VIRT_WORK / "vmlinuz", "raw")
    ramdisk = _upload(ctl, "d2-ramdisk", VIRT_WORK / "initrd.img", "raw")
    root = tmp_path / "root.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(root), "64M"], check=True)
    _upload(ctl, "d2-tiny", root, "qcow2", f"kernel_id={kernel}", f"ramdisk_id={ramdisk}",
            "os_command_line=console=ttyS0 panic=-1 cm.net cm.stay")
    caps = set(ctl.api.get(f"{B}/hosts/{agent.host_id}").json()["host"]["capabilities"])
    assert {"snapshot", "disk_resize", "save_image"} <= caps
    r = ctl.climc("server-create", "d2vm", "--disk", "d2-tiny", "--disk", "32m", "--net", "realnet",
                  "--mem-spec", "256m", "--auto-start", "-o", "json")
    assert r.returncode == 0, r.stderr
    sid = json.loads(r.stdout)["id"]
    s = wait_for(lambda: (x := server(ctl, sid))["status"] in ("running", "deploy_fail") and x, 120, "deployed")
    assert s["status"] == "running", agent.log_path.read_text()[-3000:]
    serial = agent.data / "instances" / sid / "serial.log"
    wait_for(lambda: serial.exists() and "CM-MARKER: staying up" in serial.read_text(errors="replace"), 150,
             "the guest up")
    data = next(d for d in s["disks_info"] if d["index"] == 1)
    path = ctl.api.get(f"{B}/disks/{data['id']}").json()["disk"]["access_path"]

    # a snapshot of the running guest's disk: qemu takes it (the image is locked for qemu-img)
    t0 = time.monotonic()
    r = ctl.climc("disk-create-snapshot", data["id"], "d2-live", "-o", "json")
    assert r.returncode == 0, r.stderr
    snap = json.loads(r.stdout)
    wait_for(lambda: ctl.api.get(f"{B}/snapshots/{snap['id']}").json()["snapshot"]["status"] in
             ("ready", "create_failed"), 60, "snapshot")
    took = time.monotonic() - t0
    got = ctl.api.get(f"{B}/snapshots/{snap['id']}").json()["snapshot"]
    assert got["status"] == "ready", (got, agent.log_path.read_text()[-3000:])
    assert snap["id"] in _snapshots(path)
    print(f"live snapshot through climc + task + agent: {took:.2f} s")

    # online resize: the running qemu's virtio disk has the new capacity (what it announces to the guest;
    # this test initramfs loads no virtio_blk driver, so the guest's own view is not read here)
    conn = libvirt.open("qemu:///system")
    try:
        dom = conn.lookupByUUIDString(sid)
        assert ctl.climc("disk-resize", data["id"], "64m").returncode == 0
        wait_for(lambda: ctl.api.get(f"{B}/disks/{data['id']}").json()["disk"]["disk_size"] == 64, 60, "resized")
        assert dom.isActive() and dom.blockInfo(path)[0] == 64 << 20

        # a NIC hot-plugged into the running guest, and out again
        assert "attach_nic_hot" in caps
        assert ctl.climc("server-attach-network", "d2vm", "realnet").returncode == 0
        s = wait_for(lambda: (x := server(ctl, sid))["status"] == "running" and not x["active_task_id"] and x, 60,
                     "attached")
        assert len(s["nics"]) == 2, s
        mac = s["nics"][1]["mac"]
        assert mac in dom.XMLDesc(0) and mac in dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        assert ctl.climc("server-detach-network", "d2vm", "--mac", mac).returncode == 0
        wait_for(lambda: len((x := server(ctl, sid))["nics"]) == 1 and not x["active_task_id"], 60, "detached")
        wait_for(lambda: mac not in dom.XMLDesc(0), 60, "the running guest let go of the NIC")
        assert mac not in dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)

        # change-ipaddr of the running guest onto a network of another wire: the same NIC (MAC, device)
        # moves to that wire's bridge in the running qemu (updateDeviceFlags), and back
        mac0 = s["nics"][0]["mac"]
        for args in (("wire-create", "zone0", "d2wire2", "1000"),
                     ("network-create", "d2wire2", "d2net2", "10.213.93.10", "10.213.93.50", "24",
                      "--gateway", "10.213.93.1")):
            assert ctl.climc(*args).returncode == 0
        assert ctl.api.post(f"{B}/hosts/{agent.host_id}/wires/d2wire2", json={"bridge": "d2br1"}).status_code == 200
        try:
            assert ctl.climc("server-change-ipaddr", "d2vm", mac0, "d2net2:10.213.93.20").returncode == 0
            s = wait_for(lambda: (x := server(ctl, sid))["status"] == "running" and not x["active_task_id"] and x,
                         60, "moved to d2net2")
            assert [(n["mac"], n["ip_addr"], n["network"]) for n in s["nics"]] == [(mac0, "10.213.93.20", "d2net2")], \
                (s["status_reason"], agent.log_path.read_text()[-2000:])
            live = interface_xml_of(dom.XMLDesc(0), mac0)
            assert live is not None and "'d2br1'" in live.replace('"', "'"), live
            assert ctl.climc("server-change-ipaddr", "d2vm", mac0, "realnet").returncode == 0
            s = wait_for(lambda: (x := server(ctl, sid))["status"] == "running" and not x["active_task_id"] and x,
                         60, "back on realnet")
            assert s["nics"][0]["network"] == "realnet"
            assert f"'{real.BRIDGE}'" in (interface_xml_of(dom.XMLDesc(0), mac0) or "").replace('"', "'")
        finally:
            real._remove_link("d2br1")

        # an ISO into the running qemu's (empty) CD-ROM drive: a media change; then ejected
        assert "cdrom_hot" in caps
        iso = tmp_path / "d2.iso"
        _make_iso(iso)
        iso_id = _upload(ctl, "d2-iso", iso, "iso")
        assert ctl.climc("server-insert-iso", "d2vm", "d2-iso").returncode == 0
        wait_for(lambda: not server(ctl, sid)["active_task_id"], 60, "inserted")
        assert server(ctl, sid)["cdrom"] == "d2-iso", server(ctl, sid)
        assert iso_id in dom.XMLDesc(0) and iso_id in dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        assert ctl.climc("server-eject-iso", "d2vm").returncode == 0
        wait_for(lambda: not server(ctl, sid)["active_task_id"], 60, "ejected")
        assert iso_id not in dom.XMLDesc(0)

        # the password of a running guest goes through the qemu guest agent: this initramfs runs no
        # qemu-ga, so libvirt says so, the task fails naming it, and the old login stays
        assert "guest_agent" in caps
        assert "org.qemu.guest_agent.0" in dom.XMLDesc(0)
        assert ctl.climc("server-reset-password", "d2vm", "--password", "pw-Agent-Secret7").returncode == 0
        wait_for(lambda: not server(ctl, sid)["active_task_id"], 60, "reset tried")
        tasks = ctl.api.get(f"{B}/servers/{sid}/tasks").json()["tasks"]
        failed = next(t for t in tasks if t["task_name"] == "ServerResetPasswordTask")
        assert failed["status"] == "failed" and "guest agent" in failed.get("reason", ""), failed
        assert "password" not in ctl.api.post(f"{B}/servers/{sid}/login-info", json={}).json()
    finally:
        conn.close()
    assert snap["id"] in _snapshots(path)

    # stopped: its system disk saved as an image, which boots a second server (boot properties kept)
    assert ctl.climc("server-stop", "d2vm").returncode == 0
    wait_for(lambda: (x := server(ctl, sid))["status"] == "ready" and not x["active_task_id"], 90, "stopped")
    t0 = time.monotonic()
    assert ctl.climc("server-save-image", "d2vm", "d2-saved").returncode == 0
    wait_for(lambda: (x := server(ctl, sid))["status"] == "ready" and not x["active_task_id"], 120, "saved")
    print(f"save-image through climc + agent + glance intake: {time.monotonic() - t0:.2f} s")
    img = ctl.api.get("/api/s/image/v1/images/d2-saved").json()["image"]
    assert img["status"] == "active", (img, server(ctl, sid).get("status_reason"))
    assert img["properties"].get("kernel_id") == kernel
    cid = running_guest(ctl, agent, "d2clone", "d2-saved", what="clone")["id"]
    clone_serial = agent.data / "instances" / cid / "serial.log"
    wait_for(lambda: clone_serial.exists() and "CM-MARKER: staying up" in clone_serial.read_text(errors="replace"),
             150, "the clone up")
    for n in ("d2vm", "d2clone"):
        assert ctl.climc("server-delete", "-f", n).returncode == 0
    for i in (sid, cid):
        wait_for(lambda i=i: ctl.api.get(f"{B}/servers/{i}").status_code == 404, 90, "deleted")
