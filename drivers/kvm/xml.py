"""libvirt domain XML: built from a GuestSpec, and parsed back into one.

Only this module knows libvirt's XML shape (as Nova's ``config.py`` does); the driver passes
specs in and gets specs out.
"""

from __future__ import annotations

import string
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass

from drivers.base import DiskSpec, GuestSpec, InvalidSpec, NicSpec

__all__ = [
    "DOMAIN_TYPES",
    "ConsolePlaces",
    "console_places",
    "METADATA_NS",
    "DomainDevices",
    "DomainDisk",
    "build_domain_xml",
    "disk_device_xml",
    "free_target",
    "iso_drive_xml",
    "rebridged",
    "parse_devices",
    "parse_disks",
    "retarget",
    "spec_from_xml",
    "with_disk",
    "without_disk",
]

DOMAIN_TYPES = frozenset({"kvm", "qemu", "test"})
METADATA_NS = "https://cloudpods-one.dev/xmlns/guest/1"

ET.register_namespace("cloudpods", METADATA_NS)  # a readable prefix instead of ns0

GUEST_AGENT_CHANNEL = "org.qemu.guest_agent.0"
ISO_SERIAL = "cloudpods-iso"  # the serial of the ISO drive: how it is told from the config drive

_BUS_PREFIX = {"virtio": "vd", "scsi": "sd", "sata": "sd", "ide": "hd"}


@dataclass(frozen=True)
class DomainDevices:
    """What a (running) domain's XML says about the files and taps it uses."""

    disk_paths: tuple[str, ...]
    taps: tuple[str, ...]
    serial_log: str | None


@dataclass(frozen=True)
class DomainDisk:
    """One ``<disk>`` of a domain: its file, target device (vda, hdc, ...), bus and kind."""

    path: str
    dev: str
    bus: str
    device: str


def build_domain_xml(spec: GuestSpec, *, domain_type: str, machine: str = "pc") -> str:
    """Return the libvirt domain XML for ``spec``; ``domain_type`` is 'kvm' or 'qemu' ('test' for test:///)."""
    if domain_type not in DOMAIN_TYPES:
        raise InvalidSpec(f"domain type must be one of {sorted(DOMAIN_TYPES)}, got {domain_type!r}")
    dom = ET.Element("domain", type=domain_type)
    ET.SubElement(dom, "name").text = spec.name
    ET.SubElement(dom, "uuid").text = spec.uuid
    meta = ET.SubElement(dom, "metadata")
    ET.SubElement(meta, f"{{{METADATA_NS}}}instance").set("managed", "true")
    ET.SubElement(dom, "memory", unit="MiB").text = str(spec.memory_mb)
    ET.SubElement(dom, "currentMemory", unit="MiB").text = str(spec.memory_mb)
    ET.SubElement(dom, "vcpu", placement="static").text = str(spec.vcpu)

    os_el = ET.SubElement(dom, "os")
    ET.SubElement(os_el, "type", arch=spec.arch, machine=machine).text = "hvm"
    if spec.kernel:
        ET.SubElement(os_el, "kernel").text = spec.kernel
        if spec.initrd:
            ET.SubElement(os_el, "initrd").text = spec.initrd
        if spec.cmdline:
            ET.SubElement(os_el, "cmdline").text = spec.cmdline
    elif not spec.boot_order:  # a boot order is per device (<boot order=N/>): libvirt takes one or the other
        ET.SubElement(os_el, "boot", dev="hd")

    features = ET.SubElement(dom, "features")
    ET.SubElement(features, "acpi")
    ET.SubElement(features, "apic")
    if domain_type == "kvm":
        # the guest sees the host CPU; under emulation (qemu) the default model is safer
        ET.SubElement(dom, "cpu", mode="host-passthrough")
    ET.SubElement(dom, "clock", offset="utc")
    ET.SubElement(dom, "on_poweroff").text = "destroy"
    ET.SubElement(dom, "on_reboot").text = "restart"
    ET.SubElement(dom, "on_crash").text = "destroy"

    devices = ET.SubElement(dom, "devices")
    used: dict[str, int] = {}
    order = {dev: n for n, dev in enumerate(spec.boot_order, start=1)} if not spec.kernel else {}
    for i, disk in enumerate(spec.disks):
        _disk(devices, disk, _target_dev(disk.bus, used), boot=order.get(f"disk{i}"))
    if spec.config_drive:
        _disk(devices, DiskSpec(path=spec.config_drive, format="raw", bus="ide", device="cdrom", readonly=True),
              _target_dev("ide", used))
    if spec.iso is not None:
        _iso_drive(devices, spec.iso, _target_dev("ide", used), boot=order.get("cdrom"))
    for nic in spec.nics:
        _interface(devices, nic)
    if spec.serial_log and not spec.serial_console:
        serial = ET.SubElement(devices, "serial", type="file")
        ET.SubElement(serial, "source", path=spec.serial_log)
        ET.SubElement(serial, "target", port="0")
    else:
        # a pty the agent's console proxy attaches to; libvirt still copies its output to the log
        serial = ET.SubElement(devices, "serial", type="pty")
        if spec.serial_log:
            ET.SubElement(serial, "log", file=spec.serial_log, append="on")
        ET.SubElement(serial, "target", port="0")
    if spec.guest_agent:  # libvirt picks the socket; setUserPassword talks to qemu-ga through it
        chan = ET.SubElement(devices, "channel", type="unix")
        ET.SubElement(chan, "target", type="virtio", name=GUEST_AGENT_CHANNEL)
    if spec.vnc_listen:
        # no password: the address is loopback (or the management network) and only the agent's
        # proxy, behind the controller's one-time console tokens, connects to it
        gfx = ET.SubElement(devices, "graphics", type="vnc", port="-1", autoport="yes", listen=spec.vnc_listen)
        ET.SubElement(gfx, "listen", type="address", address=spec.vnc_listen)
        video = ET.SubElement(devices, "video")
        ET.SubElement(video, "model", type="vga")
    ET.SubElement(devices, "memballoon", model="none")
    ET.indent(dom)
    return ET.tostring(dom, encoding="unicode")


