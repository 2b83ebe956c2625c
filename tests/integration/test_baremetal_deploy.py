"""Bare metal deploy end to end: `climc server-create --hypervisor baremetal --disk IMG` against a
controller whose PXE boot network (core/agent/pxe.py: our DHCP + HTTP, IPv6 RA) is a bridge here.

ipmi_sim's chassis program starts a qemu "machine" (software emulation) with a blank disk; the
scheduler picks the ready machine, the driver sets a PXE boot over IPMI and powers it on, the
machine's iPXE ROM gets its script from us, boots our deploy ramdisk, which streams the image onto
the disk, reads it back and reports; the machine is set to boot from disk and powered on: it boots
the image (a boot sector that prints a marker) and the server is `running`. Delete boots the
ramdisk again to wipe the partition tables and leaves the machine off."""
from __future__ import annotations

import hashlib
import json
import os
import random
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.bmc import USER, IpmiSim
from tests.support.controller import Controller
from tests.support.peers import need, need_binary, need_root

BRIDGE, TAP, SERVER_IP = "bmdp0", "bmdp0-t0", "10.213.92.1"
MAC = "52:54:00:92:00:10"
VIRT_WORK = Path(os.environ.get("VIRT_WORK", "/tmp/cm-virt"))
CACHE = Path(os.environ.get("CLOUDPODS_PEER_CACHE", "/var/cache/cloudpods-ci"))
ROOT = Path(__file__).resolve().parents[2]
IMAGE_MB = 64
DISK_MB = 96
BOOTED = b"CP-DISK-BOOTED"

VM_SH = """#!/bin/sh
# start | stop | status of the qemu "machine" behind the simulated BMC (must return at once)
D=$(dirname "$0"); PIDF=$D/vm.pid
alive() { [ -s $PIDF ] || return 1; st=$(awk '/^State:/{print $2}' /proc/$(cat $PIDF)/status 2>/dev/null)
          [ -n "$st" ] && [ "$st" != Z ]; }
case $1 in
start) order=c; [ "$(cat $D/boot.state 2>/dev/null)" = pxe ] && order=n
       echo "$(date +%s.%N) start $order" >> $D/boots
       [ -s $D/serial.log ] && cat $D/serial.log >> $D/serial.all; : > $D/serial.log
       qemu-system-x86_64 -name bmdp-vm -accel tcg -m 256 -smp 1 -display none -monitor none -no-reboot \\
         -boot $order -drive file=$D/disk.raw,if=virtio,format=raw,cache=unsafe \\
         -netdev tap,id=n0,ifname=@TAP@,script=no,downscript=no \\
         -device virtio-net-pci,netdev=n0,mac=@MAC@ -serial file:$D/serial.log \\
         -pidfile $PIDF -daemonize </dev/null >>$D/qemu.log 2>&1 ;;
stop) if alive; then kill $(cat $PIDF); i=0; while alive && [ $i -lt 50 ]; do sleep 0.05; i=$((i+1)); done
        alive && kill -9 $(cat $PIDF); fi; rm -f $PIDF ;;
status) if alive; then echo 1; else echo 0; fi ;;
esac
exit 0
"""


def boot_sector_image(path: Path, size_mb: int = IMAGE_MB) -> str:
    """A raw disk image whose MBR boot code prints BOOTED on COM1 and halts; the rest is random
    bytes (so the read-back check means something). Returns its sha256."""
    msg = BOOTED + b"\r\n\0"
    code = bytes([0x31, 0xC0, 0x8E, 0xD8,              # xor ax,ax; mov ds,ax
                  0xBE, 0x16, 0x7C,                    # mov si, 0x7c16 (msg)
                  0xBA, 0xF8, 0x03,                    # mov dx, 0x3f8 (COM1)
                  0xAC, 0x84, 0xC0, 0x74, 0x03,        # lodsb; test al,al; jz halt
                  0xEE, 0xEB, 0xF8,                    # out dx,al; jmp lodsb
                  0xFA, 0xF4, 0xEB, 0xFC])             # halt: cli; hlt; jmp halt
    mbr = (code + msg).ljust(510, b"\0") + b"\x55\xaa"
    rnd = random.Random(13)
    h = hashlib.sha256()
    with open(path, "wb") as f:
        for i in range(size_mb):
            block = rnd.randbytes(1 << 20)
            if i == 0:
                block = mbr + block[512:]
            f.write(block)
            h.update(block)
    return h.hexdigest()


