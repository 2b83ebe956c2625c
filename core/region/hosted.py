"""The drivers this controller hosts for its executor hosts (``target=executor``: vCenter, clouds,
machines behind a BMC), and their configs.

A host's ``target`` says who runs its work items: ``agent`` (the host's agent pulls them over HTTP,
core/hostapi/routes/) or ``executor`` (core/hostapi/executor.py, inside every controller replica).
An executor host records its driver's name (drivers/registry.py) and its driver config, the latter
encrypted at rest with the credential key repository (core/keystone/credkeys.py), never returned
by the API (``masked``). Each process keeps one ``Runtime``: its data dir, database, the hosted
drivers built so far (``Drivers``, one per host, rebuilt when the host's driver or config changed)
and the cipher.

The region (host creation, BMC routes, cloud sync, consoles) and the executor both use this module;
it imports neither (the executor imports the region, not the other way).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import re
import threading
import time
import types
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from core.api.context import Credential
from core.db.base import utcnow
from core.errors import InputParameterError, ServiceUnavailableError
from drivers.base import BmcError, DriverError, HostedDriver, HostEnv, InstanceNic

log = logging.getLogger("cloudpods.executor")

TARGET_EXECUTOR = "executor"  # Host.target of a host whose work items the executor runs (else "agent")
_SECRET = re.compile(r"pass|secret|token|key|credential", re.I)

# the region reads images on its own authority for the guests of its executor hosts
EXECUTOR_CRED = Credential(token="", user_id="", user_name="executor", user_domain_id="default",
                           user_domain_name="Default", scope="system", roles=("admin", "member", "reader"))


# ---- the runtime of this process (configured by core.region.background.start) -----------------
@dataclasses.dataclass
class Runtime:
    data_dir: Path
    db: Any
    drivers: Drivers
    cipher: Any


_runtime: list[Runtime] = []


def configure(data_dir: Path, db: Any, settings: Any = None) -> Runtime:
    from core.keystone.credkeys import cipher_for

    rt = Runtime(Path(data_dir), db, Drivers(Path(data_dir), db, boot_network(data_dir, settings)),
                 cipher_for(Path(data_dir)))
    _runtime[:] = [rt]
    return rt


def runtime() -> Runtime:
    if not _runtime:
        raise ServiceUnavailableError("this controller runs no executor (its background services are off)")
    return _runtime[0]


def unconfigure() -> None:
    for rt in _runtime:
        rt.drivers.close()
    _runtime.clear()


# ---- driver config -------------------------------------------------------------------------------
def encrypt_config(config: dict[str, Any]) -> str:
    return str(runtime().cipher.encrypt(json.dumps(config, sort_keys=True)))


def decrypt_config(blob: str) -> dict[str, Any]:
    if not blob:
        return {}
    out = json.loads(runtime().cipher.decrypt(blob))
    return dict(out) if isinstance(out, dict) else {}


def masked(config: dict[str, Any]) -> dict[str, Any]:
    """What an admin may see of a driver config: secret-looking values hidden."""
    return {k: ("******" if _SECRET.search(k) else v) for k, v in sorted(config.items())}


def bmc_failure(exc: BmcError) -> dict[str, Any]:
    """What a failed BMC call records in ``sys_info.bmc`` (core/region/host_bmc.py)."""
    return {"ipmi_status": exc.status, "ipmi_reason": str(exc)[:1000]}


# ---- what a hosted driver gets in the controller ----------------------------------------------------
class NullNetwork:
    """The executor's network backend: a remote driver's networks are its API's business (and
    libvirt's test:/// simulates bridges), so there is no bridge or DHCP server to run here."""

    def plug(self, nic: InstanceNic, hostname: str | None = None) -> str:
        return nic.bridge or "br-sim"

    def unplug(self, mac: str) -> None:
        return None


class _ImageResponse:
    """The shape core.agent.images.ImageStore reads (headers + iter_bytes), from glance's store."""

    def __init__(self, reader: Any) -> None:
        info = reader.info
        same = reader.format == (info.disk_format or "raw")
        self.headers = {"x-image-format": reader.format, "x-image-sha256": (info.sha256 or "") if same else "",
                        "x-image-properties": json.dumps(info.properties)}
        self._reader = reader

    def iter_bytes(self, size: int) -> Iterator[bytes]:
        while block := self._reader.read(size):
            yield block


