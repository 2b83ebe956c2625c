"""The agent's image cache with what glance said about each image (format, properties).

    images = ImageStore(cfg, link.image)     # link.image: image_id -> streamed response (context manager)
    img = images.get(image_id)               # drivers.base.LocalImage: downloaded once, sha256-checked

Driver-neutral: every hosted driver gets it as ``HostEnv.images`` (drivers.base.ImageSource).
"""
from __future__ import annotations

import json
import os
import shutil
import threading
from typing import Any

import httpx

from core.agent.config import AgentConfig
from core.errors import ConnectionFailedError
from drivers.base import HypervisorError, LocalImage


class ImageStore:
    """The image cache plus what glance said about each image (format, properties)."""

    def __init__(self, cfg: AgentConfig, fetch_meta: Any) -> None:
        from core.agent.imagecache import ImageCache

        self._fetch_meta = fetch_meta  # image_id -> (chunks iterator, headers) context manager
        self._meta: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self.cache = ImageCache(cfg.image_dir, self._fetch)
        self._info: dict[str, LocalImage] = {}

    def _fetch(self, image_id: str) -> Any:
        try:
            with self._fetch_meta(image_id) as resp:
                meta = {"format": resp.headers.get("x-image-format", "raw"),
                        "sha256": resp.headers.get("x-image-sha256", ""),
                        "properties": json.loads(resp.headers.get("x-image-properties") or "{}")}
                self._meta[image_id] = meta
                yield from resp.iter_bytes(1 << 20)
        except (ConnectionFailedError, httpx.TransportError) as e:
            # the controller (or the replica behind the balancer) went away mid-transfer: the image
            # cache tries again, where an HTTP error answer would not be retried
            from core.agent.imagecache import ImageFetchInterrupted

            raise ImageFetchInterrupted(f"download of image {image_id} failed: {e}") from None

    def get(self, image_id: str) -> LocalImage:
        with self._lock:
            hit = self._info.get(image_id)
        if hit is not None and os.path.isfile(hit.path):
            return hit
        path = self.cache.get(image_id)
        meta_dir = os.path.join(self.cache.root, ".meta")  # beside, not among, the cached images
        os.makedirs(meta_dir, exist_ok=True)
        meta_path = os.path.join(meta_dir, image_id + ".json")
        meta = self._meta.get(image_id)
        if meta is not None:
            want = meta.get("sha256")
            if want and self.cache.recorded_sha(image_id) != want:
                self.cache.remove(image_id)
                raise HypervisorError(f"image {image_id}: downloaded bytes do not match glance's sha256")
            with open(meta_path, "w") as f:
                json.dump(meta, f)
        else:
            try:
                with open(meta_path) as f:
                    meta = json.load(f)
            except (OSError, ValueError):
                meta = {"format": "raw", "properties": {}}
        fmt = str(meta.get("format") or "raw")
        info = LocalImage(path=path, format=fmt, properties=dict(meta.get("properties") or {}),
                          virtual_size_mb=_virtual_mb(path, fmt))
        with self._lock:
            self._info[image_id] = info
        return info


def _virtual_mb(path: str, fmt: str) -> int:
    """The image's virtual size (qemu-img, always with an explicit format; else the file size)."""
    if fmt in ("qcow2", "raw", "vmdk", "vhd", "vpc", "vdi") and shutil.which("qemu-img"):
        import subprocess

        try:
            out = subprocess.run(["qemu-img", "info", "-f", "vpc" if fmt == "vhd" else fmt,
                                  "--output=json", path], capture_output=True, text=True,
                                 timeout=60, check=True).stdout
            return (int(json.loads(out)["virtual-size"]) + (1 << 20) - 1) >> 20
        except (subprocess.SubprocessError, OSError, ValueError, KeyError):
            pass
    return (os.path.getsize(path) + (1 << 20) - 1) >> 20
