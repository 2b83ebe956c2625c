"""Bare-metal deploy: `server-create --hypervisor baremetal` of a 64 MiB image → `running`, on a qemu
"machine" (software emulation) behind ipmi_sim that PXE-boots from the controller's boot network;
then `server-delete` (the ramdisk wipes the disk). Also an IPMI power-status call's p50.

    .venv/bin/python bench/baremetal_deploy.py [--rounds 2] [--calls 100]      (as root)

Prints per round: create → running, and the deploy's phases as the boot network saw them (seconds
after the machine's turn was staged, i.e. just before IPMI power on: iPXE script, kernel, ramdisk,
the ramdisk's first request, image download start, report) plus the ramdisk's own markers (guest
uptime). Needs what tests/integration/test_baremetal_deploy.py needs (scripts/setup-virt.sh,
scripts/setup-peers.d/baremetal.sh). Target: power on → running ≤ 20 s. The machine is emulated
(TCG) on a shared 2-core box: everything it does scales with the CPU share it gets, so the bench also
prints the CPU seconds the machine's qemu used from power on to the ramdisk's report (what its wall
time would be on an idle core). ``--small-kernel`` (the default) deploys with the small kernel of
scripts/build-deploy-kernel.sh (built once, minutes); ``--distro-kernel`` with the Debian one + modules.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.procs import cpu_seconds

BRIDGE, TAP, SERVER_IP, MAC = "bmbn0", "bmbn0-t0", "10.213.93.1", "52:54:00:93:00:10"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--calls", type=int, default=100)
    ap.add_argument("--distro-kernel", action="store_true", help="the Debian kernel + modules, not the small one")
    a = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root (the boot network's DHCP listens on port 67, the VM needs a tap)")
    from drivers.baremetal.driver import BaremetalDriver
    from tests.support import baremetal
    from tests.support.baremetal import VM_SH, blank_disk, boot_lan, boot_sector_image, deploy_ramdisk, pxe_settings
    from tests.support.bmc import USER, IpmiSim
    from tests.support.controller import Controller

    work = Path(tempfile.mkdtemp(prefix="bench-bmd-"))
    if not a.distro_kernel:
        baremetal.build_small_kernel()
    rd = deploy_ramdisk(small=not a.distro_kernel)
    print(f"deploy kernel {(rd / 'deploy.kernel').stat().st_size >> 10} KiB, ramdisk "
          f"{(rd / 'deploy.initrd').stat().st_size >> 10} KiB ({rd})")
    with boot_lan(BRIDGE, TAP, SERVER_IP):
        sim = IpmiSim(work, name="bench-bmd", serial="BENCH-SN")
        sim.attach_vm(VM_SH.replace("@TAP@", TAP).replace("@MAC@", MAC))
        blank_disk(sim.dir / "disk.raw", 96)
        image = work / "img.raw"
        boot_sector_image(image)
        ctl = Controller.init(work / "ctl")
        ctl.env.update(pxe_settings(BRIDGE, rd))
        try:
            sim.start()
            ctl.serve()

            def climc(*args: str) -> dict[str, Any]:
                r = ctl.climc(*args, "-o", "json")
                if r.returncode != 0:
                    raise SystemExit(f"climc {args[0]} failed: {r.stderr.strip()}")
                return json.loads(r.stdout) if r.stdout.strip() else {}

            climc("host-create", "bench-bm", "--zone", "zone0", "--host-type", "baremetal", "--ipmi-addr", "127.0.0.1",
                  "--ipmi-port", str(sim.port), "--ipmi-user", USER, "--ipmi-passwd", sim.password,
                  "--access-mac", MAC)
            climc("image-upload", "bench-img", str(image), "--format", "raw")

            drv = BaremetalDriver({"ipmi_ip": "127.0.0.1", "ipmi_port": sim.port, "ipmi_username": USER,
                                   "ipmi_password": sim.password})
            drv.bmc.get_power_state()
            lat = []
            for _ in range(a.calls):
                t = time.perf_counter()
                drv.bmc.get_power_state()
                lat.append((time.perf_counter() - t) * 1000)
            drv.close()
            print(f"IPMI power status, {a.calls} calls: p50 {statistics.median(lat):.1f} ms, max {max(lat):.1f} ms "
                  f"(target p50 <= 50 ms)")

            for n in range(a.rounds):
                load = os.getloadavg()[0]
                cpu = VmCpu(sim.dir / "vm.pid")
                t0 = time.monotonic()
                t0_wall = time.time()
                climc("server-create", f"bench-srv{n}", "--hypervisor", "baremetal", "--disk", "bench-img")
                status = ""
                while time.monotonic() - t0 < 600:
                    r = ctl.api.get(f"/api/s/compute_v2/servers/bench-srv{n}")
                    status = r.json()["server"]["status"] if r.status_code == 200 else "?"
                    if status in ("running", "deploy_fail", "sched_fail"):
                        break
                    time.sleep(0.1)
                took = time.monotonic() - t0
                done_wall = time.time()
                cpu.stop()
                starts = [float(x.split()[0]) for x in (sim.dir / "boots").read_text().splitlines()
                          if x.endswith(" n") and float(x.split()[0]) >= t0_wall]
                power_on = f"{done_wall - starts[0]:.1f} s" if starts else "?"
                text = ctl.log_path.read_text(errors="replace")
                phases = re.findall(r"PXE deploy of .* reported \w+: .* \((.*)\)", text)
                serial = (sim.dir / "serial.all").read_text(errors="replace") if (sim.dir / "serial.all").exists() \
                    else ""
                marks = re.findall(r"CP-DEPLOY: (.*)", serial)
                print(f"round {n + 1}: create -> {status} in {took:.1f} s; PXE power on -> {status} {power_on} "
                      f"(load {load:.1f}, end {os.getloadavg()[0]:.1f})")
                print(f"  machine's CPU (qemu, power on -> off after the report): {cpu.first:.1f} s")
                print(f"  boot network saw: {phases[-1] if phases else '?'}")
                print(f"  ramdisk markers (guest uptime): {'; '.join(m.strip() for m in marks[-6:])}")
                t1 = time.monotonic()
                climc("server-delete", "-f", f"bench-srv{n}")
                while time.monotonic() - t1 < 600 and \
                        ctl.api.get(f"/api/s/compute_v2/servers/bench-srv{n}").status_code != 404:
                    time.sleep(0.2)
                print(f"  delete (PXE wipe, power off): {time.monotonic() - t1:.1f} s")
                (sim.dir / "serial.all").unlink(missing_ok=True)
        finally:
            ctl.stop()
            os.system(f"{sim.dir / 'vm.sh'} stop")
            sim.stop()


class VmCpu:
    """Samples the CPU seconds of the qemu "machine" (the first one started after this) until stop()."""

    def __init__(self, pidfile: Path) -> None:
        self.pidfile, self.first, self._pid = pidfile, 0.0, 0
        self._old = pidfile.read_text().strip() if pidfile.exists() else ""
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            try:
                pid = self.pidfile.read_text().strip()
                if not self._pid and pid and pid != self._old:
                    self._pid = int(pid)
                if self._pid:
                    self.first = cpu_seconds(self._pid)
            except (OSError, ValueError, IndexError):
                continue

    def stop(self) -> None:
        self._stop.set()
        self._t.join()


if __name__ == "__main__":
    main()