def controller_images(data_dir: Path, db: Any) -> Any:
    """The agent's image cache (core.agent.images.ImageStore), filled from glance's store directly."""
    from core.agent.images import ImageStore
    from core.glance.service import open_image

    @contextmanager
    def fetch(image_id: str) -> Iterator[_ImageResponse]:
        with db.session() as s, open_image(s, image_id, EXECUTOR_CRED, data_dir=data_dir) as reader:
            s.commit()  # nothing to write; no transaction held while copying
            yield _ImageResponse(reader)

    root = data_dir / "executors" / "images"
    root.mkdir(parents=True, exist_ok=True)
    # ImageStore reads only ``image_dir`` of the agent's config
    return ImageStore(types.SimpleNamespace(image_dir=str(root)), fetch)  # type: ignore[arg-type]


class BootNetwork:
    """The controller's PXE boot network for bare-metal deploys (core/agent/pxe.py), started on
    first use (binding DHCP's port 67 needs root): settings ``baremetal_pxe_interface``,
    ``baremetal_deploy_kernel``, ``baremetal_deploy_ramdisk`` (scripts/build-deploy-ramdisk.sh),
    ``baremetal_pxe_http_port``, ``baremetal_pxe_range``, ``baremetal_tftp_root``."""

    def __init__(self, data_dir: Path, settings: Any) -> None:
        from core.agent.pxe import PxeSettings

        self.settings = PxeSettings(
            interface=settings.baremetal_pxe_interface, kernel=settings.baremetal_deploy_kernel,
            ramdisk=settings.baremetal_deploy_ramdisk, http_port=int(settings.baremetal_pxe_http_port),
            ip_range=settings.baremetal_pxe_range, tftp_root=settings.baremetal_tftp_root)
        self.raw_dir = data_dir / "executors" / "pxe-raw"
        self._lock = threading.Lock()
        self.service: Any = None
        self.on_discover: Any = None

    def _service(self) -> Any:
        from core.agent.pxe import PxeConfigError, PxeService

        with self._lock:
            if self.service is None:
                svc = PxeService(self.settings, self.raw_dir)
                try:
                    svc.start()
                except (PxeConfigError, OSError) as exc:
                    from drivers.base import HypervisorError

                    raise HypervisorError(f"the PXE boot network cannot start: {exc}") from None
                svc.on_discover = self.on_discover
                self.service = svc
            return self.service

    def stage(self, mac: str, action: str, image: Any = None) -> Any:
        return self._service().stage(mac, action, image)

    def listen(self, on_discover: Any) -> None:
        """Start now and tell ``on_discover(mac)`` of each unknown machine that PXE-boots (enrolment)."""
        self.on_discover = on_discover
        try:
            self._service()
        except DriverError as exc:
            log.warning("%s; bare-metal machines are neither deployed nor enrolled", exc)

    def close(self) -> None:
        with self._lock:
            svc, self.service = self.service, None
        if svc is not None:
            svc.stop()


def boot_network(data_dir: Path, settings: Any) -> BootNetwork | None:
    if settings is None or not getattr(settings, "baremetal_pxe_interface", ""):
        return None
    return BootNetwork(Path(data_dir), settings)


def host_env(data_dir: Path, host_id: str, config: dict[str, Any], images: Any, pxe: Any = None) -> HostEnv:
    d = data_dir / "executors" / host_id
    (d / "instances").mkdir(parents=True, exist_ok=True, mode=0o700)
    return HostEnv(uri=str(config.get("uri") or ""), data_dir=str(d), instances_dir=str(d / "instances"),
                   images=images, network=NullNetwork(), domain_type=str(config.get("domain_type") or "auto"),
                   stop_timeout_s=float(config.get("stop_timeout_s") or 30.0), options=dict(config), pxe=pxe)


def build(data_dir: Path, host_id: str, driver: str, config: dict[str, Any], images: Any,
          pxe: Any = None) -> HostedDriver:
    """The named driver as the executor hosts it, validated (DriverError/DriverUnavailable else)."""
    from drivers.registry import get_driver

    cls = get_driver(driver)
    if not hasattr(cls, "for_host"):
        raise InputParameterError(f"driver {driver} cannot be hosted (it has no for_host)")
    hosted: HostedDriver = cls.for_host(host_env(data_dir, host_id, config, images, pxe))
    try:
        hosted.validate()
    except BaseException:
        hosted.close()
        raise
    return hosted


