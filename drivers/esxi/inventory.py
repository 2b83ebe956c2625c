"""The vSphere inventory read with property collectors, normalised into value objects.

    inv = read_inventory(session)           # a few RetrievePropertiesEx calls per datacenter
    inv.vms[0].status                        # GuestStatus via STATUS_MAP; explicit UNKNOWN
    inv.faults                               # [ObjectFault]: one per object that could not be read

One collector call per object type and datacenter (a ContainerView over the datacenter, paged
by ``maxObjects``), never one call per object. Each object is normalised on its own: a property
the server could not return (``missingSet``), or a value we cannot make sense of, becomes an
``ObjectFault`` naming that object, and every other object is still returned (Cloudpods'
esxi sync drops whole lists when one VM faults: cloudpods#23381, #10832).
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pyVmomi import vim, vmodl

from drivers.base import GuestStatus
from drivers.esxi.session import Session, fault_text

log = logging.getLogger(__name__)

T = TypeVar("T")

# runtime.powerState -> our status; anything else (and an unusable connection state) is UNKNOWN
STATUS_MAP: dict[str, GuestStatus] = {
    "poweredOn": GuestStatus.RUNNING,
    "poweredOff": GuestStatus.STOPPED,
    "suspended": GuestStatus.SUSPENDED,
}
# runtime.connectionState values under which powerState means nothing
UNUSABLE_CONNECTION = frozenset({"disconnected", "inaccessible", "invalid", "orphaned"})

PAGE = 500  # objects per RetrievePropertiesEx page


def vm_status(power_state: str | None, connection_state: str | None = "connected") -> GuestStatus:
    """THE mapping of a VM's runtime state to our status (unknown when it cannot be trusted)."""
    if connection_state in UNUSABLE_CONNECTION:
        return GuestStatus.UNKNOWN
    return STATUS_MAP.get(str(power_state), GuestStatus.UNKNOWN)


# --- value objects ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class ObjectFault:
    """An object of the inventory that could not be read; the others are unaffected."""

    kind: str  # "vm", "host", "datastore", "network", "cluster"
    id: str  # managed object id ("vm-42"): stable within one vCenter
    name: str
    reason: str
    datacenter: str = ""


@dataclass(frozen=True)
class DatacenterInfo:
    id: str
    name: str


@dataclass(frozen=True)
class ClusterInfo:
    id: str
    name: str
    datacenter: str


@dataclass(frozen=True)
class HostInfo:
    id: str
    name: str
    datacenter: str
    cluster: str  # cluster name, '' for a standalone host
    uuid: str
    cpu_count: int  # logical CPUs (threads)
    cpu_cores: int
    cpu_sockets: int
    cpu_mhz: int
    cpu_model: str
    mem_mb: int
    version: str
    connection_state: str
    power_state: str
    maintenance: bool
    datastores: tuple[str, ...]  # datastore ids
    networks: tuple[str, ...]  # network ids

    @property
    def online(self) -> bool:
        return self.connection_state == "connected" and self.power_state == "poweredOn"


@dataclass(frozen=True)
class DatastoreInfo:
    id: str
    name: str
    datacenter: str
    url: str
    type: str  # VMFS, NFS, vsan, OTHER ...
    capacity_mb: int
    free_mb: int
    accessible: bool
    hosts: tuple[str, ...]  # host ids that mount it


@dataclass(frozen=True)
class NetworkInfo:
    """A standard port group (``Network``) or a distributed port group."""

    id: str
    name: str
    datacenter: str
    kind: str  # "network" | "dvportgroup"
    vlan_id: int  # 0 when untagged or unknown
    hosts: tuple[str, ...]
    dvs_uuid: str = ""
    portgroup_key: str = ""


@dataclass(frozen=True)
class VmDisk:
    key: int
    label: str
    size_mb: int
    file: str  # "[datastore] dir/name.vmdk"
    datastore: str  # datastore id


@dataclass(frozen=True)
class VmNic:
    key: int
    mac: str
    network: str  # network name (port group)
    ips: tuple[str, ...] = ()


@dataclass(frozen=True)
class VmInfo:
    id: str  # managed object id
    name: str
    datacenter: str
    instance_uuid: str
    bios_uuid: str
    host: str  # host id ('' when vCenter does not say)
    status: GuestStatus
    power_state: str
    connection_state: str
    template: bool
    vcpu: int
    memory_mb: int
    guest_os: str
    disks: tuple[VmDisk, ...] = ()
    nics: tuple[VmNic, ...] = ()
    ip: str = ""


