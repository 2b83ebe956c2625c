"""A bare-metal machine to deploy onto, for the deploy test and bench/baremetal_deploy.py: a bridge
with a tap (the boot network), ipmi_sim whose chassis program starts a qemu VM with a blank disk
that PXE-boots (or boots its disk), a bootable raw image, and the deploy kernel + ramdisk."""
from __future__ import annotations

import hashlib
import os
import random
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

VIRT_WORK = Path(os.environ.get("VIRT_WORK", "/tmp/cm-virt"))
CACHE = Path(os.environ.get("CLOUDPODS_PEER_CACHE", "/var/cache/cloudpods-ci"))
ROOT = Path(__file__).resolve().parents[2]
IMAGE_MB = 64
BOOTED = b"CP-DISK-BOOTED"

def vm_script(start: str) -> str:
    """The chassis program of ipmi_sim: start | stop | status of the qemu "machine" behind the simulated
    BMC (each returns at once); ``start`` is the shell of the ``start)`` case (its ``;;`` included)."""
    return """#!/bin/sh
# start | stop | status of the qemu "machine" behind the simulated BMC (must return at once)
D=$(dirname "$0"); PIDF=$D/vm.pid
alive() { [ -s $PIDF ] || return 1; st=$(awk '/^State:/{print $2}' /proc/$(cat $PIDF)/status 2>/dev/null)
          [ -n "$st" ] && [ "$st" != Z ]; }
case $1 in
""" + start + """
stop) if alive; then kill $(cat $PIDF); i=0; while alive && [ $i -lt 50 ]; do sleep 0.05; i=$((i+1)); done
        alive && kill -9 $(cat $PIDF); fi; rm -f $PIDF ;;
status) if alive; then echo 1; else echo 0; fi ;;
esac
exit 0
"""


# the deploy machine: a disk, booted from the network when its BMC's next boot device is pxe
VM_SH = vm_script("""start) order=c; [ "$(cat $D/boot.state 2>/dev/null)" = pxe ] && order=n
       echo "$(date +%s.%N) start $order" >> $D/boots
       [ -s $D/serial.log ] && cat $D/serial.log >> $D/serial.all; : > $D/serial.log
       qemu-system-x86_64 -name bmdp-vm -accel tcg -m 256 -smp 1 -display none -monitor none -no-reboot \\
         -boot $order -drive file=$D/disk.raw,if=virtio,format=raw,cache=unsafe \\
         -netdev tap,id=n0,ifname=@TAP@,script=no,downscript=no \\
         -device virtio-net-pci,netdev=n0,mac=@MAC@ -serial file:$D/serial.log \\
         -pidfile $PIDF -daemonize </dev/null >>$D/qemu.log 2>&1 ;;""")


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


@contextmanager
def boot_lan(bridge: str, tap: str, server_ip: str) -> Iterator[None]:
    """A bridge holding ``server_ip``/24 (the controller's boot network) and a tap for the VM."""
    from pyroute2 import IPRoute

    def remove() -> None:
        with IPRoute() as ipr:
            for name in (tap, bridge):
                for i in ipr.link_lookup(ifname=name):
                    ipr.link("del", index=i)

    remove()
    with IPRoute() as ipr:
        ipr.link("add", ifname=bridge, kind="bridge", br_stp_state=0, br_forward_delay=0)
        br = ipr.link_lookup(ifname=bridge)[0]
        ipr.addr("add", index=br, address=server_ip, prefixlen=24)
        ipr.link("set", index=br, state="up")
        ipr.link("add", ifname=tap, kind="tuntap", mode="tap")
        ipr.link("set", index=ipr.link_lookup(ifname=tap)[0], master=br, state="up")
    try:
        yield
    finally:
        remove()


SMALL_KERNEL = CACHE / "deploy-kernel" / "bzImage"


def build_small_kernel() -> None:
    """The small deploy kernel (scripts/build-deploy-kernel.sh: minutes the first time, then cached)."""
    r = subprocess.run([str(ROOT / "scripts" / "build-deploy-kernel.sh"), str(SMALL_KERNEL)], capture_output=True,
                       text=True, check=False)
    if r.returncode != 0:
        raise RuntimeError(f"build-deploy-kernel.sh failed: {r.stderr.strip()[-2000:]}")


def deploy_ramdisk(small: bool = False) -> Path:
    """deploy.kernel + deploy.initrd (scripts/build-deploy-ramdisk.sh, cached; rebuilt when changed): with the
    small kernel of scripts/build-deploy-kernel.sh (``small``: bench/baremetal_deploy.py, after
    ``build_small_kernel``), else the Debian cloud kernel and its modules."""
    env = dict(os.environ)
    out = CACHE / "deploy-ramdisk"
    if small:
        env["DEPLOY_KERNEL"], out = str(SMALL_KERNEL), CACHE / "deploy-ramdisk-small"
    r = subprocess.run([str(ROOT / "scripts" / "build-deploy-ramdisk.sh"), str(out), str(VIRT_WORK / "kroot")],
                       capture_output=True, text=True, check=False, env=env)
    if r.returncode != 0:
        raise RuntimeError(f"build-deploy-ramdisk.sh failed: {r.stderr.strip()}")
    return out


def pxe_settings(bridge: str, ramdisk: Path) -> dict[str, str]:
    """A controller's environment for its PXE boot network on ``bridge`` with the deploy kernel and
    ramdisk of ``ramdisk`` (``deploy_ramdisk()``)."""
    return {"CLOUDPODS_BAREMETAL_PXE_INTERFACE": bridge,
            "CLOUDPODS_BAREMETAL_DEPLOY_KERNEL": str(ramdisk / "deploy.kernel"),
            "CLOUDPODS_BAREMETAL_DEPLOY_RAMDISK": str(ramdisk / "deploy.initrd")}


def blank_disk(path: Path, size_mb: int) -> None:
    with open(path, "wb") as f:
        f.truncate(size_mb << 20)
