"""Bare metal deploy end to end: `climc server-create --hypervisor baremetal --disk IMG` against a
controller whose PXE boot network (core/agent/pxe.py: our DHCP + HTTP, IPv6 RA) is a bridge here.

ipmi_sim's chassis program starts a qemu "machine" (software emulation) with a blank disk; the
scheduler picks the ready machine, the driver sets a PXE boot over IPMI and powers it on, the
machine's iPXE ROM gets its script from us, boots our deploy ramdisk, which streams the image onto
the disk, reads it back and reports; the machine is set to boot from disk and powered on: it boots
the image (a boot sector that prints a marker) and the server is `running`. Delete boots the
ramdisk again to wipe the partition tables and leaves the machine off. The machine is not registered
by hand: it PXE-boots once with a MAC nobody knows, is enrolled in `prepare`, and `baremetal-prepare`
gives it its BMC."""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.baremetal import (
    BOOTED,
    IMAGE_MB,
    VIRT_WORK,
    VM_SH,
    blank_disk,
    boot_lan,
    boot_sector_image,
    deploy_ramdisk,
    file_sha,
    pxe_settings,
)
from tests.support.bmc import USER, IpmiSim
from tests.support.controller import Controller
from tests.support.peers import need, need_binary, need_root

BRIDGE, TAP, SERVER_IP = "bmdp0", "bmdp0-t0", "10.213.92.1"
MAC = "52:54:00:92:00:10"
DISK_MB = 96


@pytest.fixture(scope="module")
def lan() -> Iterator[None]:
    need_root()
    need_binary("qemu-system-x86_64", "qemu-system-x86")
    need(Path("/usr/lib/ipxe/qemu/efi-virtio.rom").exists(), "needs qemu's iPXE ROM (apt install ipxe-qemu)")
    need((VIRT_WORK / "kroot").is_dir(), f"needs the guest kernel in {VIRT_WORK}/kroot (scripts/setup-virt.sh)")
    with boot_lan(BRIDGE, TAP, SERVER_IP):
        yield


@pytest.fixture(scope="module")
def ramdisk() -> Path:
    return deploy_ramdisk()