@dataclass
class Inventory:
    about: str = ""
    api_version: str = ""
    instance_uuid: str = ""  # of the vCenter/ESXi itself
    datacenters: list[DatacenterInfo] = field(default_factory=list)
    clusters: list[ClusterInfo] = field(default_factory=list)
    hosts: list[HostInfo] = field(default_factory=list)
    datastores: list[DatastoreInfo] = field(default_factory=list)
    networks: list[NetworkInfo] = field(default_factory=list)
    vms: list[VmInfo] = field(default_factory=list)
    faults: list[ObjectFault] = field(default_factory=list)

    def counts(self) -> dict[str, int]:
        return {k: len(getattr(self, k)) for k in ("datacenters", "clusters", "hosts", "datastores", "networks",
                                                   "vms", "faults")}


# --- the collector ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class Obj:
    """One object's properties as the collector returned them."""

    ref: Any
    props: dict[str, Any]
    missing: dict[str, str]  # property path -> fault text

    @property
    def id(self) -> str:
        return str(self.ref._moId)

    def get(self, path: str, default: Any = None) -> Any:
        value = self.props.get(path, default)
        return default if value is None else value


def collect(si: Any, root: Any, vim_type: Any, paths: Sequence[str]) -> list[Obj]:
    """Every object of ``vim_type`` under ``root`` with ``paths``: one ContainerView, paged calls."""
    content = si.RetrieveContent()
    view = content.viewManager.CreateContainerView(root, [vim_type], True)
    try:
        pc = content.propertyCollector
        traversal = vmodl.query.PropertyCollector.TraversalSpec(name="view", path="view", skip=False,
                                                                type=vim.view.ContainerView)
        spec = vmodl.query.PropertyCollector.FilterSpec(
            objectSet=[vmodl.query.PropertyCollector.ObjectSpec(obj=view, skip=True, selectSet=[traversal])],
            propSet=[vmodl.query.PropertyCollector.PropertySpec(type=vim_type, pathSet=list(paths))])
        return _retrieve(pc, spec)
    finally:
        try:
            view.DestroyView()
        except vmodl.MethodFault:
            pass


def fetch(si: Any, refs: Sequence[Any], paths: Sequence[str]) -> list[Obj]:
    """Properties of the given objects in ONE collector call (objects gone meanwhile are left out)."""
    if not refs:
        return []
    pc = si.RetrieveContent().propertyCollector
    types = list(dict.fromkeys(type(r) for r in refs))
    spec = vmodl.query.PropertyCollector.FilterSpec(
        objectSet=[vmodl.query.PropertyCollector.ObjectSpec(obj=r, skip=False) for r in refs],
        propSet=[vmodl.query.PropertyCollector.PropertySpec(type=t, pathSet=list(paths)) for t in types])
    return _retrieve(pc, spec)


def _retrieve(pc: Any, spec: Any) -> list[Obj]:
    out: list[Obj] = []
    result = pc.RetrievePropertiesEx([spec], vmodl.query.PropertyCollector.RetrieveOptions(maxObjects=PAGE))
    while result is not None:
        for oc in result.objects or []:
            out.append(Obj(oc.obj, {p.name: p.val for p in oc.propSet or []},
                           {m.path: fault_text(m.fault) for m in oc.missingSet or []}))
        if not result.token:
            break
        result = pc.ContinueRetrievePropertiesEx(result.token)
    return out


def endpoint_of(si: Any) -> str:
    stub = si._stub
    return str(getattr(stub, "host", "") or id(stub))


def _each(objs: list[Obj], kind: str, dc: str, required: Sequence[str], make: Callable[[Obj], T],
          faults: list[ObjectFault]) -> Iterator[T]:
    """Normalise each object on its own; a fault on one is recorded against it, the others go on."""
    for o in objs:
        name = str(o.props.get("name") or o.id)
        problems = [f"{p}: {o.missing[p]}" for p in required if p in o.missing]
        problems += [f"{p} is unset" for p in required if p not in o.missing and o.props.get(p) is None]
        if problems:
            faults.append(ObjectFault(kind, o.id, name, "; ".join(problems), dc))
            continue
        try:
            yield make(o)
        except Exception as exc:  # a value we cannot make sense of: this object only
            faults.append(ObjectFault(kind, o.id, name, f"{type(exc).__name__}: {exc}", dc))


HOST_PATHS = ("name", "parent", "hardware.systemInfo.uuid", "summary.hardware.numCpuThreads",
              "summary.hardware.numCpuCores", "summary.hardware.numCpuPkgs", "summary.hardware.cpuMhz",
              "summary.hardware.cpuModel", "summary.hardware.memorySize", "config.product.version",
              "runtime.connectionState", "runtime.powerState", "runtime.inMaintenanceMode", "datastore", "network")