def spec_from_xml(xml: str) -> GuestSpec:
    """Parse domain XML (ours, or libvirt's expansion of it) back into a GuestSpec."""
    root = _parse(xml)
    mem = root.find("memory")
    disks: list[DiskSpec] = []
    config_drive = iso = None
    boots: dict[str, int] = {}
    for d in root.iterfind("devices/disk"):
        src = d.find("source")
        path = src.get("file") if src is not None else None
        boot = d.find("boot")
        if d.get("device") == "cdrom" and d.findtext("serial") == ISO_SERIAL:
            iso = path or ""  # our ISO drive (empty or not), told from the config drive by its serial
            if boot is not None:
                boots["cdrom"] = int(boot.get("order", "0"))
            continue
        if not path:
            continue
        if boot is not None and d.get("device", "disk") == "disk":
            boots[f"disk{len(disks)}"] = int(boot.get("order", "0"))
        drv = d.find("driver")
        tgt = d.find("target")
        device = d.get("device", "disk")
        spec = DiskSpec(
            path=path,
            format=drv.get("type", "raw") if drv is not None else "raw",
            bus=tgt.get("bus", "virtio") if tgt is not None else "virtio",
            device=device,
            readonly=d.find("readonly") is not None,
        )
        if device == "cdrom" and config_drive is None:
            config_drive = path  # our builder attaches the config drive as the first cdrom
        else:
            disks.append(spec)
    nics: list[NicSpec] = []
    for i in root.iterfind("devices/interface"):
        mac = i.find("mac")
        src = i.find("source")
        tgt = i.find("target")
        model = i.find("model")
        nics.append(
            NicSpec(
                mac=mac.get("address", "") if mac is not None else "",
                bridge=(src.get("bridge") or "") if src is not None else "",
                ifname=tgt.get("dev") if tgt is not None else None,
                model=model.get("type", "virtio") if model is not None else "virtio",
            )
        )
    ostype = root.find("os/type")
    return GuestSpec(
        name=_text(root, "name"),
        uuid=_text(root, "uuid"),
        vcpu=int(_text(root, "vcpu")),
        memory_mb=_to_mib(int(_text(root, "memory")), mem.get("unit", "KiB") if mem is not None else "KiB"),
        disks=tuple(disks),
        nics=tuple(nics),
        config_drive=config_drive,
        iso=iso,
        boot_order=tuple(sorted(boots, key=lambda k: boots[k])),
        serial_log=parse_devices(xml).serial_log,
        kernel=root.findtext("os/kernel") or None,
        initrd=root.findtext("os/initrd") or None,
        cmdline=root.findtext("os/cmdline") or None,
        arch=ostype.get("arch", "x86_64") if ostype is not None else "x86_64",
        vnc_listen=_vnc_listen(root),
        serial_console=any(s.get("type") == "pty" for s in root.iterfind("devices/serial")),
        guest_agent=any(t.get("name") == GUEST_AGENT_CHANNEL for t in root.iterfind("devices/channel/target")),
    )


