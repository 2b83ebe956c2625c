"""Disks of a cold migration, staged on the controller between the source's upload and the target's
download (the transfer and who may make it: core/hostapi/migrations.py).

    <data_dir>/migrations/<server id>/<disk id>          the file (0600, dirs 0700)
    <data_dir>/migrations/<server id>/<disk id>.sha256   its sha256, computed while it streamed in

``ServerMigrateTask`` discards the server's staging dir when the migration completes or fails.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

from core.errors import InputParameterError, ResourceNotFoundError

_SID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_DISK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")

_root: list[Path] = []  # set by the region's background start (the task's cleanup needs it)


def configure(data_dir: Path | str) -> None:
    _root[:] = [Path(data_dir) / "migrations"]


def unconfigure() -> None:
    _root.clear()


def staging_dir(data_dir: Path | str, server_id: str) -> Path:
    if not _SID.match(server_id):
        raise InputParameterError(f"bad server id {server_id!r}")
    return Path(data_dir) / "migrations" / server_id


def disk_file(data_dir: Path | str, server_id: str, disk_id: str) -> Path:
    if not _DISK.match(disk_id):
        raise InputParameterError(f"bad disk id {disk_id!r}")
    return staging_dir(data_dir, server_id) / disk_id


def discard(server_id: str, data_dir: Path | str | None = None) -> None:
    """The server's staged disks gone (fine if there were none)."""
    roots = [Path(data_dir) / "migrations"] if data_dir is not None else list(_root)
    for root in roots:
        if _SID.match(server_id):
            shutil.rmtree(root / server_id, ignore_errors=True)


def staged(data_dir: Path | str, server_id: str, disk_id: str) -> tuple[Path, str]:
    """The staged file and its sha256 (404 if the source has not uploaded it)."""
    path = disk_file(data_dir, server_id, disk_id)
    try:
        sha = (path.parent / f"{disk_id}.sha256").read_text().strip()
    except FileNotFoundError:
        sha = ""
    if not path.is_file() or not sha:
        raise ResourceNotFoundError(f"disk {disk_id} of server {server_id} is not staged on the controller")
    return path, sha
