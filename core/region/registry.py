"""The static table of region resources (no scanning: PyInstaller-safe)."""
from __future__ import annotations

from typing import Any

from core.errors import ResourceNotFoundError
from core.loader import load

# plural -> "module:Manager class"
MANAGERS: dict[str, str] = {
    "cloudregions": "core.region.managers.infra:CloudregionManager",
    "zones": "core.region.managers.infra:ZoneManager",
    "vpcs": "core.region.managers.infra:VpcManager",
    "wires": "core.region.managers.infra:WireManager",
    "networks": "core.region.managers.networks:NetworkManager",
    "reservedips": "core.region.managers.networks:ReservedIpManager",
    "hosts": "core.region.managers.hosts:HostManager",
    "storages": "core.region.managers.storages:StorageManager",
    "hoststorages": "core.region.managers.storages:HostStorageManager",
    "hostwires": "core.region.managers.storages:HostWireManager",
    "servers": "core.region.managers.servers:ServerManager",
    "disks": "core.region.managers.disks:DiskManager",
    "keypairs": "core.region.managers.misc:KeypairManager",
    "secgroups": "core.region.managers.misc:SecgroupManager",
    "secgrouprules": "core.region.managers.misc:SecgroupRuleManager",
    "eips": "core.region.managers.misc:EipManager",
    "snapshots": "core.region.managers.snapshots:SnapshotManager",
    "instance_snapshots": "core.region.managers.instance_snapshots:InstanceSnapshotManager",
    "tasks": "core.region.managers.tasks:TaskManager",
    "cloudaccounts": "core.region.cloud.accounts:CloudaccountManager",
    "cloudproviders": "core.region.cloud.accounts:CloudproviderManager",
    "cachedimages": "core.region.cloud.accounts:CachedimageManager",
    "commonalerts": "core.metrics.alerts:CommonalertManager",
    "alertrecords": "core.metrics.alerts:AlertrecordManager",
    "notifyconfigs": "core.metrics.alerts:NotifyConfigManager",
}

_instances: dict[str, Any] = {}


def get_manager(plural: str) -> Any:
    m = _instances.get(plural)
    if m is None:
        ref = MANAGERS.get(plural)
        if ref is None:
            raise ResourceNotFoundError(f"no such resource type {plural}")
        m = _instances[plural] = load(ref)()
    return m


def manager_for_keyword(keyword: str) -> Any | None:
    for plural in MANAGERS:
        m = get_manager(plural)
        if m.keyword == keyword:
            return m
    return None


def all_managers() -> list[Any]:
    return [get_manager(p) for p in MANAGERS]
