"""Hardened intake: what an uploaded image really is, and whether we keep it.

Every upload is refused *before* it is used or converted when:
- its bytes are not the declared format (a "raw" file carrying a qcow2 header would be probed as
  qcow2 by a careless consumer and could read the host's files through a backing file);
- a qcow2 names a backing file or an external data file (CVE-2015-5162 class of attacks);
- a VMDK is a text descriptor or not ``monolithicSparse``/``streamOptimized`` (flat extents point
  at other files);
- its virtual size exceeds the configured cap (a tiny qcow2 can claim exabytes).

Our own header parsing runs first (it needs no subprocess and cannot be tricked into opening
another file); then ``qemu-img info`` runs with an explicit ``-f`` (never probing), under CPU and
memory limits, for the virtual size and format-specific details.
"""
from __future__ import annotations

import json
import os
import resource
import struct
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import CloudpodsError, InputParameterError, NotSupportedError

DISK_FORMATS = ("raw", "qcow2", "iso", "vmdk", "vhd")
CONVERTIBLE = ("raw", "qcow2", "vmdk")  # targets of ?format=
CONTAINER_FORMATS = ("bare", "ovf", "ova", "docker", "compressed")
# our name -> qemu-img's driver name
QEMU_DRIVER = {"raw": "raw", "iso": "raw", "qcow2": "qcow2", "vmdk": "vmdk", "vhd": "vpc"}
# declared format -> detected formats that honestly are that format
COMPATIBLE = {"raw": {"raw", "iso"}, "iso": {"iso"}, "qcow2": {"qcow2"}, "vmdk": {"vmdk"}, "vhd": {"vhd"}}
VMDK_OK_TYPES = ("monolithicSparse", "streamOptimized")
_QCOW2_INCOMPAT_DATA_FILE = 1 << 2


class ImageRefused(InputParameterError):
    """The bytes were inspected and refused (the upload is killed and removed)."""

    error_class = "InputParameterError"


class QemuImgUnavailable(CloudpodsError):
    """qemu-img is not installed: we cannot inspect, so we do not accept."""

    code, error_class, title = 503, "ServiceUnavailableError", "Service Unavailable"


@dataclass(frozen=True)
class Detected:
    format: str  # one of DISK_FORMATS, or another well-known name (vhdx, vdi, qed, luks)
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Inspection:
    format: str
    virtual_size: int
    actual_size: int
    details: dict[str, Any] = field(default_factory=dict)


def check_disk_format(fmt: str | None, *, required: bool = False) -> str | None:
    if fmt is None or fmt == "":
        if required:
            raise InputParameterError(f"disk_format is required (one of {', '.join(DISK_FORMATS)})")
        return None
    if not isinstance(fmt, str):
        raise InputParameterError(f"disk_format: expected a string (one of {', '.join(DISK_FORMATS)})")
    f = fmt.strip().lower()
    if f not in DISK_FORMATS:
        raise InputParameterError(f"disk_format {fmt!r} is not supported (one of {', '.join(DISK_FORMATS)})")
    return f


def check_container_format(fmt: str | None) -> str:
    if fmt is not None and not isinstance(fmt, str):
        raise InputParameterError(f"container_format: expected a string (one of {', '.join(CONTAINER_FORMATS)})")
    f = (fmt or "bare").strip().lower()
    if f not in CONTAINER_FORMATS:
        raise InputParameterError(f"container_format {fmt!r} is not supported (one of {', '.join(CONTAINER_FORMATS)})")
    return f


