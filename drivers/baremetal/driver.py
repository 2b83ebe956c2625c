"""The bare-metal driver: one physical machine per host, managed through its BMC.

Composed the way Ironic composes hardware types: a management interface per protocol (IPMI on
pyghmi, Redfish on httpx) gives power, boot device, inventory and sensors; the hosted driver
adds what the controller asks of any host (facts for registration, ``probe`` for health).
Runs where the BMC is reachable: the controller's executor for BMCs on a management network it
reaches (power, inventory, sensors). Deploying an OS onto the machine (PXE) is not offered here.

    drv = BaremetalDriver.for_host(env)       # env.options = the host's (decrypted) driver config
    drv.validate()                            # config only; the BMC is not contacted
    drv.bmc.set_power_state("on"); drv.bmc.sensors(); drv.probe()
"""
from __future__ import annotations

from typing import Any, ClassVar

from drivers.baremetal.common import BmcConfig, parse_config
from drivers.base import (
    BmcError,
    Capability,
    Deployed,
    Guest,
    GuestNotFound,
    HostEnv,
    HostFacts,
    HostNic,
    InstanceDisk,
    InstanceSpec,
    Management,
    PowerState,
    not_supported,
)

VERSION = "1.0"
CAPABILITIES = frozenset({Capability.BMC_POWER, Capability.BOOT_DEVICE, Capability.SENSORS, Capability.INVENTORY})


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

    def __init__(self, bmc: Management) -> None:
        self.bmc = bmc

    def host_facts(self) -> HostFacts:
        inv = self.bmc.inventory()
        model = " ".join(p for p in (inv.manufacturer, inv.model) if p)
        return HostFacts(hostname=inv.serial or self.bmc.address, arch="x86_64", cpu_model=model, cpu_count=inv.cpu_count,
                         cpu_mhz=0, sockets=0, cores_per_socket=0, threads_per_core=0, memory_mb=inv.memory_mb, numa=(),
                         hypervisor="baremetal", hypervisor_version=VERSION, guest_types=(), storage=(),
                         nics=tuple(HostNic(name=f"nic{i}", mac=m, mtu=1500, up=True, speed_mbps=None, kind="physical")
                                    for i, m in enumerate(inv.nic_macs)), gpus=())

    def list_guests(self) -> list[Guest]:
        return []

    def get_guest(self, guest_id: str) -> Guest:
        raise GuestNotFound(guest_id)

    def close(self) -> None:
        self.bmc.close()


class BaremetalDriver:
    name = "baremetal"
    version = VERSION
    capabilities: frozenset[Capability] = CAPABILITIES

    def __init__(self, config: dict[str, Any]) -> None:
        self._config = dict(config)
        self.cfg: BmcConfig | None = None
        self._bmc: Management | None = None

    @classmethod
    def for_host(cls, env: HostEnv) -> BaremetalDriver:
        return cls(dict(env.options))

    @property
    def bmc(self) -> Management:
        if self._bmc is None:
            self.validate()
        assert self._bmc is not None
        return self._bmc

    @property
    def driver(self) -> MachineFacts:  # type: ignore[override]
        return MachineFacts(self.bmc)

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

    # ---- what a hypervisor host does and a machine does not (no guests until PXE deploy exists) ------
    def deploy(self, spec: InstanceSpec) -> Deployed:
        not_supported(self.name, "deploy")

    def remove(self, server_id: str) -> bool:
        return False

    def reconfigure(self, server_id: str, *, vcpu: int, memory_mb: int) -> None:
        not_supported(self.name, "reconfigure")

    def attach_disk(self, server_id: str, disk: InstanceDisk) -> tuple[str, bool]:
        not_supported(self.name, "attach_disk")

    def detach_disk(self, server_id: str, disk: InstanceDisk, *, keep: bool = True) -> bool:
        not_supported(self.name, "detach_disk")

    def rebuild_root(self, spec: InstanceSpec) -> Deployed:
        not_supported(self.name, "rebuild_root")

    def keep_disks(self, server_id: str, disks: list[InstanceDisk]) -> list[tuple[str, str]]:
        return []

    def persist(self, server_id: str) -> None:
        return None

    def restore(self) -> list[tuple[str, str]]:
        return []

    def close(self) -> None:
        bmc, self._bmc = self._bmc, None
        if bmc is not None:
            bmc.close()


__all__ = ["BaremetalDriver", "PowerState", "management"]
