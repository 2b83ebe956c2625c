"""Bare metal, power to PXE: `climc host-boot-device pxe` + `host-power-on` through the controller
reach ipmi_sim, whose chassis program starts a qemu "machine"; its iPXE ROM gets its address and
boot file from OUR DHCP server (core/agent/dhcp.py) and the boot script, kernel and initrd from OUR
read-only TFTP server (core/agent/tftp.py); the machine's kernel boots and prints its marker.
(Writing an image to the machine's disk with a deploy ramdisk is not built yet.)"""
from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.baremetal import vm_script
from tests.support.bmc import USER, IpmiSim
from tests.support.controller import Controller
from tests.support.peers import need, need_binary, need_root

B = "/api/s/compute_v2"
BRIDGE, TAP, SERVER_IP = "bmpx0", "bmpx0-t0", "10.213.91.1"
MAC, MACHINE_IP = "52:54:00:91:00:10", "10.213.91.10"
VIRT_WORK = Path(os.environ.get("VIRT_WORK", "/tmp/cm-virt"))

# no disk: it boots from the network, or from the (empty) CD-ROM then the network
VM_SH = vm_script("""start) order=n; [ "$(cat $D/boot.state 2>/dev/null)" = pxe ] || order=cn
       : > $D/serial.log
       qemu-system-x86_64 -name bmpx-vm -accel tcg -m 256 -smp 1 -display none -monitor none -no-reboot \\
         -boot $order -netdev tap,id=n0,ifname=@TAP@,script=no,downscript=no \\
         -device virtio-net-pci,netdev=n0,mac=@MAC@ -serial file:$D/serial.log \\
         -pidfile $PIDF -daemonize </dev/null >>$D/qemu.log 2>&1 ;;""")


@pytest.fixture(scope="module")
def lan() -> Iterator[None]:
    need_root()
    need_binary("qemu-system-x86_64", "qemu-system-x86")
    need(Path("/usr/lib/ipxe/qemu/efi-virtio.rom").exists(), "needs qemu's iPXE ROM (apt install ipxe-qemu)")
    need((VIRT_WORK / "vmlinuz").exists() and (VIRT_WORK / "initrd.img").exists(),
         f"needs the guest kernel and initramfs in {VIRT_WORK} (scripts/setup-virt.sh)")
    from tests.support.baremetal import boot_lan

    with boot_lan(BRIDGE, TAP, SERVER_IP):
        yield


@pytest.fixture(scope="module")
def boot_services(lan: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[object, object]]:
    from core.agent.dhcp import DhcpServer, Lease
    from core.agent.tftp import TftpBootServer

    root = tmp_path_factory.mktemp("tftp")
    shutil.copy(VIRT_WORK / "vmlinuz", root / "vmlinuz")
    shutil.copy(VIRT_WORK / "initrd.img", root / "initrd.img")
    (root / "boot.ipxe").write_text(
        "#!ipxe\n"
        f"kernel tftp://{SERVER_IP}/vmlinuz console=ttyS0 initrd=initrd.img quiet\n"
        f"initrd tftp://{SERVER_IP}/initrd.img\nboot\n")
    # legacy ROMs would get undionly.kpxe (iPXE); qemu's ROM is iPXE already and gets the script
    lease = Lease(mac=MAC, ip=MACHINE_IP, prefixlen=24, next_server=SERVER_IP, bootfile="undionly.kpxe",
                  ipxe_bootfile="boot.ipxe")
    with DhcpServer(BRIDGE, [lease]) as dhcp, TftpBootServer(root, SERVER_IP, 69) as tftp:
        yield dhcp, tftp


def test_power_on_over_ipmi_pxe_boots_from_our_dhcp_and_tftp(boot_services: tuple[object, object],
                                                             tmp_path: Path) -> None:
    dhcp, tftp = boot_services
    sim = IpmiSim(tmp_path, name="bmpx-sim", serial="PXE-SN-1")
    sim.attach_vm(VM_SH.replace("@TAP@", TAP).replace("@MAC@", MAC))
    ctl = Controller.init(tmp_path / "ctl")
    try:
        sim.start()
        ctl.serve()
        r = ctl.climc("host-create", "pxe1", "--zone", "zone0", "--host-type", "baremetal", "--ipmi-addr", "127.0.0.1",
                      "--ipmi-port", str(sim.port), "--ipmi-user", USER, "--ipmi-passwd", sim.password,
                      "-o", "json")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["power_status"] == "off"
        assert ctl.climc("host-boot-device", "pxe1", "pxe").returncode == 0
        t0 = time.monotonic()
        r = ctl.climc("host-power-on", "pxe1")
        assert r.returncode == 0, r.stderr
        serial = sim.dir / "serial.log"
        # TCG boot; iPXE waits ~13 s for IPv6 autoconf without a router here; on a loaded box (load 30-60)
        # the ~8 MB initrd over TFTP alone took more than 90 s
        end = time.monotonic() + 300
        while time.monotonic() < end and "CM-MARKER: guest userspace up" not in (
                serial.read_text(errors="replace") if serial.exists() else ""):
            time.sleep(0.2)
        took = time.monotonic() - t0
        log = serial.read_text(errors="replace") if serial.exists() else ""
        assert "CM-MARKER: guest userspace up" in log, (log[-2000:], (sim.dir / "qemu.log").read_text()
                                                        if (sim.dir / "qemu.log").exists() else "")
        kinds = [e.kind for e in dhcp.events if e.mac == MAC]  # type: ignore[attr-defined]
        assert "offer" in kinds and "ack" in kinds, kinds
        assert {"boot.ipxe", "vmlinuz", "initrd.img"} <= {n.lstrip("/") for n in tftp.served}  # type: ignore[attr-defined]
        t_wall = time.time() - (time.monotonic() - t0)
        acks = [e.at - t_wall for e in dhcp.events if e.mac == MAC and e.kind == "ack"]  # type: ignore[attr-defined]
        print(f"IPMI power on -> kernel userspace from our DHCP/TFTP: {took:.1f} s (DHCP acks at {acks}, TFTP "
              f"{[(round(t - t_wall, 1), n) for t, n in tftp.started_at]})")  # type: ignore[attr-defined]
        # the machine powers itself off at the end of the initramfs: the BMC says so
        end = time.monotonic() + 60
        while time.monotonic() < end and sim.ipmitool("chassis", "power", "status").stdout.strip() != \
                "Chassis Power is off":
            time.sleep(0.5)
        assert sim.ipmitool("chassis", "power", "status").stdout.strip() == "Chassis Power is off"
    finally:
        ctl.stop()
        sim.stop_vm()
        sim.stop()