def sniff(path: Path) -> Detected:
    """Identify the format from magic numbers; refuse files that point at other files."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(4096)
        iso_mark = b""
        if size >= 0x8006:
            f.seek(0x8001)
            iso_mark = f.read(5)
        tail = b""
        if size >= 512:
            f.seek(size - 512)
            tail = f.read(512)
    if head[:4] == b"QFI\xfb":
        return _sniff_qcow2(head)
    if head[:4] == b"KDMV":
        return Detected("vmdk")
    if b"# Disk DescriptorFile" in head[:1024] or b"createType=" in head[:4096]:
        raise ImageRefused("VMDK descriptor files (flat or split extents that point at other files) are refused; "
                           "upload a monolithicSparse or streamOptimized VMDK")
    if head[:8] == b"conectix" or tail[:8] == b"conectix":
        return Detected("vhd")
    if head[:8] == b"vhdxfile":
        return Detected("vhdx")
    if head[:4] == b"QED\x00":
        return Detected("qed")
    if head[:6] == b"LUKS\xba\xbe":
        return Detected("luks")
    if len(head) >= 0x44 and struct.unpack("<I", head[0x40:0x44])[0] == 0xBEDA107F:
        return Detected("vdi")
    if iso_mark in (b"CD001", b"BEA01", b"NSR02", b"NSR03"):
        return Detected("iso")
    return Detected("raw")


def _sniff_qcow2(head: bytes) -> Detected:
    if len(head) < 72:
        raise ImageRefused("truncated qcow2 header")
    version, backing_off, backing_len = struct.unpack(">IQI", head[4:20])
    if backing_off != 0 or backing_len != 0:
        raise ImageRefused("qcow2 images with a backing file are refused (it could read other files on the host)")
    if version >= 3 and len(head) >= 80:
        (incompatible,) = struct.unpack(">Q", head[72:80])
        if incompatible & _QCOW2_INCOMPAT_DATA_FILE:
            raise ImageRefused("qcow2 images with an external data file are refused")
    return Detected("qcow2")


def _limits() -> None:  # runs in the child before exec
    resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30))
    resource.setrlimit(resource.RLIMIT_CPU, (30, 30))


def qemu_img(args: list[str], *, binary: str = "qemu-img", timeout: float = 60.0,
             limit: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run([binary, *args], capture_output=True, text=True, timeout=timeout,
                              env={"LC_ALL": "C", "PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                              preexec_fn=_limits if limit else None, check=False)
    except FileNotFoundError:
        raise QemuImgUnavailable("qemu-img is not installed on the controller (apt install qemu-utils)") from None
    except subprocess.TimeoutExpired:
        raise ImageRefused(f"qemu-img {args[0]} took longer than {timeout:.0f}s; image refused") from None


def qemu_info(path: Path, fmt: str, *, binary: str = "qemu-img", timeout: float = 60.0) -> dict[str, Any]:
    """``qemu-img info`` with an explicit driver (never probing; backing files are not opened)."""
    r = qemu_img(["info", "-f", QEMU_DRIVER.get(fmt, fmt), "--output=json", str(path)],
                 binary=binary, timeout=timeout)
    if r.returncode != 0:
        reason = (r.stderr.strip().splitlines() or ["unreadable"])[-1]
        raise ImageRefused(f"not a valid {fmt} image: {reason.removeprefix('qemu-img: ')[:300]}")
    try:
        data = json.loads(r.stdout)
    except ValueError:
        raise ImageRefused(f"qemu-img could not describe the {fmt} image") from None
    if not isinstance(data, dict):
        raise ImageRefused(f"qemu-img could not describe the {fmt} image")
    return data


def inspect_image(path: Path, declared: str | None, *, max_virtual_size: int, binary: str = "qemu-img",
                  timeout: float = 60.0) -> Inspection:
    """Decide whether the staged file at ``path`` is acceptable; return its real format and size."""
    actual = path.stat().st_size
    if actual == 0:
        raise ImageRefused("the image is empty (0 bytes)")
    det = sniff(path)
    if det.format not in DISK_FORMATS:
        raise ImageRefused(f"{det.format} images are not supported (accepted: {', '.join(DISK_FORMATS)})")
    if declared is not None and det.format not in COMPATIBLE[declared]:
        raise ImageRefused(f"declared disk_format {declared} but the data is {det.format}; "
                           f"upload it with disk_format={det.format}")
    fmt = declared if declared is not None else det.format
    info = qemu_info(path, fmt, binary=binary, timeout=timeout)
    if info.get("backing-filename") or info.get("full-backing-filename"):
        raise ImageRefused("images with a backing file are refused")
    spec = (info.get("format-specific") or {}).get("data") or {}
    if fmt == "qcow2" and spec.get("data-file"):
        raise ImageRefused("qcow2 images with an external data file are refused")
    if fmt == "vmdk":
        ctype = spec.get("create-type", "")
        if ctype not in VMDK_OK_TYPES:
            raise ImageRefused(f"VMDK create type {ctype or 'unknown'} is refused "
                               f"(accepted: {', '.join(VMDK_OK_TYPES)})")
        for ext in spec.get("extents", []) or []:
            fn = ext.get("filename")
            if fn and os.path.realpath(fn) != os.path.realpath(path):
                raise ImageRefused("VMDK extents that point at other files are refused")
    vsize = int(info.get("virtual-size") or 0)
    if fmt in ("raw", "iso"):
        vsize = actual  # qemu-img rounds raw sizes up to a sector
    if vsize > max_virtual_size:
        raise ImageRefused(f"virtual size {vsize} bytes exceeds the cap of {max_virtual_size} bytes")
    return Inspection(fmt, vsize, actual, {"detected": det.format})


def convert(src: Path, src_fmt: str, dst: Path, dst_fmt: str, *, binary: str = "qemu-img",
            timeout: float = 4 * 3600.0) -> None:
    """Convert an image we already inspected; explicit ``-f`` and ``-O`` always."""
    if dst_fmt not in CONVERTIBLE:
        raise NotSupportedError(f"cannot convert to {dst_fmt} (supported: {', '.join(CONVERTIBLE)})")
    r = qemu_img(["convert", "-q", "-f", QEMU_DRIVER[src_fmt], "-O", QEMU_DRIVER[dst_fmt], str(src), str(dst)],
                 binary=binary, timeout=timeout, limit=False)
    if r.returncode != 0:
        reason = (r.stderr.strip().splitlines() or ["failed"])[-1]
        raise CloudpodsError(f"conversion {src_fmt} -> {dst_fmt} failed: {reason[:300]}")
