from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET

import pytest

from drivers.base import DiskSpec, GuestSpec, InvalidSpec, NicSpec
from drivers.kvm.xml import build_domain_xml, parse_devices, spec_from_xml


def full_spec() -> GuestSpec:
    return GuestSpec(
        name="web-1",
        uuid=str(uuid.uuid4()),
        vcpu=2,
        memory_mb=1536,
        disks=(
            DiskSpec(path="/var/lib/i/web-1/root.qcow2"),
            DiskSpec(path="/var/lib/i/web-1/data.raw", format="raw"),
        ),
        nics=(
            NicSpec(mac="52:54:00:00:10:01", bridge="br-w1", ifname="vnic-web1-0"),
            NicSpec(mac="52:54:00:00:10:02", bridge="br-w2", model="e1000"),
        ),
        config_drive="/var/lib/i/web-1/config.iso",
        serial_log="/var/lib/i/web-1/serial.log",
        kernel="/boot/vmlinuz",
        initrd="/boot/initrd.img",
        cmdline="console=ttyS0 quiet",
    )


def test_xml_round_trips_to_the_same_spec() -> None:
    spec = full_spec()
    assert spec_from_xml(build_domain_xml(spec, domain_type="qemu")) == spec


def test_xml_shape() -> None:
    root = ET.fromstring(build_domain_xml(full_spec(), domain_type="qemu"))
    assert root.get("type") == "qemu"
    assert root.find("cpu") is None  # no host-passthrough under emulation
    assert root.find("memory").get("unit") == "MiB" and root.findtext("memory") == "1536"
    disks = root.findall("devices/disk")
    assert [
        (
            d.get("device"),
            d.find("target").get("dev"),
            d.find("target").get("bus"),
            d.find("driver").get("type"),
        )
        for d in disks
    ] == [
        ("disk", "vda", "virtio", "qcow2"),
        ("disk", "vdb", "virtio", "raw"),
        ("cdrom", "hda", "ide", "raw"),
    ]
    assert disks[2].find("readonly") is not None
    nics = root.findall("devices/interface")
    assert [n.get("type") for n in nics] == ["bridge", "bridge"]
    assert nics[0].find("target").get("dev") == "vnic-web1-0"
    assert nics[1].find("target") is None  # libvirt picks a name
    assert nics[1].find("model").get("type") == "e1000"
    serial = root.find("devices/serial")
    assert serial.get("type") == "file" and serial.find("source").get("path") == "/var/lib/i/web-1/serial.log"
    assert root.findtext("os/kernel") == "/boot/vmlinuz" and root.find("os/boot") is None


def test_kvm_type_passes_the_host_cpu() -> None:
    root = ET.fromstring(build_domain_xml(full_spec(), domain_type="kvm"))
    assert root.get("type") == "kvm"
    assert root.find("cpu").get("mode") == "host-passthrough"


def test_disk_boot_without_kernel() -> None:
    spec = GuestSpec(name="plain", uuid=str(uuid.uuid4()), vcpu=1, memory_mb=256)
    root = ET.fromstring(build_domain_xml(spec, domain_type="qemu"))
    assert root.find("os/boot").get("dev") == "hd"
    assert root.find("devices/serial").get("type") == "pty"


def test_hostile_values_are_escaped() -> None:
    spec = GuestSpec(
        name="x", uuid=str(uuid.uuid4()), vcpu=1, memory_mb=256, kernel="/k", cmdline="a='1' <b> & \"c\""
    )
    assert spec_from_xml(build_domain_xml(spec, domain_type="qemu")).cmdline == "a='1' <b> & \"c\""


def test_parse_devices_and_errors() -> None:
    devs = parse_devices(build_domain_xml(full_spec(), domain_type="qemu"))
    assert devs.taps == ("vnic-web1-0",)
    assert devs.serial_log == "/var/lib/i/web-1/serial.log"
    assert len(devs.disk_paths) == 3
    with pytest.raises(InvalidSpec, match="bad domain XML"):
        parse_devices("<domain")
    with pytest.raises(InvalidSpec, match="domain type"):
        build_domain_xml(full_spec(), domain_type="xen")


def test_retarget_moves_every_file_and_interface_and_keeps_the_devices() -> None:
    """A live migration's destination XML: the same devices (libvirt refuses an ABI change), the
    target's files, bridges and taps; anything without a counterpart is refused, never dropped."""
    from drivers.kvm.xml import retarget

    want = full_spec()
    src = build_domain_xml(want, domain_type="qemu")
    paths = {p: p.replace("/var/lib/i/", "/srv/b/") for p in
             ("/var/lib/i/web-1/root.qcow2", "/var/lib/i/web-1/data.raw", "/var/lib/i/web-1/config.iso",
              "/var/lib/i/web-1/serial.log")}
    paths |= {"/boot/vmlinuz": "/srv/b/cache/k", "/boot/initrd.img": "/srv/b/cache/r"}
    nics = {"52:54:00:00:10:01": ("br-b1", "tap-b1"), "52:54:00:00:10:02": ("br-b2", "")}
    out = spec_from_xml(retarget(src, paths=paths, nics=nics))
    assert [d.path for d in out.disks] == ["/srv/b/web-1/root.qcow2", "/srv/b/web-1/data.raw"]
    assert [d.format for d in out.disks] == [d.format for d in want.disks]
    assert (out.config_drive, out.serial_log) == ("/srv/b/web-1/config.iso", "/srv/b/web-1/serial.log")
    assert (out.kernel, out.initrd, out.cmdline) == ("/srv/b/cache/k", "/srv/b/cache/r", want.cmdline)
    assert [(n.mac, n.bridge, n.ifname, n.model) for n in out.nics] == [
        ("52:54:00:00:10:01", "br-b1", "tap-b1", "virtio"), ("52:54:00:00:10:02", "br-b2", None, "e1000")]
    assert (out.uuid, out.name, out.vcpu, out.memory_mb) == (want.uuid, want.name, want.vcpu, want.memory_mb)
    with pytest.raises(InvalidSpec, match="data.raw has no counterpart"):
        retarget(src, paths={k: v for k, v in paths.items() if not k.endswith("data.raw")}, nics=nics)
    with pytest.raises(InvalidSpec, match="52:54:00:00:10:02 has no counterpart"):
        retarget(src, paths=paths, nics={"52:54:00:00:10:01": ("br-b1", "")})


def test_rebridged_moves_one_nic_to_another_bridge_and_keeps_its_device() -> None:
    """change-ipaddr to another network: the same NIC (MAC, tap, model) on the new network's bridge."""
    from drivers.kvm.xml import interface_xml_of, rebridged

    src = build_domain_xml(full_spec(), domain_type="qemu")
    out = rebridged(src, "52:54:00:00:10:02", "br-new")
    assert out is not None
    nics = {n.mac: n for n in spec_from_xml(out).nics}
    before = {n.mac: n for n in spec_from_xml(src).nics}
    assert nics["52:54:00:00:10:02"].bridge == "br-new"
    assert nics["52:54:00:00:10:01"] == before["52:54:00:00:10:01"]
    assert (nics["52:54:00:00:10:02"].ifname, nics["52:54:00:00:10:02"].model) == (
        before["52:54:00:00:10:02"].ifname, before["52:54:00:00:10:02"].model)
    one = interface_xml_of(src, "52:54:00:00:10:02")
    assert one is not None and "br-new" in (rebridged(one, "52:54:00:00:10:02", "br-new") or "")
    assert rebridged(out, "52:54:00:00:10:02", "br-new") is None  # there already: nothing to do
    assert rebridged(src, "52:54:00:00:99:99", "br-new") is None  # no such NIC