@dataclass(frozen=True)
class ConsolePlaces:
    """Where a running domain's consoles listen (its live XML): VNC (address, port) and the serial pty."""

    vnc: tuple[str, int] | None
    serial_pty: str | None


def console_places(xml: str) -> ConsolePlaces:
    """Read from the live XML, where libvirt fills in the autoport and the pty it opened."""
    root = _parse(xml)
    vnc = None
    for g in root.iterfind("devices/graphics"):
        port = g.get("port", "-1")
        if g.get("type") == "vnc" and port.lstrip("-").isdigit() and int(port) > 0:
            vnc = (_vnc_listen(root) or "127.0.0.1", int(port))
            break
    pty = None
    for s in root.iterfind("devices/serial"):
        src = s.find("source")
        tgt = s.find("target")
        if s.get("type") == "pty" and src is not None and src.get("path") and \
                (tgt is None or tgt.get("port", "0") == "0"):
            pty = src.get("path")
            break
    return ConsolePlaces(vnc=vnc, serial_pty=pty)


def _vnc_listen(root: ET.Element) -> str | None:
    for g in root.iterfind("devices/graphics"):
        if g.get("type") != "vnc":
            continue
        addr = g.find("listen[@type='address']")
        return (addr.get("address") if addr is not None else None) or g.get("listen") or "127.0.0.1"
    return None


def parse_devices(xml: str) -> DomainDevices:
    """The disk files, tap names and serial log file of a domain."""
    root = _parse(xml)
    paths = []
    for d in root.iterfind("devices/disk"):
        src = d.find("source")
        if src is not None and src.get("file"):
            paths.append(src.get("file", ""))
    taps = [t.get("dev", "") for t in root.iterfind("devices/interface/target") if t.get("dev")]
    serial = None
    for s in root.iterfind("devices/serial"):
        src, log = s.find("source"), s.find("log")
        if s.get("type") == "file" and src is not None and src.get("path"):
            serial = src.get("path")
            break
        if log is not None and log.get("file"):  # a pty whose output libvirt copies to a file
            serial = log.get("file")
            break
    return DomainDevices(disk_paths=tuple(paths), taps=tuple(taps), serial_log=serial)


def parse_disks(xml: str) -> tuple[DomainDisk, ...]:
    """The file-backed disks (and cdroms) of a domain, in document order."""
    out = []
    for d in _parse(xml).iterfind("devices/disk"):
        src, tgt = d.find("source"), d.find("target")
        if src is None or not src.get("file") or tgt is None:
            continue
        out.append(DomainDisk(path=src.get("file", ""), dev=tgt.get("dev", ""), bus=tgt.get("bus", "virtio"),
                              device=d.get("device", "disk")))
    return tuple(out)


def free_target(bus: str, used: set[str], preferred: int) -> str:
    """A target device name on ``bus`` not in ``used``: the ``preferred``-th (vda=0, vdb=1, ...) if free,
    else the first free one. Attached disks follow the builder's scheme: disk index n is the n-th device."""
    prefix = _BUS_PREFIX[bus]
    for n in (preferred, *range(26 * 27)):
        dev = _dev_name(prefix, n)
        if dev not in used:
            return dev
    raise InvalidSpec(f"no free {bus} target device left")


def disk_device_xml(disk: DiskSpec, dev: str) -> str:
    """The ``<disk>`` element alone, as attachDeviceFlags/detachDeviceFlags take it."""
    holder = ET.Element("devices")
    _disk(holder, disk, dev)
    return ET.tostring(holder[0], encoding="unicode")


def with_disk(xml: str, disk: DiskSpec, dev: str) -> str:
    """``xml`` (a domain) with one more disk, after its last disk (a redefinition, for a stopped guest)."""
    return _with_device(xml, disk_device_xml(disk, dev), first=True)


