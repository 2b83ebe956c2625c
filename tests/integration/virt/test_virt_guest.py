"""The real tier: libvirtd + qemu (software emulation) + our bridge + our DHCP server.

A tiny kernel+initramfs guest (scripts/setup-virt.sh) boots from a qcow2 overlay on a cached
base, with our config drive, on a bridge made by netconf, and must obtain exactly the address
we leased it; stop shuts it off; delete removes the domain, the overlay and the tap.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from virt_peers import make_lan, need, need_exe, need_module, need_root, wait_for

pytestmark = pytest.mark.full

BRIDGE, SERVER_IP, GUEST_IP, MAC, TAP = (
    "cmtg0",
    "10.213.79.1",
    "10.213.79.77",
    "52:54:00:79:00:77",
    "cmtg-tap0",
)


@pytest.fixture
def qemu_host(virt_work: Path) -> Iterator[None]:
    need_root()
    need_module("libvirt")
    need_module("pyroute2")
    need_module("pycdlib")
    need_exe("qemu-img", "qemu-system-x86_64")
    need(
        (virt_work / "vmlinuz").exists() and (virt_work / "initrd.img").exists(),
        f"no guest kernel/initramfs in {virt_work}; run scripts/setup-virt.sh",
    )
    import libvirt

    libvirt.registerErrorHandler(lambda c, e: None, None)
    try:
        libvirt.open("qemu:///system").close()
    except libvirt.libvirtError as exc:
        need(
            False,
            f"libvirtd is not answering on qemu:///system ({exc.get_error_message()}); "
            "run scripts/setup-virt.sh",
        )
    yield


def base_image_bytes() -> Iterator[bytes]:
    """What glance would stream: a small qcow2 image."""
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "base.qcow2")
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", p, "64M"], check=True)
        with open(p, "rb") as f:
            while chunk := f.read(1 << 16):
                yield chunk


def test_guest_gets_our_ip_then_stops_and_is_deleted(
    qemu_host: None, virt_work: Path, tmp_path: Path
) -> None:
    from core.agent.dhcp import DhcpServer, Lease
    from core.agent.imagecache import ImageCache
    from core.agent.netconf import HostNetwork
    from drivers.base import DiskSpec, GuestEvent, GuestNotFound, GuestSpec, GuestStatus, NicSpec
    from drivers.kvm.configdrive import ConfigDrive, NicConfig, build_config_drive
    from drivers.kvm.disks import create_overlay
    from drivers.kvm.driver import KvmDriver

    gid = str(uuid.uuid4())
    inst = tmp_path / "instances" / gid
    net = HostNetwork()
    net.remove_wire(BRIDGE)  # leftovers of a killed run
    cleanup_lan = make_lan(BRIDGE, SERVER_IP, 24)
    drv = KvmDriver("qemu:///system", domain_type="qemu", instances_dir=str(tmp_path / "instances"))
    events: list[GuestEvent] = []
    stopped = threading.Event()

    def on_event(ev: GuestEvent) -> None:
        if ev.guest_id == gid:
            events.append(ev)
            if ev.event == "stopped":
                stopped.set()

    try:
        links = net.ensure_wire(BRIDGE)  # idempotent on the bridge the LAN helper made
        assert links.bridge == BRIDGE and net.is_up(BRIDGE)

        cache = ImageCache(str(tmp_path / "cache"), lambda image_id: base_image_bytes())
        base = cache.get("tiny-image")
        root = create_overlay(base, str(inst / "root.qcow2"))
        assert root.backing_file == base
        cd = build_config_drive(
            str(inst / "config.iso"),
            ConfigDrive(
                instance_id=gid, hostname="cmt-guest", password="not-on-disk", nics=(NicConfig(mac=MAC),)
            ),
        )
        serial = inst / "serial.log"

        drv.watch_events(on_event)
        with DhcpServer(
            BRIDGE,
            [Lease(mac=MAC, ip=GUEST_IP, prefixlen=24, gateway=SERVER_IP, dns=(SERVER_IP,), lease_time=3600)],
        ) as dhcp:
            t0 = time.monotonic()
            g = drv.create_guest(
                GuestSpec(
                    name=f"cmt-{gid[:8]}",
                    uuid=gid,
                    vcpu=1,
                    memory_mb=256,
                    disks=(DiskSpec(path=root.path),),
                    nics=(NicSpec(mac=MAC, bridge=BRIDGE, ifname=TAP),),
                    config_drive=cd,
                    serial_log=str(serial),
                    kernel=str((virt_work / "vmlinuz").resolve()),
                    initrd=str((virt_work / "initrd.img").resolve()),
                    cmdline="console=ttyS0 panic=-1 quiet cm.net cm.stay",
                )
            )
            assert g.status is GuestStatus.RUNNING
            assert TAP in net.bridge_ports(BRIDGE)

            def dhcp_line() -> str | None:
                text = serial.read_text(errors="replace") if serial.exists() else ""
                return next((ln for ln in text.splitlines() if ln.startswith("CM-DHCP-")), None)

            line = wait_for(dhcp_line, 90, "the guest's DHCP result on its serial console")
            booted = time.monotonic() - t0
            assert isinstance(line, str) and line.startswith("CM-DHCP-OK:"), line
            assert (
                f"inet {GUEST_IP}/24" in line and f"router={SERVER_IP}" in line and f"dns={SERVER_IP}" in line
            )
            assert dhcp.responder.bindings()[MAC].ip == GUEST_IP
            print(f"guest had {GUEST_IP} {booted:.1f} s after create")

        t1 = time.monotonic()
        drv.stop_guest(g.id, timeout=5)  # ACPI first; the busybox guest may ignore it, then it is destroyed
        assert drv.get_guest(g.id).status is GuestStatus.STOPPED
        graceful = "CM-MARKER: acpi shutdown" in serial.read_text(errors="replace")
        print(f"stop took {time.monotonic() - t1:.1f} s ({'graceful' if graceful else 'forced after 5 s'})")
        assert stopped.wait(10), events
        names = [e.event for e in events]  # real qemu also reports resumed (it starts vCPUs paused)
        assert (
            names[0] == "defined" and "started" in names and names.index("started") < names.index("stopped")
        )
        assert events[names.index("stopped")].status is GuestStatus.STOPPED
        assert not net.exists(TAP)  # qemu gone, tap gone

        drv.delete_guest(g.id)
        with pytest.raises(GuestNotFound):
            drv.get_guest(g.id)
        assert not Path(root.path).exists() and not Path(cd).exists() and not serial.exists()
        assert Path(base).exists()  # the cached base stays for the next guest
        assert not net.exists(TAP)
    finally:
        try:
            drv.delete_guest(gid)
        except GuestNotFound:
            pass
        drv.close()
        cleanup_lan()
        net.remove_wire(BRIDGE)
