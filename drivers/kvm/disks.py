"""Guest disk files with qemu-img: qcow2 overlays on a cached base (O(1)), data disks, resize."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass

from drivers.base import HypervisorError, InvalidSpec

__all__ = ["DiskInfo", "create_data_disk", "create_overlay", "delete_disk", "disk_info", "resize_disk"]

_FORMATS = frozenset({"qcow2", "raw"})


@dataclass(frozen=True)
class DiskInfo:
    path: str
    format: str
    virtual_size_mb: int
    actual_size_mb: int
    backing_file: str | None


def create_overlay(
    base: str, path: str, *, backing_format: str = "qcow2", size_mb: int | None = None
) -> DiskInfo:
    """A qcow2 file at ``path`` whose reads fall through to ``base``; creation cost is O(1).

    ``size_mb`` grows the overlay's virtual size beyond the base's (never below it).
    """
    _check_abs(base, "base image")
    _check_abs(path, "overlay path")
    if backing_format not in _FORMATS:
        raise InvalidSpec(f"backing format must be one of {sorted(_FORMATS)}, got {backing_format!r}")
    if not os.path.isfile(base):
        raise InvalidSpec(f"base image {base} does not exist")
    if os.path.exists(path):
        raise InvalidSpec(f"{path} already exists")
    if size_mb is not None and size_mb <= 0:
        raise InvalidSpec("overlay size must be positive")
    args = ["create", "-q", "-f", "qcow2", "-F", backing_format, "-b", base, path]
    if size_mb is not None:
        args.append(f"{size_mb}M")
    _create(args, path)
    return disk_info(path)


def create_data_disk(path: str, size_mb: int, *, fmt: str = "qcow2") -> DiskInfo:
    """An empty disk (sparse raw or qcow2) of ``size_mb`` MiB."""
    _check_abs(path, "disk path")
    if fmt not in _FORMATS:
        raise InvalidSpec(f"disk format must be one of {sorted(_FORMATS)}, got {fmt!r}")
    if size_mb <= 0:
        raise InvalidSpec("disk size must be positive")
    if os.path.exists(path):
        raise InvalidSpec(f"{path} already exists")
    _create(["create", "-q", "-f", fmt, path, f"{size_mb}M"], path)
    return disk_info(path)


def resize_disk(path: str, size_mb: int) -> DiskInfo:
    """Grow a disk's virtual size to ``size_mb`` MiB; shrinking is refused (it loses data)."""
    info = disk_info(path)
    if size_mb < info.virtual_size_mb:
        raise InvalidSpec(f"cannot shrink {path} from {info.virtual_size_mb} MiB to {size_mb} MiB")
    if size_mb == info.virtual_size_mb:
        return info
    _qemu_img(["resize", "-q", "-f", info.format, path, f"{size_mb}M"])
    return disk_info(path)


def disk_info(path: str) -> DiskInfo:
    _check_abs(path, "disk path")
    if not os.path.exists(path):
        raise InvalidSpec(f"{path} does not exist")
    # -U: also works while a running guest holds the image lock
    out = _qemu_img(["info", "-U", "--output=json", path])
    data = json.loads(out)
    return DiskInfo(
        path=path,
        format=data["format"],
        virtual_size_mb=int(data["virtual-size"]) // 2**20,
        actual_size_mb=int(data.get("actual-size", 0)) // 2**20,
        backing_file=data.get("backing-filename") or data.get("full-backing-filename"),
    )


def delete_disk(path: str) -> bool:
    """Remove a disk file; True if it existed (deleting twice is fine)."""
    _check_abs(path, "disk path")
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False


def _create(args: list[str], path: str, timeout: float = 120) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
        _qemu_img(args, timeout=timeout)
    except HypervisorError:
        delete_disk(path)  # never leave a half-written file under a name someone will trust
        raise


def _qemu_img(args: list[str], timeout: float = 120) -> str:
    exe = shutil.which("qemu-img")
    if exe is None:
        raise HypervisorError("qemu-img not found (apt install qemu-utils)")
    proc = subprocess.run([exe, *args], capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        raise HypervisorError(f"qemu-img {args[0]}: {proc.stderr.strip() or proc.stdout.strip()}")
    return proc.stdout


def _check_abs(path: str, what: str) -> None:
    if not isinstance(path, str) or not path.startswith("/") or "\0" in path:
        raise InvalidSpec(f"{what} must be an absolute path, got {path!r}")