def without_disk(xml: str, path: str) -> str:
    """``xml`` (a domain) without the disk whose source file is ``path``."""
    def is_it(d: ET.Element) -> bool:
        src = d.find("source")
        return src is not None and src.get("file") == path

    return _without_device(xml, "disk", is_it)


def interface_device_xml(nic: NicSpec) -> str:
    """The ``<interface>`` element alone, as attachDeviceFlags takes it."""
    holder = ET.Element("devices")
    _interface(holder, nic)
    return ET.tostring(holder[0], encoding="unicode")


def interface_xml_of(xml: str, mac: str) -> str | None:
    """The ``<interface>`` of ``xml`` (a domain) with ``mac``, as detachDeviceFlags takes it; None if none."""
    root = _parse(xml)
    for el in root.iterfind("./devices/interface"):
        m = el.find("mac")
        if m is not None and (m.get("address") or "").lower() == mac.lower():
            return ET.tostring(el, encoding="unicode")
    return None


def rebridged(xml: str, mac: str, bridge: str) -> str | None:
    """``xml`` (a domain, or one ``<interface>``) with the NIC of ``mac`` on ``bridge`` instead, all else
    kept (its device address, tap, model: the guest sees the same NIC); None if that NIC is on
    ``bridge`` already or is not there."""
    root = _parse(xml)
    changed = False
    for el in [root] if root.tag == "interface" else root.iterfind("./devices/interface"):
        m, src = el.find("mac"), el.find("source")
        if m is None or (m.get("address") or "").lower() != mac.lower() or src is None:
            continue
        if src.get("bridge") not in (None, bridge):
            src.set("bridge", bridge)
            changed = True
    return ET.tostring(root, encoding="unicode") if changed else None


def with_interface(xml: str, nic: NicSpec) -> str:
    """``xml`` (a domain) with one more NIC, after its last one (a redefinition, for a stopped guest)."""
    return _with_device(xml, interface_device_xml(nic), first=False)


def without_interface(xml: str, mac: str) -> str:
    """``xml`` (a domain) without the NIC whose MAC is ``mac``."""
    def is_it(el: ET.Element) -> bool:
        m = el.find("mac")
        return m is not None and (m.get("address") or "").lower() == mac.lower()

    return _without_device(xml, "interface", is_it)


def _with_device(xml: str, device: str, *, first: bool) -> str:
    """``xml`` (a domain) with the element ``device`` after the last of its kind (none yet: first in
    ``<devices>`` when ``first``, else last)."""
    root = _parse(xml)
    devices = root.find("devices")
    if devices is None:
        devices = ET.SubElement(root, "devices")
    el = ET.fromstring(device)
    same = devices.findall(el.tag)
    devices.insert(list(devices).index(same[-1]) + 1 if same else 0 if first else len(devices), el)
    return ET.tostring(root, encoding="unicode")


def _without_device(xml: str, tag: str, is_it: Callable[[ET.Element], bool]) -> str:
    """``xml`` (a domain) without its ``<tag>`` devices that ``is_it``."""
    root = _parse(xml)
    devices = root.find("devices")
    for el in list(devices) if devices is not None else []:
        if el.tag == tag and is_it(el):
            devices.remove(el)  # type: ignore[union-attr]
    return ET.tostring(root, encoding="unicode")


def retarget(xml: str, *, paths: dict[str, str], nics: dict[str, tuple[str, str]]) -> str:
    """A running domain's XML as another host will run it: every file in ``paths`` (disk sources,
    serial/console files, kernel, initrd) replaced by that host's file, each interface (by MAC) on
    that host's bridge and tap. Devices, addresses and everything else stay: libvirt refuses a live
    migration whose guest ABI changes. A disk or interface with no counterpart is an error (the
    guest would lose it)."""
    root = _parse(xml)
    for tag in ("kernel", "initrd"):
        el = root.find(f"os/{tag}")
        if el is not None and el.text:
            el.text = _moved(paths, el.text.strip(), tag)
    for d in root.iterfind("devices/disk"):
        src = d.find("source")
        if src is not None and src.get("file"):
            src.set("file", _moved(paths, src.get("file", ""), "disk"))
    for kind in ("serial", "console"):
        for el in root.iterfind(f"devices/{kind}"):
            src = el.find("source")
            if el.get("type") == "file" and src is not None and src.get("path"):
                src.set("path", _moved(paths, src.get("path", ""), kind))
    for el in root.iterfind("devices/interface"):
        mac = el.find("mac")
        addr = (mac.get("address", "") if mac is not None else "").lower()
        if addr not in nics:
            raise InvalidSpec(f"interface {addr or '?'} has no counterpart on the target")
        bridge, tap = nics[addr]
        src = el.find("source")
        if src is not None and src.get("bridge") is not None:
            src.set("bridge", bridge)
        tgt = el.find("target")
        if tgt is not None:
            if tap:
                tgt.set("dev", tap)
            else:
                el.remove(tgt)
    return ET.tostring(root, encoding="unicode")