def file_sha(path: Path, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        left = size
        while left:
            b = f.read(min(left, 1 << 20))
            if not b:
                break
            h.update(b)
            left -= len(b)
    return h.hexdigest()


@pytest.fixture(scope="module")
def lan() -> Iterator[None]:
    need_root()
    need_binary("qemu-system-x86_64", "qemu-system-x86")
    need(Path("/usr/lib/ipxe/qemu/efi-virtio.rom").exists(), "needs qemu's iPXE ROM (apt install ipxe-qemu)")
    need((VIRT_WORK / "kroot").is_dir(), f"needs the guest kernel in {VIRT_WORK}/kroot (scripts/setup-virt.sh)")
    from pyroute2 import IPRoute

    def remove() -> None:
        with IPRoute() as ipr:
            for name in (TAP, BRIDGE):
                for i in ipr.link_lookup(ifname=name):
                    ipr.link("del", index=i)

    remove()
    with IPRoute() as ipr:
        ipr.link("add", ifname=BRIDGE, kind="bridge", br_stp_state=0, br_forward_delay=0)
        br = ipr.link_lookup(ifname=BRIDGE)[0]
        ipr.addr("add", index=br, address=SERVER_IP, prefixlen=24)
        ipr.link("set", index=br, state="up")
        ipr.link("add", ifname=TAP, kind="tuntap", mode="tap")
        ipr.link("set", index=ipr.link_lookup(ifname=TAP)[0], master=br, state="up")
    try:
        yield
    finally:
        remove()


@pytest.fixture(scope="module")
def ramdisk() -> Path:
    out = CACHE / "deploy-ramdisk"
    r = subprocess.run([str(ROOT / "scripts" / "build-deploy-ramdisk.sh"), str(out), str(VIRT_WORK / "kroot")],
                       capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    return out


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
    with open(disk, "wb") as f:
        f.truncate(DISK_MB << 20)
    image = tmp_path / "bm-image.raw"
    image_sha = boot_sector_image(image)
    ctl = Controller.init(tmp_path / "ctl")
    ctl.env.update(CLOUDPODS_BAREMETAL_PXE_INTERFACE=BRIDGE,
                   CLOUDPODS_BAREMETAL_DEPLOY_KERNEL=str(ramdisk / "deploy.kernel"),
                   CLOUDPODS_BAREMETAL_DEPLOY_RAMDISK=str(ramdisk / "deploy.initrd"))
    try:
        sim.start()
        ctl.serve()
        h = climc_json(ctl, "host-create", "bmdp1", "--zone", "zone0", "--host-type", "baremetal", "--ipmi-ip",
                       "127.0.0.1", "--ipmi-port", str(sim.port), "--ipmi-username", USER, "--ipmi-password",
                       sim.password, "--access-mac", MAC)
        assert h["host_status"] == "online" and h["power_status"] == "off", h
        img = climc_json(ctl, "image-upload", "bm-img", str(image), "--format", "raw")
        assert img["status"] == "active", img

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
        end = time.monotonic() + 60
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
        hs = climc_json(ctl, "host-show", "bmdp1")
        assert hs["host_status"] == "online", hs
    finally:
        ctl.stop()
        vm = sim.dir / "vm.sh"
        if vm.exists():
            os.system(f"{vm} stop")
        sim.stop()