HOST_REQUIRED = ("name", "summary.hardware.numCpuThreads", "summary.hardware.memorySize")


def _host(o: Obj, dc: str, clusters: dict[str, str]) -> HostInfo:
    parent = o.props.get("parent")
    return HostInfo(
        id=o.id, name=str(o.props["name"]), datacenter=dc,
        cluster=clusters.get(str(parent._moId), "") if parent is not None else "",
        uuid=str(o.get("hardware.systemInfo.uuid", "")),
        cpu_count=int(o.props["summary.hardware.numCpuThreads"]),
        cpu_cores=int(o.get("summary.hardware.numCpuCores", 0)),
        cpu_sockets=int(o.get("summary.hardware.numCpuPkgs", 0)), cpu_mhz=int(o.get("summary.hardware.cpuMhz", 0)),
        cpu_model=str(o.get("summary.hardware.cpuModel", "")),
        mem_mb=int(o.props["summary.hardware.memorySize"]) // (1024 * 1024),
        version=str(o.get("config.product.version", "")),
        connection_state=str(o.get("runtime.connectionState", "")), power_state=str(o.get("runtime.powerState", "")),
        maintenance=bool(o.get("runtime.inMaintenanceMode", False)),
        datastores=tuple(sorted(str(d._moId) for d in o.get("datastore", []))),
        networks=tuple(sorted(str(n._moId) for n in o.get("network", []))))


DATASTORE_PATHS = ("name", "summary.url", "summary.type", "summary.capacity", "summary.freeSpace",
                   "summary.accessible", "host")
DATASTORE_REQUIRED = ("name", "summary.capacity", "summary.freeSpace")


def _datastore(o: Obj, dc: str) -> DatastoreInfo:
    return DatastoreInfo(
        id=o.id, name=str(o.props["name"]), datacenter=dc, url=str(o.get("summary.url", "")),
        type=str(o.get("summary.type", "")), capacity_mb=int(o.props["summary.capacity"]) // (1024 * 1024),
        free_mb=int(o.props["summary.freeSpace"]) // (1024 * 1024), accessible=bool(o.get("summary.accessible", True)),
        hosts=tuple(sorted(str(m.key._moId) for m in o.get("host", []) if m.key is not None)))


NETWORK_PATHS = ("name", "host")
DVPG_PATHS = ("name", "host", "key", "config.distributedVirtualSwitch", "config.defaultPortConfig",
              "config.uplink")


def _vlan(port_config: Any) -> int:
    vlan = getattr(port_config, "vlan", None)
    vid = getattr(vlan, "vlanId", 0)
    return vid if isinstance(vid, int) else 0  # a trunk (a list of ranges) is no single VLAN


def _network(o: Obj, dc: str, vlans: dict[str, int]) -> NetworkInfo:
    name = str(o.props["name"])
    return NetworkInfo(id=o.id, name=name, datacenter=dc, kind="network", vlan_id=vlans.get(name, 0),
                       hosts=tuple(sorted(str(h._moId) for h in o.get("host", []))))


def _dvportgroup(o: Obj, dc: str, dvs_uuids: dict[str, str]) -> NetworkInfo:
    dvs = o.get("config.distributedVirtualSwitch")
    return NetworkInfo(id=o.id, name=str(o.props["name"]), datacenter=dc, kind="dvportgroup",
                       vlan_id=_vlan(o.get("config.defaultPortConfig")),
                       hosts=tuple(sorted(str(h._moId) for h in o.get("host", []))),
                       dvs_uuid=dvs_uuids.get(str(dvs._moId), "") if dvs is not None else "",
                       portgroup_key=str(o.get("key", "")))


# every read: small values only (pyvmomi's XML parsing costs ~0.1 ms per value: 1,000 VMs' device
# lists take seconds); the device list and guest NICs come from DETAIL_PATHS, re-read only for VMs
# whose configuration version (or guest address) moved since the last read (``_Details``)
VM_PATHS = ("name", "config.instanceUuid", "config.uuid", "config.template", "config.hardware.numCPU",
            "config.hardware.memoryMB", "config.guestId", "runtime.powerState", "runtime.connectionState",
            "runtime.host", "guest.ipAddress", "config.changeVersion", "config.modified")
DETAIL_PATHS = ("config.hardware.device", "guest.net")
VM_REQUIRED = ("name", "config.instanceUuid", "config.hardware.numCPU", "config.hardware.memoryMB")


