"""The bare-metal driver: one physical machine per host, managed through its BMC.

Composed the way Ironic composes hardware types: a management interface per protocol (IPMI on
pyghmi, Redfish on httpx) gives power, boot device, inventory and sensors; the hosted driver
adds what the controller asks of any host (facts for registration, ``probe`` for health).
Runs where the BMC is reachable: the controller's executor for BMCs on a management network it
reaches (power, inventory, sensors).

Deploy (one server = the whole machine): the boot network (``env.pxe``, the controller's DHCP/TFTP/
HTTP, core/agent/pxe.py) stages the machine's MAC (``access_mac``); the BMC sets a one-time PXE
boot and powers it on; the deploy ramdisk writes the image onto the machine's disk, reports and
powers off; the BMC sets the boot device to disk (persistent) and powers it on: the server runs.
Delete does the same with the ramdisk wiping the partition tables, and leaves the machine off.
The deployed server is remembered in ``<data_dir>/machine.json``; its status is the power state.

    drv = BaremetalDriver.for_host(env)       # env.options = the host's (decrypted) driver config
    drv.validate()                            # config only; the BMC is not contacted
    drv.bmc.set_power_state("on"); drv.bmc.sensors(); drv.probe()
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, ClassVar

from drivers.baremetal.common import BmcConfig, parse_config
from drivers.base import (
    BmcError,
    BootDevice,
    Capability,
    ConsoleEndpoint,
    Deployed,
    Guest,
    GuestNotFound,
    GuestStatus,
    HostEnv,
    HostFacts,
    HostNic,
    HypervisorError,
    InstanceDisk,
    InstanceSpec,
    InvalidSpec,
    KeptElsewhere,
    Management,
    NoDiskVerbs,
    PowerState,
    PxeBoot,
    not_supported,
)

VERSION = "1.0"
CAPABILITIES = frozenset({Capability.BMC_POWER, Capability.BOOT_DEVICE, Capability.SENSORS, Capability.INVENTORY})
# what a protocol adds: IPMI's serial-over-LAN (Redfish BMCs offer a serial console over SSH, if at all)
PROTOCOL_CAPABILITIES = {"ipmi": frozenset({Capability.SERIAL_CONSOLE}), "redfish": frozenset()}
DEPLOY_TIMEOUT_S = 600.0  # power on -> the ramdisk's report (driver config ``deploy_timeout_s``)
POWER_CHECK_S = 5.0  # while the ramdisk runs, the machine's power is read this often (it must stay on)
_STATUS = {PowerState.ON: GuestStatus.RUNNING, PowerState.OFF: GuestStatus.STOPPED}


class Machine:
    """The server deployed on this machine, kept in ``<data_dir>/machine.json``."""

    def __init__(self, data_dir: str) -> None:
        self.path = Path(data_dir) / "machine.json"

    def get(self) -> dict[str, Any]:
        try:
            out = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        return out if isinstance(out, dict) else {}

    def set(self, record: dict[str, Any] | None) -> None:
        if record is None:
            self.path.unlink(missing_ok=True)
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record))
        os.replace(tmp, self.path)


def management(cfg: BmcConfig) -> Management:
    if cfg.protocol == "redfish":
        from drivers.baremetal.redfish import RedfishBmc

        return RedfishBmc(cfg)
    from drivers.baremetal.ipmi import IpmiBmc

    return IpmiBmc(cfg)


class MachineFacts:
    """The ``driver`` a hosted driver exposes: a machine has no guests, only facts read from its BMC."""

    name: ClassVar[str] = "baremetal"
    capabilities: ClassVar[frozenset[Capability]] = CAPABILITIES

    def __init__(self, bmc: Management, machine: Machine | None = None) -> None:
        self.bmc = bmc
        self.machine = machine

    def host_facts(self) -> HostFacts:
        inv = self.bmc.inventory()
        model = " ".join(p for p in (inv.manufacturer, inv.model) if p)
        return HostFacts(hostname=inv.serial or self.bmc.address, arch="x86_64", cpu_model=model,
                         cpu_count=inv.cpu_count,
                         cpu_mhz=0, sockets=0, cores_per_socket=0, threads_per_core=0, memory_mb=inv.memory_mb, numa=(),
                         hypervisor="baremetal", hypervisor_version=VERSION, guest_types=(), storage=(),
                         nics=tuple(HostNic(name=f"nic{i}", mac=m, mtu=1500, up=True, speed_mbps=None, kind="physical")
                                    for i, m in enumerate(inv.nic_macs)), gpus=())

    def list_guests(self) -> list[Guest]:
        rec = self.machine.get() if self.machine is not None else {}
        return [self.get_guest(rec["server_id"])] if rec.get("server_id") else []

    def get_guest(self, guest_id: str) -> Guest:
        rec = self.machine.get() if self.machine is not None else {}
        if rec.get("server_id") != guest_id:
            raise GuestNotFound(guest_id)
        power = self.bmc.get_power_state()
        return Guest(id=guest_id, name=str(rec.get("name") or guest_id), status=_STATUS.get(power, GuestStatus.UNKNOWN))

    # the machine's power is its server's
    def start_guest(self, guest_id: str) -> None:
        self.get_guest(guest_id)
        self.bmc.set_power_state("on")

    def stop_guest(self, guest_id: str, *, timeout: float = 60.0) -> None:
        self.get_guest(guest_id)
        if timeout <= 0:
            self.bmc.set_power_state("off")
            return
        try:
            self.bmc.set_power_state("soft")
        except BmcError as exc:
            if exc.status != "error":
                raise
            self.bmc.set_power_state("off")  # the BMC has no ACPI power off: a hard one
            return
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.bmc.get_power_state() is PowerState.OFF:
                return
            time.sleep(1.0)
        self.bmc.set_power_state("off")

    def reboot_guest(self, guest_id: str) -> None:
        self.get_guest(guest_id)
        self.bmc.set_power_state("reset")

    reset_guest = reboot_guest

    def close(self) -> None:
        self.bmc.close()


class BaremetalDriver(KeptElsewhere, NoDiskVerbs):
    name = "baremetal"
    version = VERSION
    capabilities: frozenset[Capability] = CAPABILITIES

    def __init__(self, config: dict[str, Any], env: HostEnv | None = None) -> None:
        self._config = dict(config)
        self.cfg: BmcConfig | None = None
        self._bmc: Management | None = None
        self.env = env
        self.machine = Machine(env.data_dir) if env is not None else None
        cfg = self._config
        protocol = str(cfg.get("protocol") or ("redfish" if cfg.get("redfish_url") else "ipmi")).lower()
        self.capabilities = CAPABILITIES | PROTOCOL_CAPABILITIES.get(protocol, frozenset())

    @classmethod
    def for_host(cls, env: HostEnv) -> BaremetalDriver:
        return cls(dict(env.options), env)

    @property
    def bmc(self) -> Management:
        if self._bmc is None:
            self.validate()
        assert self._bmc is not None
        return self._bmc

    @property
    def driver(self) -> MachineFacts:
        return MachineFacts(self.bmc, self.machine)

    def validate(self) -> None:
        """The config (address, credentials, protocol) and the SDK; the BMC is not contacted."""
        if self._bmc is None:
            self.cfg = parse_config(self._config)
            bmc = management(self.cfg)
            bmc.validate()
            self._bmc = bmc

    def probe(self) -> dict[str, Any]:
        """Contact the BMC: its power state and health (``BmcError`` when it cannot be reached)."""
        power = self.bmc.get_power_state()
        try:
            health = self.bmc.health()
        except BmcError as exc:
            if exc.status != "error":
                raise
            health = "unknown"  # the BMC answers but has no health (no sensors): still reachable
        return {"ipmi_status": "ok", "power_status": power.value, "health": health, "ipmi_reason": ""}

    # ---- console: the machine's serial port over the BMC ------------------------------------------
    def console(self, server_id: str, protocol: str) -> ConsoleEndpoint:
        """The serial-over-LAN console of the machine (``server_id`` "" = the machine itself, as
        ``webconsole-baremetal``; else the server deployed on it)."""
        if protocol != "serial":
            raise HypervisorError(f"a bare-metal machine has no {protocol} console here: only its serial port "
                                  "over the BMC (serial-over-LAN)")
        rec = self.machine.get() if self.machine is not None else {}
        if server_id and rec.get("server_id") != server_id:
            raise GuestNotFound(server_id)
        bmc = self.bmc
        sol = getattr(bmc, "sol", None)
        if sol is None:
            raise HypervisorError(f"BMC {bmc.address} ({bmc.protocol}): serial-over-LAN is offered over IPMI only")
        stream = sol()
        return ConsoleEndpoint(protocol="serial", stream=stream, where=stream.where)

    # ---- deploy: the whole machine is the server ---------------------------------------------------
    def _pxe(self) -> tuple[PxeBoot, str]:
        pxe = self.env.pxe if self.env is not None else None
        if pxe is None:
            raise HypervisorError("this controller runs no PXE boot network for bare-metal deploys: set "
                                  "baremetal_pxe_interface, baremetal_deploy_kernel and baremetal_deploy_ramdisk")
        mac = str(self._config.get("access_mac") or "").strip().lower()
        if not mac:
            raise InvalidSpec("the machine's PXE NIC is unknown: give its MAC (host-update --access-mac, or "
                              "baremetal-prepare after it PXE-booted once)")
        return pxe, mac

    def _pxe_boot(self, action: str, image: Any = None) -> dict[str, Any]:
        """Stage the job, PXE-boot the machine, wait for the ramdisk's report and for it to power off."""
        pxe, mac = self._pxe()
        job = pxe.stage(mac, action, image)
        try:
            bmc = self.bmc
            if bmc.get_power_state() is not PowerState.OFF:
                bmc.set_power_state("off")
            bmc.set_boot_device(BootDevice.PXE, persistent=False)
            bmc.set_power_state("on")
            timeout = float(self._config.get("deploy_timeout_s") or DEPLOY_TIMEOUT_S)
            try:
                end = time.monotonic() + timeout
                # a machine that is off again before its ramdisk reported crashed (a kernel panic
                # powers an emulated one off) or failed to boot: say so now, not at the timeout
                while not job.reported(min(POWER_CHECK_S, max(0.0, end - time.monotonic()))) \
                        and time.monotonic() < end:
                    if bmc.get_power_state() is PowerState.OFF and not job.reported(0):
                        raise HypervisorError(
                            f"the machine with MAC {mac} powered off before its deploy ramdisk reported: it "
                            "crashed or failed to boot (its serial console shows why: climc "
                            "webconsole-baremetal HOST)")
                result = job.wait(max(0.0, end - time.monotonic()), timeout)
            except HypervisorError:
                try:  # do not leave a machine running a ramdisk
                    bmc.set_power_state("off")
                except BmcError:
                    pass
                raise
        finally:
            job.close()
        # the ramdisk reports after its writes are flushed to the disk (sync of the device), then powers
        # the machine off itself; the BMC's hard off does not wait for that shutdown (a deploy kernel
        # without ACPI, a slow one): set_power_state waits until the BMC says off
        self.bmc.set_power_state("off")
        return result

    def deploy(self, spec: InstanceSpec) -> Deployed:
        rec = self.machine.get() if self.machine is not None else {}
        if rec.get("server_id") and rec["server_id"] != spec.server_id:
            raise HypervisorError(f"machine already runs server {rec['server_id']}: one server per bare-metal host")
        root = spec.disks[0] if spec.disks else None
        if root is None or not root.image_id:
            raise InvalidSpec("a bare-metal server needs an image for its system disk (--image)")
        assert self.env is not None and self.machine is not None
        image = self.env.images.get(root.image_id)
        try:
            self._pxe_boot("deploy", image)
            self.bmc.set_boot_device(BootDevice.DISK, persistent=True)
        except BmcError as exc:  # the BMC went away mid-deploy: say what to do once it is back
            raise BmcError(f"the deploy stopped because the machine's BMC failed: {exc}. Once the BMC answers "
                           "again (climc host-ipmi-probe HOST), delete this server and create it again",
                           exc.status) from None
        self.machine.set({"server_id": spec.server_id, "name": spec.name, "image_id": root.image_id,
                          "deployed_at": time.time()})
        self.bmc.set_power_state("on")  # the deployed machine boots its OS from disk: the server runs
        return Deployed(guest_id=spec.server_id, status=GuestStatus.RUNNING,
                        disks=tuple((d.id, f"baremetal:{d.index}") for d in spec.disks))

    def remove(self, server_id: str) -> bool:
        rec = self.machine.get() if self.machine is not None else {}
        if rec.get("server_id") != server_id:
            return False
        self._pxe_boot("wipe")
        assert self.machine is not None
        self.machine.set(None)
        return True

    def reconfigure(self, server_id: str, *, vcpu: int, memory_mb: int) -> None:
        not_supported(self.name, "reconfigure")

    def keep_disks(self, server_id: str, disks: list[InstanceDisk]) -> list[tuple[str, str]]:
        return []

    def close(self) -> None:
        bmc, self._bmc = self._bmc, None
        if bmc is not None:
            bmc.close()


__all__ = ["BaremetalDriver", "PowerState", "management"]
