"""The libvirt connection of one host, and the facts an agent reports about that host."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import threading
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import libvirt

from drivers.base import (
    Gpu,
    GuestNotFound,
    HostFacts,
    HostNic,
    HypervisorError,
    InvalidSpec,
    NumaCell,
    StoragePath,
)
from drivers.kvm.events import ensure_event_loop

__all__ = ["Host", "read_gpus", "read_nics", "storage_usage"]

log = logging.getLogger(__name__)

_silenced = False


def _silence_libvirt_stderr() -> None:
    # libvirt prints every error to stderr by default; we raise them as exceptions instead
    global _silenced
    if not _silenced:
        libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
        _silenced = True


class Host:
    """One libvirt connection (opened lazily, reopened when it dies) plus host facts."""

    def __init__(
        self,
        uri: str,
        *,
        domain_type: str = "auto",
        storage_paths: tuple[str, ...] = (),
        sysfs_root: str = "/sys",
    ) -> None:
        if domain_type not in ("auto", "kvm", "qemu", "test"):
            raise InvalidSpec(f"domain_type must be auto, kvm, qemu or test, got {domain_type!r}")
        self.uri = uri
        self._domain_type = domain_type
        self.storage_paths = tuple(storage_paths)
        self.sysfs_root = sysfs_root
        self._conn: Any = None
        self._lock = threading.Lock()

    # --- connection ---------------------------------------------------------------------------

    def conn(self) -> Any:
        """The open connection; opens (or reopens) it on demand."""
        with self._lock:
            if self._conn is not None:
                try:
                    if self._conn.isAlive():
                        return self._conn
                except libvirt.libvirtError:
                    pass
                self._conn = None
            _silence_libvirt_stderr()
            ensure_event_loop()  # before open, or the connection never delivers events
            try:
                self._conn = libvirt.open(self.uri)
            except libvirt.libvirtError as exc:
                raise HypervisorError(f"cannot connect to {self.uri}: {exc.get_error_message()}") from None
            return self._conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.close()
                except libvirt.libvirtError:
                    pass
                self._conn = None

    def lookup(self, guest_id: str) -> Any:
        """A domain by uuid or by name."""
        conn = self.conn()
        try:
            try:
                return conn.lookupByUUIDString(guest_id)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() not in (libvirt.VIR_ERR_NO_DOMAIN, libvirt.VIR_ERR_INVALID_ARG):
                    raise
            return conn.lookupByName(guest_id)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                raise GuestNotFound(guest_id) from None
            raise HypervisorError(exc.get_error_message()) from None

    def domains(self) -> list[Any]:
        try:
            return list(self.conn().listAllDomains(0))
        except libvirt.libvirtError as exc:
            raise HypervisorError(exc.get_error_message()) from None

    # --- facts --------------------------------------------------------------------------------

    def capabilities(self) -> ET.Element:
        try:
            return ET.fromstring(self.conn().getCapabilities())
        except libvirt.libvirtError as exc:
            raise HypervisorError(exc.get_error_message()) from None

    def guest_types(self, arch: str | None = None) -> tuple[str, ...]:
        """Domain types libvirt offers for ``arch`` (default: the host's), e.g. ('qemu', 'kvm')."""
        caps = self.capabilities()
        arch = arch or caps.findtext("host/cpu/arch") or os.uname().machine
        types: list[str] = []
        for g in caps.iterfind("guest"):
            a = g.find("arch")
            if a is not None and a.get("name") == arch:
                for d in a.iterfind("domain"):
                    t = d.get("type", "")
                    if t and t not in types:
                        types.append(t)
        return tuple(types)

    def domain_type(self) -> str:
        """'kvm' when the host offers it, else 'qemu' (software emulation), unless configured."""
        if self._domain_type != "auto":
            return self._domain_type
        return "kvm" if "kvm" in self.guest_types() else "qemu"

    def facts(self) -> HostFacts:
        conn = self.conn()
        try:
            model, memory_mb, cpus, mhz, _nodes, sockets, cores, threads = conn.getInfo()
            hostname = conn.getHostname()
            hv_version = conn.getVersion()
        except libvirt.libvirtError as exc:
            raise HypervisorError(exc.get_error_message()) from None
        caps = self.capabilities()
        cpu_model = caps.findtext("host/cpu/model") or model
        arch = caps.findtext("host/cpu/arch") or model
        return HostFacts(
            hostname=hostname or socket.gethostname(),
            arch=arch,
            cpu_model=cpu_model,
            cpu_count=int(cpus),
            cpu_mhz=int(mhz),
            sockets=int(sockets),
            cores_per_socket=int(cores),
            threads_per_core=int(threads),
            memory_mb=int(memory_mb),
            numa=_numa(caps),
            hypervisor=self.domain_type(),
            hypervisor_version=_version(hv_version),
            guest_types=self.guest_types(arch),
            storage=storage_usage(self.storage_paths),
            nics=read_nics(self.sysfs_root),
            gpus=read_gpus(self.sysfs_root),
        )


def _numa(caps: ET.Element) -> tuple[NumaCell, ...]:
    cells = []
    for cell in caps.iterfind("host/topology/cells/cell"):
        mem = cell.find("memory")
        kib = int(mem.text or 0) if mem is not None else 0
        if mem is not None and mem.get("unit") not in (None, "KiB"):
            kib = 0  # libvirt always reports KiB; anything else we do not guess at
        cpus = tuple(sorted(int(c.get("id", "0")) for c in cell.iterfind("cpus/cpu")))
        cells.append(NumaCell(id=int(cell.get("id", "0")), memory_mb=kib // 1024, cpus=cpus))
    return tuple(cells)


def _version(v: int) -> str:
    return f"{v // 1_000_000}.{v // 1000 % 1000}.{v % 1000}"


def storage_usage(paths: tuple[str, ...]) -> tuple[StoragePath, ...]:
    """Capacity and free space of each configured storage directory (missing ones are skipped)."""
    out = []
    for p in paths:
        try:
            st = os.statvfs(p)
        except OSError:
            log.warning("storage path %s is not accessible", p)
            continue
        out.append(
            StoragePath(
                path=p,
                total_mb=st.f_blocks * st.f_frsize // 2**20,
                free_mb=st.f_bavail * st.f_frsize // 2**20,
            )
        )
    return tuple(out)


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def read_nics(sysfs_root: str = "/sys") -> tuple[HostNic, ...]:
    """Network interfaces from sysfs (loopback excluded)."""
    base = Path(sysfs_root) / "class" / "net"
    nics = []
    try:
        names = sorted(os.listdir(base))
    except OSError:
        return ()
    for name in names:
        d = base / name
        if name == "lo":
            continue
        uevent = _read(d / "uevent") or ""
        if (d / "bridge").exists():
            kind = "bridge"
        elif (d / "bonding").exists():
            kind = "bond"
        elif "DEVTYPE=vlan" in uevent:
            kind = "vlan"
        elif (d / "device").exists():
            kind = "physical"
        else:
            kind = "virtual"
        speed_s = _read(d / "speed")
        try:
            speed = int(speed_s) if speed_s is not None and int(speed_s) > 0 else None
        except ValueError:
            speed = None
        nics.append(
            HostNic(
                name=name,
                mac=_read(d / "address") or "",
                mtu=int(_read(d / "mtu") or 0),
                up=(_read(d / "operstate") or "") in ("up", "unknown"),
                speed_mbps=speed,
                kind=kind,
            )
        )
    return tuple(nics)


def read_gpus(sysfs_root: str = "/sys") -> tuple[Gpu, ...]:
    """Display controllers (PCI class 0x03) and processing accelerators (0x12) from sysfs."""
    base = Path(sysfs_root) / "bus" / "pci" / "devices"
    try:
        addrs = sorted(os.listdir(base))
    except OSError:
        return ()
    gpus = []
    for addr in addrs:
        d = base / addr
        cls = _read(d / "class") or ""
        if not cls.startswith(("0x03", "0x12")):
            continue
        drv = d / "driver"
        gpus.append(
            Gpu(
                address=addr,
                vendor_id=(_read(d / "vendor") or "").removeprefix("0x"),
                device_id=(_read(d / "device") or "").removeprefix("0x"),
                description=_lspci_name(addr) if sysfs_root == "/sys" else "",
                driver=os.path.basename(os.readlink(drv)) if drv.is_symlink() else None,
            )
        )
    return tuple(gpus)


def _lspci_name(addr: str) -> str:
    # lspci knows vendor/device names (pci.ids); without it we report ids only
    exe = shutil.which("lspci")
    if not exe:
        return ""
    try:
        out = subprocess.run(
            [exe, "-mm", "-s", addr], capture_output=True, text=True, timeout=5, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    parts = [p.strip('"') for p in _split_quoted(out.strip())]
    return " ".join(parts[2:4]) if len(parts) >= 4 else out.strip()


def _split_quoted(line: str) -> list[str]:
    out, cur, quoted = [], "", False
    for ch in line:
        if ch == '"':
            quoted = not quoted
            cur += ch
        elif ch == " " and not quoted:
            if cur:
                out.append(cur)
            cur = ""
        else:
            cur += ch
    if cur:
        out.append(cur)
    return out