def _vm_devices(devices: Any, ds_ids: dict[str, str], net_names: dict[str, str], guest_net: Any,
                ) -> tuple[tuple[VmDisk, ...], tuple[VmNic, ...]]:
    ips_by_mac: dict[str, tuple[str, ...]] = {}
    for gn in guest_net or []:
        if gn.macAddress:
            ips_by_mac[gn.macAddress.lower()] = tuple(str(ip) for ip in (gn.ipAddress or []))
    disks, nics = [], []
    # disks in bus order (controller, unit): the first is the boot disk
    ordered = sorted(devices or [], key=lambda d: (int(getattr(d, "controllerKey", 0) or 0),
                                                   int(getattr(d, "unitNumber", 0) or 0), int(d.key)))
    for d in ordered:
        if isinstance(d, vim.vm.device.VirtualDisk):
            backing = d.backing
            fname = str(getattr(backing, "fileName", "") or "")
            ds = getattr(backing, "datastore", None)
            size_kb = int(d.capacityInKB or 0) or int((d.capacityInBytes or 0) // 1024)
            disks.append(VmDisk(key=int(d.key), label=str(d.deviceInfo.label if d.deviceInfo else ""),
                                size_mb=size_kb // 1024, file=fname, datastore=str(ds._moId) if ds is not None else
                                ds_ids.get(fname[1:fname.find("]")] if fname.startswith("[") else "", "")))
        elif isinstance(d, vim.vm.device.VirtualEthernetCard):
            backing = d.backing
            if isinstance(backing, vim.vm.device.VirtualEthernetCard.NetworkBackingInfo):
                net = str(backing.deviceName or "")
            elif isinstance(backing, vim.vm.device.VirtualEthernetCard.DistributedVirtualPortBackingInfo):
                net = net_names.get(str(backing.port.portgroupKey or ""), str(backing.port.portgroupKey or ""))
            else:
                net = ""
            mac = str(d.macAddress or "").lower()
            nics.append(VmNic(key=int(d.key), mac=mac, network=net, ips=ips_by_mac.get(mac, ())))
    return tuple(disks), tuple(nics)


def _vm(o: Obj, dc: str, ds_ids: dict[str, str], net_names: dict[str, str], details: dict[str, Any]) -> VmInfo:
    if o.id not in details:
        raise LookupError("the VM vanished while its devices were read")
    devices, guest_net = details[o.id]
    host = o.props.get("runtime.host")
    power = str(o.get("runtime.powerState", ""))
    conn = str(o.get("runtime.connectionState", ""))
    disks, nics = _vm_devices(devices, ds_ids, net_names, guest_net)
    return VmInfo(
        id=o.id, name=str(o.props["name"]), datacenter=dc, instance_uuid=str(o.props["config.instanceUuid"]),
        bios_uuid=str(o.get("config.uuid", "")), host=str(host._moId) if host is not None else "",
        status=vm_status(power, conn), power_state=power, connection_state=conn,
        template=bool(o.get("config.template", False)), vcpu=int(o.props["config.hardware.numCPU"]),
        memory_mb=int(o.props["config.hardware.memoryMB"]), guest_os=str(o.get("config.guestId", "")),
        disks=disks, nics=nics, ip=str(o.get("guest.ipAddress", "")))


def _version(o: Obj) -> str:
    return f"{o.get('config.changeVersion', '')}|{o.get('config.modified', '')}|{o.get('guest.ipAddress', '')}"


class _Details:
    """Each VM's device list and guest NICs, kept per endpoint and re-read only when the VM's
    ``config.changeVersion`` / ``config.modified`` / guest address moved: a second sync of an
    unchanged vCenter reads no device list. Process-local: another replica reads them once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_endpoint: dict[str, dict[str, tuple[str, Any, Any]]] = {}

    def get(self, si: Any, endpoint: str, objs: list[Obj]) -> dict[str, tuple[Any, Any]]:
        with self._lock:
            cache = dict(self._by_endpoint.get(endpoint, {}))
        stale = [o for o in objs if cache.get(o.id, ("",))[0] != _version(o) or o.id not in cache]
        for i in range(0, len(stale), PAGE):
            chunk = stale[i:i + PAGE]
            versions = {o.id: _version(o) for o in chunk}
            for d in fetch(si, [o.ref for o in chunk], DETAIL_PATHS):
                cache[d.id] = (versions[d.id], d.get("config.hardware.device", []), d.get("guest.net", []))
        ids = {o.id for o in objs}
        with self._lock:
            kept = self._by_endpoint.setdefault(endpoint, {})
            kept.update({k: v for k, v in cache.items() if k in ids})
        return {k: (v[1], v[2]) for k, v in cache.items() if k in ids}


DETAILS = _Details()


def _standard_vlans(si: Any, dc_ref: Any) -> dict[str, int]:
    """Port group name -> VLAN id, from the hosts' network configs (one collector call)."""
    out: dict[str, int] = {}
    for o in collect(si, dc_ref, vim.HostSystem, ["config.network.portgroup"]):
        for pg in o.get("config.network.portgroup", []):
            spec = getattr(pg, "spec", None)
            if spec is not None and spec.name and spec.name not in out:
                out[str(spec.name)] = int(spec.vlanId or 0)
    return out


def read_inventory(session: Session, *, datacenter: str = "", vms: bool = True) -> Inventory:
    """The whole inventory (or one datacenter's): ~8 collector calls per datacenter."""
    return session.call(lambda si: _read(si, datacenter, vms), "read the inventory")


def _read(si: Any, only_dc: str, with_vms: bool) -> Inventory:
    content = si.RetrieveContent()
    inv = Inventory(about=str(content.about.fullName), api_version=str(content.about.apiVersion),
                    instance_uuid=str(content.about.instanceUuid or ""))
    for dco in collect(si, content.rootFolder, vim.Datacenter, ["name"]):
        dc_name = str(dco.get("name", dco.id))
        if only_dc and only_dc not in (dc_name, dco.id):
            continue
        inv.datacenters.append(DatacenterInfo(dco.id, dc_name))
        _read_datacenter(si, dco.ref, dc_name, inv, with_vms)
    for f in inv.faults:
        log.warning("esxi inventory: %s %s (%s) not read: %s", f.kind, f.name, f.id, f.reason)
    return inv


def _read_datacenter(si: Any, root: Any, dc: str, inv: Inventory, with_vms: bool) -> None:
    clusters = {o.id: str(o.get("name", o.id)) for o in collect(si, root, vim.ClusterComputeResource, ["name"])}
    inv.clusters += [ClusterInfo(cid, name, dc) for cid, name in clusters.items()]
    inv.hosts += _each(collect(si, root, vim.HostSystem, HOST_PATHS), "host", dc, HOST_REQUIRED,
                       lambda o: _host(o, dc, clusters), inv.faults)
    dss = list(_each(collect(si, root, vim.Datastore, DATASTORE_PATHS), "datastore", dc, DATASTORE_REQUIRED,
                     lambda o: _datastore(o, dc), inv.faults))
    inv.datastores += dss
    vlans = _standard_vlans(si, root)
    switches = collect(si, root, vim.DistributedVirtualSwitch, ["uuid", "config.uplinkPortgroup"])
    dvs_uuids = {o.id: str(o.get("uuid", "")) for o in switches}
    uplinks = {str(pg._moId) for o in switches for pg in o.get("config.uplinkPortgroup", [])}
    dvpgs = collect(si, root, vim.dvs.DistributedVirtualPortgroup, DVPG_PATHS)
    dvpg_ids = {o.id for o in dvpgs}
    nets = [o for o in collect(si, root, vim.Network, NETWORK_PATHS) if o.id not in dvpg_ids]
    networks = list(_each(nets, "network", dc, ("name",), lambda o: _network(o, dc, vlans), inv.faults))
    # DVS uplink port groups carry no VMs: not networks a server can use
    networks += _each([o for o in dvpgs if o.id not in uplinks and not o.get("config.uplink", False)],
                      "network", dc, ("name",), lambda o: _dvportgroup(o, dc, dvs_uuids), inv.faults)
    inv.networks += networks
    if with_vms:
        ds_ids = {d.name: d.id for d in dss}
        net_names = {n.portgroup_key: n.name for n in networks if n.portgroup_key}
        objs = collect(si, root, vim.VirtualMachine, VM_PATHS)
        details = DETAILS.get(si, f"{inv.instance_uuid}@{endpoint_of(si)}", objs)
        inv.vms += _each(objs, "vm", dc, VM_REQUIRED, lambda o: _vm(o, dc, ds_ids, net_names, details), inv.faults)


@dataclass(frozen=True)
class HostRefs:
    """The managed objects a host's VMs live in: found once per session (``EsxiDriver.refs``)."""

    host: Any
    name: str
    datacenter: Any
    datacenter_name: str
    vm_folder: Any
    pool: Any


props = fetch  # one collector call for the given objects
