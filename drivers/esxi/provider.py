"""A VMware account (a vCenter or a standalone ESXi) as a cloud provider: what the sync lists.

One inventory read per sync (drivers/esxi/inventory.py: property collectors, a few calls per
datacenter), served page by page per kind:

    cloudregions  the vCenter itself (its instance UUID)
    zones         its datacenters
    vpcs          one "default" VPC per vCenter (Cloudpods' on-premise model: wires hang off it)
    wires         port groups and distributed port groups (the name is the hosts' bridge)
    storages      datastores, with capacity
    hosts         ESXi hosts: ``host_type=esxi``, capacity, their datastores and port groups
    servers       VMs (not templates), placed on their host; ``server_id`` links the VMs a
                  server-create made (their instance UUID is the server's id)
    disks         each VM's virtual disks, on their datastore

Everything is keyed by managed object ids (``vm-42``, ``host-21``), stable within a vCenter. An
object whose properties faulted is listed in ``Page.unreadable`` (kept, neither updated nor
deleted, the reason in the sync report): one bad VM never drops or deletes the others.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from drivers.base import (
    CloudDisk,
    CloudHost,
    CloudInstance,
    CloudRegion,
    CloudStatus,
    CloudStorage,
    CloudVpc,
    CloudWire,
    CloudZone,
    Page,
    ProviderAuthError,
    ProviderCapability,
)
from drivers.esxi.inventory import Inventory, read_inventory
from drivers.esxi.session import EsxiConfig, EsxiLoginError, Session

CAPABILITIES = frozenset({ProviderCapability.SYNC, ProviderCapability.COMPUTE, ProviderCapability.HOSTS})

# guestId prefixes -> Cloudpods' os_type
_OS = (("windows", "Windows"), ("win", "Windows"), ("darwin", "macOS"), ("solaris", "Solaris"),
       ("freebsd", "FreeBSD"))


def os_type(guest_id: str) -> str:
    g = guest_id.lower()
    for prefix, name in _OS:
        if g.startswith(prefix):
            return name
    return "Linux" if g and g not in ("otherguest", "otherguest64") else ""


class EsxiProvider:
    """The sync's view of one VMware account (drivers.base.CloudProvider)."""

    name = "esxi"
    capabilities = CAPABILITIES

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.cfg = EsxiConfig.from_account(config)
        self.session = Session(self.cfg)
        self._inv: Inventory | None = None

    def validate(self) -> dict[str, Any]:
        try:
            about = self.session.content.about
        except EsxiLoginError as exc:
            raise ProviderAuthError(str(exc)) from None
        return {"about": str(about.fullName), "api_version": str(about.apiVersion),
                "api_type": str(about.apiType), "instance_uuid": str(about.instanceUuid or "")}

    def inventory(self) -> Inventory:
        if self._inv is None:
            self._inv = read_inventory(self.session, datacenter=self.cfg.datacenter)
        return self._inv

    def close(self) -> None:
        self.session.close()

    def fetch_page(self, kind: str, page_token: str = "") -> Page:
        lister = _LISTERS.get(kind)
        if lister is None:
            return Page(())
        inv = self.inventory()
        fault_kind = _FAULT_KINDS.get(kind)
        unreadable = tuple((f.id, f"{f.kind} {f.name} ({f.id}): {f.reason}") for f in inv.faults
                           if f.kind == fault_kind)
        return Page(tuple(lister(self, inv)), unreadable=unreadable)

    # --- kinds -----------------------------------------------------------------------------------
    def region_id(self, inv: Inventory) -> str:
        return inv.instance_uuid or f"{self.cfg.host}:{self.cfg.port}"

    def _regions(self, inv: Inventory) -> Iterator[Any]:
        yield CloudRegion(external_id=self.region_id(inv), name=self.cfg.host,
                          extra={"about": inv.about, "api_version": inv.api_version})

    def _zones(self, inv: Inventory) -> Iterator[Any]:
        for dc in inv.datacenters:
            yield CloudZone(external_id=dc.id, name=dc.name, region_id=self.region_id(inv))

    def vpc_id(self, inv: Inventory) -> str:
        return f"{self.region_id(inv)}/default"

    def _vpcs(self, inv: Inventory) -> Iterator[Any]:
        yield CloudVpc(external_id=self.vpc_id(inv), name="default", region_id=self.region_id(inv), is_default=True)

    @staticmethod
    def _name(inv: Inventory, dc: str, name: str) -> str:
        """Port group and datastore names repeat across datacenters: the datacenter's then goes first."""
        return name if len(inv.datacenters) == 1 else f"{dc}-{name}"

    def _wires(self, inv: Inventory) -> Iterator[Any]:
        dcs = {d.name: d.id for d in inv.datacenters}
        for n in inv.networks:
            yield CloudWire(external_id=n.id, name=self._name(inv, n.datacenter, n.name), zone_id=dcs[n.datacenter],
                            vpc_id=self.vpc_id(inv),
                            bridge=n.name, vlan_id=n.vlan_id or 1,
                            extra={"kind": n.kind, "dvs_uuid": n.dvs_uuid} if n.dvs_uuid else {"kind": n.kind})

    def _storages(self, inv: Inventory) -> Iterator[Any]:
        dcs = {d.name: d.id for d in inv.datacenters}
        for d in inv.datastores:
            yield CloudStorage(external_id=d.id, name=self._name(inv, d.datacenter, d.name), zone_id=dcs[d.datacenter],
                               capacity_mb=d.capacity_mb,
                               free_mb=d.free_mb, storage_type=(d.type or "vmfs").lower(),
                               status=CloudStatus.AVAILABLE if d.accessible else CloudStatus.ERROR,
                               extra={"url": d.url})

    def _hosts(self, inv: Inventory) -> Iterator[Any]:
        dcs = {d.name: d.id for d in inv.datacenters}
        wires = {n.id for n in inv.networks}
        for h in inv.hosts:
            yield CloudHost(external_id=h.id, name=h.name, zone_id=dcs[h.datacenter], cpu_count=h.cpu_count,
                            mem_mb=h.mem_mb, cpu_mhz=h.cpu_mhz, cpu_desc=h.cpu_model, version=h.version,
                            status=CloudStatus.AVAILABLE if h.online else CloudStatus.UNKNOWN,
                            enabled=not h.maintenance, storage_ids=h.datastores,
                            wire_ids=tuple(w for w in h.networks if w in wires),
                            extra={"cluster": h.cluster, "uuid": h.uuid, "sockets": h.cpu_sockets,
                                   "cores": h.cpu_cores, "connection_state": h.connection_state,
                                   "power_state": h.power_state})

    def _servers(self, inv: Inventory) -> Iterator[Any]:
        dcs = {d.name: d.id for d in inv.datacenters}
        for v in inv.vms:
            if v.template:
                continue
            yield CloudInstance(external_id=v.id, name=v.name, zone_id=dcs[v.datacenter], status=v.status,
                                vcpu=v.vcpu, memory_mb=v.memory_mb, server_id=v.instance_uuid,
                                os_type=os_type(v.guest_os), host_id=v.host,
                                extra={"instance_uuid": v.instance_uuid, "bios_uuid": v.bios_uuid,
                                       "power_state": v.power_state, "ip": v.ip,
                                       "macs": [n.mac for n in v.nics], "networks": [n.network for n in v.nics]})

    def _disks(self, inv: Inventory) -> Iterator[Any]:
        dcs = {d.name: d.id for d in inv.datacenters}
        for v in inv.vms:
            if v.template:
                continue
            for i, d in enumerate(v.disks):
                yield CloudDisk(external_id=f"{v.id}/{d.key}", name=f"{v.name}-disk{i}", zone_id=dcs[v.datacenter],
                                size_mb=d.size_mb, status=CloudStatus.IN_USE, disk_type="sys" if i == 0 else "data",
                                storage_type="vmware", instance_id=v.id, device=d.file, storage_id=d.datastore)


_LISTERS: dict[str, Callable[[EsxiProvider, Inventory], Iterator[Any]]] = {
    "cloudregions": EsxiProvider._regions, "zones": EsxiProvider._zones, "vpcs": EsxiProvider._vpcs,
    "wires": EsxiProvider._wires, "storages": EsxiProvider._storages, "hosts": EsxiProvider._hosts,
    "servers": EsxiProvider._servers, "disks": EsxiProvider._disks,
}
# which inventory faults make a kind's listing keep rows it could not read (a VM's disks: "vm-42/...")
_FAULT_KINDS = {"servers": "vm", "disks": "vm", "hosts": "host", "storages": "datastore", "wires": "network"}