def registration(hosted: HostedDriver) -> dict[str, Any]:
    """The host row fields an executor host gets from its driver, like an agent's registration."""
    from core.version import VERSION

    facts = hosted.driver.host_facts()
    return {"cpu_arch": facts.arch, "cpu_count": facts.cpu_count, "mem_size": facts.memory_mb, "version": VERSION,
            "driver": hosted.name, "driver_version": hosted.version,
            "capabilities": sorted(c.value for c in hosted.capabilities),
            "sys_info": {"facts": dataclasses.asdict(facts)}}


def register_remote(hosted: HostedDriver) -> tuple[dict[str, Any], str]:
    """(host row fields, problem) for a new executor host. A device that cannot be reached now (a BMC
    that is down, a wrong password) does not stop the host being created: it is created offline with
    the reason (``sys_info.executor_error``, and ``sys_info.bmc`` for a machine behind a BMC), and the
    heartbeat or ``ipmi-probe`` fills in its facts once the device answers."""
    from core.version import VERSION
    from drivers.base import Probing

    base = {"version": VERSION, "driver": hosted.name, "driver_version": hosted.version,
            "capabilities": sorted(c.value for c in hosted.capabilities)}
    try:
        reg = registration(hosted)
    except DriverError as exc:
        info: dict[str, Any] = {"executor_error": str(exc)[:2000]}
        if isinstance(exc, BmcError):
            info["bmc"] = {**bmc_failure(exc), "power_status": "unknown", "health": "unknown"}
        return {**base, "sys_info": info}, str(exc)
    if isinstance(hosted, Probing):
        try:
            reg["sys_info"]["bmc"] = {**hosted.probe(), "checked_at": utcnow().isoformat()}
        except BmcError as exc:
            reg["sys_info"]["bmc"] = {**bmc_failure(exc), "power_status": "unknown", "health": "unknown"}
            reg["sys_info"]["executor_error"] = str(exc)[:2000]
            return reg, str(exc)
    return reg, ""


def _fingerprint(driver: str, blob: str) -> str:
    return hashlib.sha256(f"{driver}\0{blob}".encode()).hexdigest()


class Drivers:
    """This process's hosted drivers of executor hosts, built on first use, rebuilt when the
    host's driver or config changed; ``restore`` runs once per build, as at an agent's start."""

    def __init__(self, data_dir: Path, db: Any, pxe: BootNetwork | None = None) -> None:
        self.data_dir = data_dir
        self.db = db
        self.pxe = pxe
        self._lock = threading.Lock()
        self._building = threading.Lock()
        self._built: dict[str, tuple[str, HostedDriver]] = {}
        self._born: dict[str, float] = {}  # host id -> when its driver was built (monotonic)
        self._images: Any = None

    def images(self) -> Any:
        with self._lock:
            if self._images is None:
                self._images = controller_images(self.data_dir, self.db)
            return self._images

    def get(self, host_id: str, driver: str, blob: str) -> HostedDriver:
        fp = _fingerprint(driver, blob)
        with self._lock:
            have = self._built.get(host_id)
            if have is not None and have[0] == fp:
                return have[1]
        images = self.images()
        with self._building:  # one build at a time: two threads must not each make (and close) one
            with self._lock:
                have = self._built.get(host_id)
                if have is not None and have[0] == fp:
                    return have[1]
            hosted = build(self.data_dir, host_id, driver, decrypt_config(blob), images, self.pxe)
            for sid, why in hosted.restore():
                log.warning("executor host %s: guest %s not restored: %s", host_id, sid, why)
            with self._lock:
                old = self._built.get(host_id)
                self._built[host_id] = (fp, hosted)
                self._born[host_id] = time.monotonic()
        if old is not None:  # the host's driver or config changed
            old[1].close()
        return hosted

    def forget(self, keep: set[str], listed_at: float | None = None) -> None:
        """Close the drivers of hosts not in ``keep``. ``listed_at``: when ``keep`` was read (monotonic);
        a driver built after that is of a host the list could not hold yet (created meanwhile, and in
        use by whoever built it): it stays."""
        with self._lock:
            gone = [h for h in self._built if h not in keep
                    and (listed_at is None or self._born.get(h, 0.0) <= listed_at)]
            closing = [self._built.pop(h)[1] for h in gone]
            for h in gone:
                self._born.pop(h, None)
        for hosted in closing:
            hosted.close()

    def close(self) -> None:
        self.forget(set())
        if self.pxe is not None:
            self.pxe.close()