def _moved(paths: dict[str, str], path: str, what: str) -> str:
    if path not in paths:
        raise InvalidSpec(f"{what} {path} has no counterpart on the target")
    return paths[path]


def _disk(devices: ET.Element, disk: DiskSpec, dev: str, boot: int | None = None) -> None:
    el = ET.SubElement(devices, "disk", type="file", device=disk.device)
    ET.SubElement(el, "driver", name="qemu", type=disk.format)
    ET.SubElement(el, "source", file=disk.path)
    ET.SubElement(el, "target", dev=dev, bus=disk.bus)
    if boot is not None:
        ET.SubElement(el, "boot", order=str(boot))
    if disk.readonly or disk.device == "cdrom":
        ET.SubElement(el, "readonly")


def _iso_drive(devices: ET.Element, path: str, dev: str, boot: int | None = None) -> None:
    """The guest's CD-ROM drive for ISOs, ``path`` in it ("" : empty); its serial tells it from the
    config drive when the XML is read back."""
    el = ET.SubElement(devices, "disk", type="file", device="cdrom")
    ET.SubElement(el, "driver", name="qemu", type="raw")
    if path:
        ET.SubElement(el, "source", file=path)
    ET.SubElement(el, "target", dev=dev, bus="ide")
    if boot is not None:
        ET.SubElement(el, "boot", order=str(boot))
    ET.SubElement(el, "readonly")
    ET.SubElement(el, "serial").text = ISO_SERIAL


def iso_drive_xml(xml: str, path: str) -> str | None:
    """The ISO drive ``<disk>`` of ``xml`` (a domain) with ``path`` in it ("": empty), as
    updateDeviceFlags takes it for a media change; None if the domain has no ISO drive."""
    for d in _parse(xml).iterfind("devices/disk"):
        if d.findtext("serial") != ISO_SERIAL:
            continue
        src = d.find("source")
        if src is not None:
            d.remove(src)
        if path:
            d.insert(1, ET.Element("source", file=path))
        return ET.tostring(d, encoding="unicode")
    return None


def _interface(devices: ET.Element, nic: NicSpec) -> None:
    el = ET.SubElement(devices, "interface", type="bridge")
    ET.SubElement(el, "mac", address=nic.mac)
    ET.SubElement(el, "source", bridge=nic.bridge)
    if nic.ifname:
        ET.SubElement(el, "target", dev=nic.ifname)
    ET.SubElement(el, "model", type=nic.model)


def _target_dev(bus: str, used: dict[str, int]) -> str:
    prefix = _BUS_PREFIX[bus]
    n = used.get(prefix, 0)
    used[prefix] = n + 1
    if prefix == "hd" and n >= 4:
        raise InvalidSpec("at most 4 ide devices (including the config drive)")
    return _dev_name(prefix, n)


def _dev_name(prefix: str, n: int) -> str:
    letters = string.ascii_lowercase
    return prefix + (letters[n] if n < 26 else letters[n // 26 - 1] + letters[n % 26])


def _parse(xml: str) -> ET.Element:
    try:
        return ET.fromstring(xml)
    except ET.ParseError as exc:
        raise InvalidSpec(f"bad domain XML: {exc}") from None


def _text(root: ET.Element, path: str) -> str:
    value = root.findtext(path)
    if value is None:
        raise InvalidSpec(f"domain XML has no <{path}>")
    return value.strip()


def _to_mib(value: int, unit: str) -> int:
    factor = {
        "b": 1,
        "bytes": 1,
        "KiB": 1024,
        "k": 1024,
        "MiB": 1024**2,
        "M": 1024**2,
        "GiB": 1024**3,
        "G": 1024**3,
    }
    if unit not in factor:
        raise InvalidSpec(f"unknown memory unit {unit!r}")
    return value * factor[unit] // 1024**2