def climc_json(ctl: Controller, *args: str) -> Any:
    r = ctl.climc(*args, "-o", "json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def wait_status(ctl: Controller, name: str, want: set[str], timeout: float) -> dict[str, Any]:
    end = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < end:
        r = ctl.api.get(f"/api/s/compute_v2/servers/{name}")
        if r.status_code == 404 and "deleted" in want:
            return {"status": "deleted"}
        if r.status_code == 200:
            last = r.json()["server"]
            if last["status"] in want:
                return last
        time.sleep(0.3)
    raise AssertionError(f"server {name} not in {want} after {timeout} s: {last}")


def test_server_create_deploys_an_image_onto_a_pxe_booted_machine_and_delete_wipes_it(
        lan: None, ramdisk: Path, tmp_path: Path) -> None:
    sim = IpmiSim(tmp_path, name="bmdp-sim", serial="DEPLOY-SN-1")
    sim.attach_vm(VM_SH.replace("@TAP@", TAP).replace("@MAC@", MAC))
    disk = sim.dir / "disk.raw"
    blank_disk(disk, DISK_MB)
    image = tmp_path / "bm-image.raw"
    image_sha = boot_sector_image(image)
    ctl = Controller.init(tmp_path / "ctl")
    ctl.env.update(pxe_settings(BRIDGE, ramdisk))
    try:
        sim.start()
        ctl.serve()
        # an unknown machine PXE-boots on the boot network: it is enrolled in prepare, disabled
        assert sim.ipmitool("chassis", "bootdev", "pxe").returncode == 0
        assert sim.ipmitool("chassis", "power", "on").returncode == 0
        name = "bm-" + MAC.replace(":", "")
        end = time.monotonic() + 60
        while time.monotonic() < end and ctl.api.get(f"/api/s/compute_v2/hosts/{name}").status_code != 200:
            time.sleep(0.3)
        h = climc_json(ctl, "host-show", name)
        assert h["status"] == "prepare" and not h["enabled"] and h["access_mac"] == MAC, h
        assert "baremetal-prepare" in h["sys_info"]["executor_error"], h
        assert sim.ipmitool("chassis", "power", "off").returncode == 0
        # baremetal-prepare gives it its BMC: inventory read, enabled, online
        h = climc_json(ctl, "baremetal-prepare", name, "--ipmi-ip", "127.0.0.1", "--ipmi-port", str(sim.port),
                       "--ipmi-username", USER, "--ipmi-password", sim.password)
        assert h["status"] == "running" and h["enabled"] and h["host_status"] == "online", h
        assert h["power_status"] == "off" and h["sys_info"]["facts"]["hostname"] == "DEPLOY-SN-1", h
        img = climc_json(ctl, "image-upload", "bm-img", str(image), "--format", "raw")
        assert img["status"] == "active", img

        # the BMC goes away mid-deploy (the machine was powered on into the ramdisk): the server ends
        # deploy_fail saying what to do, nothing transient is left; with the BMC back, a retry deploys
        boots = sim.dir / "boots"
        srv = climc_json(ctl, "server-create", "bm-lost", "--hypervisor", "baremetal", "--image", "bm-img")
        end = time.monotonic() + 120
        while time.monotonic() < end and " n" not in (boots.read_text() if boots.exists() else ""):
            time.sleep(0.1)
        assert " n" in boots.read_text(), "the machine was not PXE-booted"
        sim.stop()
        lost = wait_status(ctl, "bm-lost", {"running", "deploy_fail", "sched_fail", "disk_fail", "net_fail"}, 240)
        assert lost["status"] == "deploy_fail", lost
        tasks = ctl.api.get("/api/s/compute_v2/servers/bm-lost/tasks").json()["tasks"]
        assert any("BMC" in (t["reason"] or "") and "host-ipmi-probe" in (t["reason"] or "") for t in tasks), tasks
        assert all(t["status"] in ("done", "failed") for t in tasks), tasks  # nothing left in flight
        sim.start()  # the BMC is back (same address): probe it, delete the failed server, create again
        assert climc_json(ctl, "host-ipmi-probe", name)["host_status"] == "online"
        assert ctl.climc("server-delete", "-f", "bm-lost").returncode == 0
        wait_status(ctl, "bm-lost", {"deleted"}, 120)

        t0 = time.monotonic()
        srv = climc_json(ctl, "server-create", "bm-srv", "--hypervisor", "baremetal", "--disk", "bm-img")
        assert srv["hypervisor"] == "baremetal", srv
        srv = wait_status(ctl, "bm-srv", {"running", "deploy_fail", "sched_fail", "disk_fail", "net_fail"}, 240)
        took = time.monotonic() - t0
        assert srv["status"] == "running", srv
        assert srv["host_id"] == h["id"]
        # the image is on the machine's disk, byte for byte, and the machine booted it
        assert file_sha(disk, IMAGE_MB << 20) == image_sha
        serial = sim.dir / "serial.log"
        end = time.monotonic() + 180  # a TCG boot from the disk: minutes on a loaded box
        while time.monotonic() < end and BOOTED not in (serial.read_bytes() if serial.exists() else b""):
            time.sleep(0.2)
        assert BOOTED in serial.read_bytes(), (sim.dir / "boots").read_text()
        assert sim.ipmitool("chassis", "power", "status").stdout.strip() == "Chassis Power is on"
        print(f"server-create -> running (PXE, ramdisk, 64 MiB image, boot from disk): {took:.1f} s; "
              f"boots: {(sim.dir / 'boots').read_text().split()}")

        # a second server finds no free machine: the one there is taken whole
        r = ctl.climc("server-create", "bm-srv2", "--hypervisor", "baremetal", "--disk", "bm-img", "-o", "json")
        if r.returncode == 0:
            assert wait_status(ctl, "bm-srv2", {"sched_fail", "running"}, 60)["status"] == "sched_fail"
            assert ctl.climc("server-delete", "-f", "bm-srv2").returncode == 0

        # delete: the ramdisk wipes the partition table, the machine stays off
        assert ctl.climc("server-delete", "-f", "bm-srv").returncode == 0
        wait_status(ctl, "bm-srv", {"deleted"}, 180)
        with open(disk, "rb") as f:
            assert f.read(1 << 20) == b"\0" * (1 << 20)
        assert sim.ipmitool("chassis", "power", "status").stdout.strip() == "Chassis Power is off"
        hs = climc_json(ctl, "host-show", name)
        assert hs["host_status"] == "online", hs
    finally:
        ctl.stop()
        sim.stop_vm()
        sim.stop()
