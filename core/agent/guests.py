"""Build and remove guests from the region's ``guest-deploy`` / ``guest-delete`` payloads.

Each guest lives in ``<instances>/<server id>/``: disk overlays on the per-host image cache,
the NoCloud config drive, the serial log, and ``nics.json`` (its leases, re-applied to the DHCP
server when the agent restarts). A deploy that finds leftovers of an earlier, interrupted
attempt (agent killed mid-create) removes them and starts over, so a redelivered work item
ends in the same state as a first one.

Images with ``kernel_id`` / ``ramdisk_id`` / ``os_command_line`` properties (OpenStack's
convention) boot that kernel directly, with the image as the root disk.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import threading
from dataclasses import dataclass
from typing import Any

import httpx

from core.agent.config import AgentConfig
from core.agent.network import GuestNetwork
from core.errors import ConnectionFailedError
from drivers.base import DiskSpec, GuestNotFound, GuestSpec, HypervisorError, NicSpec

log = logging.getLogger("cloudpods.agent.guests")

BOOT_PROPS = ("kernel_id", "ramdisk_id", "os_command_line")


@dataclass(frozen=True)
class CachedImage:
    path: str
    format: str
    properties: dict[str, Any]
    virtual_size_mb: int


def hostname_of(name: str) -> str:
    """A server name as a DNS label (cloud-init and DHCP want one)."""
    h = re.sub(r"[^A-Za-z0-9-]+", "-", name).strip("-")[:63].strip("-")
    return h or "guest"


def tap_name(server_id: str, index: int) -> str:
    return f"cp{server_id.replace('-', '')[:10]}{index}"[:15]


class ImageStore:
    """The image cache plus what glance said about each image (format, properties)."""

    def __init__(self, cfg: AgentConfig, fetch_meta: Any) -> None:
        from drivers.kvm.imagecache import ImageCache

        self._fetch_meta = fetch_meta  # image_id -> (chunks iterator, headers) context manager
        self._meta: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self.cache = ImageCache(cfg.image_dir, self._fetch)
        self._info: dict[str, CachedImage] = {}

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
            from drivers.kvm.imagecache import ImageFetchError

            err = ImageFetchError(f"download of image {image_id} failed: {e}")
            err.transient = True  # type: ignore[attr-defined]
            raise err from None

    def get(self, image_id: str) -> CachedImage:
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
            if want and self.cache._recorded_sha(image_id) != want:
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
        info = CachedImage(path=path, format=str(meta.get("format") or "raw"),
                           properties=dict(meta.get("properties") or {}), virtual_size_mb=_virtual_mb(path))
        with self._lock:
            self._info[image_id] = info
        return info


def _virtual_mb(path: str) -> int:
    if shutil.which("qemu-img"):
        from drivers.kvm.disks import disk_info

        return disk_info(path).virtual_size_mb
    return (os.path.getsize(path) + (1 << 20) - 1) >> 20


class GuestBuilder:
    def __init__(self, cfg: AgentConfig, driver: Any, images: ImageStore, network: GuestNetwork) -> None:
        self.cfg = cfg
        self.driver = driver
        self.images = images
        self.network = network
        self.simulated = cfg.libvirt_uri.startswith("test:")
        self._qemu_img = shutil.which("qemu-img") is not None
        if self.simulated and not self._qemu_img:
            log.warning("qemu-img not found: guests of this simulated host get sparse files as disks")

    def instance_dir(self, server_id: str) -> str:
        if not re.fullmatch(r"[0-9a-fA-F-]{36}", server_id):
            raise HypervisorError(f"bad server id {server_id!r}")
        return os.path.join(self.cfg.instances_dir, server_id)

    # --- deploy --------------------------------------------------------------------------------

    def deploy(self, p: dict[str, Any]) -> dict[str, Any]:
        srv = p["server"]
        sid = str(srv["id"])
        self.remove(sid, list(p.get("nics", [])))  # leftovers of an interrupted attempt
        d = self.instance_dir(sid)
        os.makedirs(d, mode=0o700)
        try:
            spec, disks_out = self._spec(p, d)
            guest = self.driver.create_guest(spec, start=bool(srv.get("auto_start")))
        except BaseException:
            self.remove(sid, list(p.get("nics", [])))
            raise
        status = guest.status.value
        return {"power_status": "running" if status == "running" else "off", "status": status,
                "guest_id": guest.id, "disks": disks_out}

    def _spec(self, p: dict[str, Any], d: str) -> tuple[GuestSpec, list[dict[str, Any]]]:
        from core.agent.configdrive import ConfigDrive, NicConfig, build_config_drive

        srv = p["server"]
        disks: list[DiskSpec] = []
        out: list[dict[str, Any]] = []
        boot: dict[str, Any] = {}
        for disk in sorted(p.get("disks", []), key=lambda x: int(x.get("index", 0))):
            path = os.path.join(d, f"disk{int(disk.get('index', 0))}.qcow2")
            size = int(disk.get("size") or 0)
            if disk.get("image_id"):
                img = self.images.get(str(disk["image_id"]))
                if not boot:
                    boot = {k: img.properties[k] for k in BOOT_PROPS if img.properties.get(k)}
                self._overlay(img, path, max(size, img.virtual_size_mb))
            else:
                self._data_disk(path, size)
            disks.append(DiskSpec(path=path, format="qcow2" if self._qemu_img else "raw"))
            out.append({"id": disk.get("id"), "access_path": path})
        nics, nic_cfgs = [], []
        host = hostname_of(str(srv["name"]))
        for nic in sorted(p.get("nics", []), key=lambda x: int(x.get("index", 0))):
            bridge = self.network.plug(nic, host)
            nics.append(NicSpec(mac=str(nic["mac"]), bridge=bridge, ifname=tap_name(str(srv["id"]), int(nic["index"]))))
            nic_cfgs.append(NicConfig(mac=str(nic["mac"]), dhcp=True))
        with open(os.path.join(d, "nics.json"), "w") as f:
            json.dump(p.get("nics", []), f)
        keys = (str(srv["public_key"]),) if srv.get("public_key") else ()
        config_drive = build_config_drive(os.path.join(d, "config.iso"), ConfigDrive(
            instance_id=str(srv["id"]), hostname=host, ssh_keys=keys, password=srv.get("password") or None,
            user_data=srv.get("user_data") or None, nics=tuple(nic_cfgs)))
        kernel = initrd = cmdline = None
        if boot.get("kernel_id"):
            kernel = self.images.get(str(boot["kernel_id"])).path
            if boot.get("ramdisk_id"):
                initrd = self.images.get(str(boot["ramdisk_id"])).path
            cmdline = str(boot.get("os_command_line") or "console=ttyS0") or None
        spec = GuestSpec(name=_domain_name(str(srv["name"]), str(srv["id"])), uuid=str(srv["id"]),
                         vcpu=int(srv["vcpu_count"]), memory_mb=int(srv["vmem_size"]), disks=tuple(disks),
                         nics=tuple(nics), config_drive=config_drive, serial_log=os.path.join(d, "serial.log"),
                         kernel=kernel, initrd=initrd, cmdline=cmdline,
                         arch=str(srv["os_arch"]) if srv.get("os_arch") in ("x86_64", "aarch64") else "x86_64")
        return spec, out

    def _overlay(self, img: CachedImage, path: str, size_mb: int) -> None:
        if self._qemu_img:
            from drivers.kvm.disks import create_overlay

            if img.format not in ("qcow2", "raw"):
                raise HypervisorError(f"cannot use a {img.format} image as a backing file (qcow2 or raw only)")
            create_overlay(img.path, path, backing_format=img.format, size_mb=size_mb)
        elif self.simulated:
            _sparse(path, size_mb)
        else:
            raise HypervisorError("qemu-img not found (apt install qemu-utils)")

    def _data_disk(self, path: str, size_mb: int) -> None:
        if size_mb <= 0:
            raise HypervisorError("a data disk needs a positive size")
        if self._qemu_img:
            from drivers.kvm.disks import create_data_disk

            create_data_disk(path, size_mb)
        elif self.simulated:
            _sparse(path, size_mb)
        else:
            raise HypervisorError("qemu-img not found (apt install qemu-utils)")

    # --- delete --------------------------------------------------------------------------------

    def remove(self, server_id: str, nics: list[dict[str, Any]] | None = None) -> bool:
        """Domain, leases, files: gone (each step fine if already gone). True if a domain existed."""
        d = self.instance_dir(server_id)
        if nics is None:
            nics = _read_nics(d)
        existed = True
        try:
            self.driver.delete_guest(server_id)
        except GuestNotFound:
            existed = False
        for nic in nics:
            if nic.get("mac"):
                self.network.unplug(str(nic["mac"]))
        shutil.rmtree(d, ignore_errors=True)
        return existed

    def restore_leases(self) -> int:
        """After a restart: every guest's DHCP leases again (from its nics.json)."""
        n = 0
        try:
            ids = os.listdir(self.cfg.instances_dir)
        except FileNotFoundError:
            return 0
        for sid in ids:
            d = os.path.join(self.cfg.instances_dir, sid)
            for nic in _read_nics(d):
                try:
                    self.network.plug(nic, None)
                    n += 1
                except Exception as exc:  # one bad record must not stop the others
                    log.warning("cannot restore the lease of %s on %s: %s", nic.get("mac"), sid, exc)
        return n


def _read_nics(d: str) -> list[dict[str, Any]]:
    try:
        with open(os.path.join(d, "nics.json")) as f:
            data = json.load(f)
        return [n for n in data if isinstance(n, dict)] if isinstance(data, list) else []
    except (OSError, ValueError):
        return []


def _domain_name(name: str, sid: str) -> str:
    """libvirt names are unique per host: the server name plus a short id (names may repeat across projects)."""
    base = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-._")[:50] or "guest"
    return f"{base}-{sid[:8]}"


def _sparse(path: str, size_mb: int) -> None:
    with open(path, "wb") as f:
        f.truncate(size_mb << 20)
