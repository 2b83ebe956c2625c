"""Save a stopped guest's disk as an image: flattened to one standalone qcow2, uploaded to glance.

``qemu-img convert -O qcow2`` reads through the backing chain (the cached base image) and writes
only the guest-visible data; internal snapshots are not copied. The file lives in
``<data dir>/saving/`` (0700) only until the upload ends, then goes either way.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from drivers.base import HypervisorError, ImageUpload, InstanceDisk

__all__ = ["KvmSaveImage"]

_CONVERT_TIMEOUT_S = 6 * 3600.0  # a disk of hundreds of GiB on a slow store; the task fails past it
_ZSTD: bool | None = None  # whether this host's qemu-img writes zstd-compressed qcow2 (qemu >= 5.1)


def _compress_args(work: str) -> list[str]:
    """``qemu-img convert`` options for a zstd-compressed qcow2, or none where qemu-img lacks zstd."""
    global _ZSTD
    if _ZSTD is None:
        from drivers.kvm.disks import _qemu_img

        probe = os.path.join(work, f".zstd-probe-{os.getpid()}.qcow2")
        try:
            _qemu_img(["create", "-q", "-f", "qcow2", "-o", "compression_type=zstd", probe, "1M"], timeout=30)
            _ZSTD = True
        except HypervisorError:
            _ZSTD = False
        finally:
            try:
                os.unlink(probe)
            except FileNotFoundError:
                pass
    return ["-W", "-c", "-o", "compression_type=zstd"] if _ZSTD else []


class KvmSaveImage:
    """``drivers.base.ImageSaver`` for ``KvmInstances`` (which provides env, driver, _snapshot_file...)."""

    env: Any
    simulated: bool

    def _snapshot_file(self, server_id: str, disk: InstanceDisk) -> str:
        raise NotImplementedError

    def _active(self, server_id: str) -> bool:
        raise NotImplementedError

    def save_image(self, server_id: str, disk: InstanceDisk, image_id: str) -> Mapping[str, Any]:
        from drivers.kvm.disks import _qemu_img

        up = self.env.exchange
        if not isinstance(up, ImageUpload):
            raise HypervisorError("this host has no link to the controller's image service")
        src = self._snapshot_file(server_id, disk)
        if self._active(server_id) and not self.simulated:
            raise HypervisorError(f"guest {server_id} is running: stop it before saving disk {disk.id} as an image")
        if not image_id.replace("-", "").isalnum():
            raise HypervisorError(f"bad image id {image_id!r}")
        work = os.path.join(self.env.data_dir, "saving")
        os.makedirs(work, mode=0o700, exist_ok=True)
        dst = os.path.join(work, f"{image_id}.qcow2")
        try:
            # -U: read even if a lock is left over; the region only asks for this with the guest stopped.
            # -t unsafe: no flush of the output -- a transient file, read back at once from the page cache
            # and deleted after the upload (glance syncs its own copy); the flush of 1 GiB on a busy disk
            # was most of a save (bench/day2.py: convert 17.8 s -> 1.2 s).
            # -c zstd (as Cloudpods' hosts compact a saved disk): every byte not sent is one the controller
            # need not hash, write and fsync -- its intake is the shared, CPU-bound part of a save; zstd
            # costs the host ~2 s of CPU a GiB on incompressible data (zlib ~20 s: not worth it), and
            # -W lets qemu-img compress clusters in parallel, written out of order into this file.
            _qemu_img(["convert", "-U", "-q", "-t", "unsafe", *_compress_args(work), "-O", "qcow2", src, dst],
                      timeout=_CONVERT_TIMEOUT_S)
            os.chmod(dst, 0o600)
            return up.upload_image(image_id, dst)
        finally:
            try:
                os.unlink(dst)
            except FileNotFoundError:
                pass
