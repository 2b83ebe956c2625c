"""EsxiDriver: the HypervisorDriver protocol over one ESXi host, directly or through its vCenter.

    drv = EsxiDriver(EsxiConfig.parse({"host": "vc", "username": "u", "password": "p", "esxi_host": "esx1"}))
    drv.list_guests()                     # the host's VMs as Guests (id: the VM's instance UUID)
    drv.stop_guest(guest_id, timeout=30)  # ShutdownGuest through VMware Tools, PowerOff after 30 s
    drv.delete_guest(guest_id)

A guest id is a VM's instance UUID (``config.instanceUuid``; the VMs this driver creates get the
server's id as theirs), its BIOS UUID, or its managed object id (``vm-42``). Guests are created
through ``for_host(env).deploy(spec)`` (drivers/esxi/instances.py): a vSphere VM needs a
datastore, a resource pool and port groups that a libvirt-shaped ``GuestSpec`` does not name.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar

from pyVmomi import vim, vmodl

from drivers.base import (
    Capability,
    Guest,
    GuestEvent,
    GuestNotFound,
    GuestSpec,
    HostEnv,
    HostFacts,
    HypervisorError,
    InvalidSpec,
    StoragePath,
)
from drivers.esxi.inventory import HostRefs, Obj, collect, props, vm_status
from drivers.esxi.provider import CAPABILITIES as PROVIDER_CAPABILITIES
from drivers.esxi.session import EsxiConfig, Session, fault_text

__all__ = ["VERSION", "EsxiDriver", "HostRefs"]

VERSION = "1.0"

log = logging.getLogger(__name__)

GUEST_PATHS = ("name", "config.instanceUuid", "config.uuid", "config.hardware.numCPU", "config.hardware.memoryMB",
               "config.template", "runtime.powerState", "runtime.connectionState", "runtime.host",
               "guest.toolsRunningStatus", "config.files.vmPathName")

T = TypeVar("T")




def to_guest(o: Obj) -> Guest:
    power, conn = o.get("runtime.powerState", ""), o.get("runtime.connectionState", "")
    status = vm_status(power, conn)
    return Guest(id=str(o.get("config.instanceUuid") or o.id), name=str(o.get("name", o.id)), status=status,
                 extra={"moref": o.id, "power_state": str(power), "connection_state": str(conn),
                        "vcpu": int(o.get("config.hardware.numCPU", 0)),
                        "memory_mb": int(o.get("config.hardware.memoryMB", 0)),
                        "bios_uuid": str(o.get("config.uuid", "")), "template": bool(o.get("config.template", False)),
                        "tools": str(o.get("guest.toolsRunningStatus", "")),
                        "host": str(o.props["runtime.host"]._moId) if o.props.get("runtime.host") is not None else "",
                        "vmx": str(o.get("config.files.vmPathName", ""))})


class EsxiDriver:
    """Guests as vSphere VMs on one ESXi host (``cfg.esxi_host``; the only host when unnamed)."""

    name: ClassVar[str] = "esxi"
    provider: ClassVar[str] = "VMware"  # Cloudpods' brand name
    provider_capabilities = PROVIDER_CAPABILITIES  # of the account (drivers/esxi/provider.py)
    version: ClassVar[str] = VERSION
    capabilities: ClassVar[frozenset[Capability]] = frozenset({
        Capability.GRACEFUL_STOP,  # through VMware Tools when they run; PowerOff after the timeout
        Capability.REBOOT,
        Capability.RESET,
        Capability.SUSPEND,
        Capability.CHANGE_CONFIG,
    })

    @classmethod
    def for_host(cls, env: HostEnv) -> Any:
        """The driver as the controller's executor hosts it (drivers.base.HostedDriver)."""
        from drivers.esxi.instances import EsxiInstances

        opts = env.options
        # a host synced from a cloud account carries the account's config; one made by host-create, flat keys
        cfg = EsxiConfig.from_account(opts) if "access_url" in opts or "secret" in opts else EsxiConfig.parse(opts)
        return EsxiInstances(cls(cfg), env)

    @classmethod
    def for_account(cls, config: Mapping[str, Any]) -> Any:
        """The account's CloudProvider (drivers.base): what the sync lists."""
        from drivers.esxi.provider import EsxiProvider

        return EsxiProvider(config)

    def __init__(self, cfg: EsxiConfig, session: Session | None = None) -> None:
        self.cfg = cfg
        self.session = session or Session(cfg)
        self._refs: tuple[Any, HostRefs] | None = None  # (the session's service instance, refs)
        self._lock = threading.Lock()
        self._morefs: dict[str, str] = {}  # guest id -> VM moref, checked on every use

    # --- the host and its surroundings ---------------------------------------------------------
    def refs(self) -> HostRefs:
        si = self.session.si
        with self._lock:
            if self._refs is None or self._refs[0] is not si:
                self._refs = (si, self.session.call(self._find_host, "find the ESXi host"))
            return self._refs[1]

    def _find_host(self, si: Any) -> HostRefs:
        content = si.RetrieveContent()
        hosts = collect(si, content.rootFolder, vim.HostSystem, ["name", "parent"])
        want = self.cfg.esxi_host
        if want:
            found = [h for h in hosts if want in (h.get("name"), h.id)]
            if not found:
                names = ", ".join(sorted(str(h.get("name")) for h in hosts)[:20])
                raise HypervisorError(f"esxi: no host {want!r} at {self.cfg.endpoint} (hosts: {names or 'none'})")
        elif len(hosts) == 1:
            found = hosts
        else:
            names = ", ".join(sorted(str(h.get("name")) for h in hosts)[:20])
            raise HypervisorError(f"esxi: {self.cfg.endpoint} has {len(hosts)} hosts: set esxi_host to one of {names}")
        h = found[0]
        compute = h.props["parent"]
        pool = compute.resourcePool
        dc = compute
        while dc is not None and not isinstance(dc, vim.Datacenter):
            dc = dc.parent
        if dc is None:
            raise HypervisorError(f"esxi: host {h.get('name')} is in no datacenter")
        if self.cfg.datacenter and self.cfg.datacenter not in (dc.name, dc._moId):
            raise HypervisorError(f"esxi: host {h.get('name')} is in datacenter {dc.name}, not {self.cfg.datacenter}")
        return HostRefs(host=h.ref, name=str(h.get("name")), datacenter=dc, datacenter_name=str(dc.name),
                        vm_folder=dc.vmFolder, pool=pool)

    # --- VMs -------------------------------------------------------------------------------------
    def vm_ref(self, si: Any, guest_id: str) -> Any:
        """The VM a guest id names (GuestNotFound when there is none)."""
        if not guest_id:
            raise GuestNotFound(guest_id)
        moref = self._morefs.get(guest_id)
        if moref is None and guest_id.startswith("vm-"):
            moref = guest_id
        if moref is not None:
            ref = vim.VirtualMachine(moref, si._stub)
            try:
                found = props(si, [ref], ["config.instanceUuid"])
            except vmodl.fault.ManagedObjectNotFound:
                found = []
            if found and guest_id in (moref, found[0].get("config.instanceUuid")):
                return ref
            self._morefs.pop(guest_id, None)
        index = si.RetrieveContent().searchIndex
        ref = index.FindByUuid(None, guest_id, True, True) or index.FindByUuid(None, guest_id, True, False)
        if ref is None:
            ref = self._imported(si, guest_id)
        if ref is None:
            raise GuestNotFound(guest_id)
        self._morefs[guest_id] = str(ref._moId)
        return ref

    def _imported(self, si: Any, guest_id: str) -> Any:
        """A VM the sync imported: its server id is derived from (provider, moref), not stored in vCenter."""
        if not self.cfg.manager_id:
            return None
        from drivers.base import imported_server_id

        host = props(si, [self.refs().host], ["vm"])
        for vm in (host[0].get("vm", []) if host else []):
            if imported_server_id(self.cfg.manager_id, str(vm._moId)) == guest_id:
                return vm
        return None

    def _guest_obj(self, si: Any, guest_id: str) -> tuple[Any, Obj]:
        ref = self.vm_ref(si, guest_id)
        found = props(si, [ref], GUEST_PATHS)
        if not found:
            raise GuestNotFound(guest_id)
        return ref, found[0]

    def _on_vm(self, guest_id: str, what: str, fn: Callable[[Any, Any, Obj], T]) -> T:
        def run(si: Any) -> T:
            ref, o = self._guest_obj(si, guest_id)
            try:
                return fn(si, ref, o)
            except vmodl.fault.ManagedObjectNotFound:
                self._morefs.pop(guest_id, None)
                raise GuestNotFound(guest_id) from None

        return self.session.call(run, f"{what} {guest_id}")

    # --- HypervisorDriver ------------------------------------------------------------------------
    def host_facts(self) -> HostFacts:
        r = self.refs()

        def read(si: Any) -> HostFacts:
            h = props(si, [r.host], ["name", "summary.hardware", "config.product.version", "datastore"])[0]
            hw = h.props["summary.hardware"]
            ds = props(si, list(h.get("datastore", [])), ["name", "summary.capacity", "summary.freeSpace",
                                                          "summary.accessible"])
            threads, cores, sockets = int(hw.numCpuThreads or 0), int(hw.numCpuCores or 0), int(hw.numCpuPkgs or 0)
            return HostFacts(
                hostname=str(h.get("name")), arch="x86_64", cpu_model=str(hw.cpuModel or ""), cpu_count=threads,
                cpu_mhz=int(hw.cpuMhz or 0), sockets=sockets, cores_per_socket=cores // sockets if sockets else cores,
                threads_per_core=threads // cores if cores else 1, memory_mb=int(hw.memorySize or 0) // (1024 * 1024),
                numa=(), hypervisor="esxi", hypervisor_version=str(h.get("config.product.version", "")),
                guest_types=("esxi",),
                storage=tuple(StoragePath(path=f"[{d.get('name')}]", total_mb=int(d.get("summary.capacity", 0)) >> 20,
                                          free_mb=int(d.get("summary.freeSpace", 0)) >> 20)
                              for d in ds if d.get("summary.accessible", True)),
                nics=(), gpus=())

        return self.session.call(read, "read the host's facts")

    def list_guests(self) -> list[Guest]:
        r = self.refs()

        def read(si: Any) -> list[Guest]:
            vms = props(si, [r.host], ["vm"])
            refs = list(vms[0].get("vm", [])) if vms else []
            return [to_guest(o) for o in props(si, refs, GUEST_PATHS) if not o.get("config.template", False)]

        return self.session.call(read, "list the host's VMs")

    def get_guest(self, guest_id: str) -> Guest:
        return self._on_vm(guest_id, "read", lambda si, ref, o: to_guest(o))

    def create_guest(self, spec: GuestSpec, *, start: bool = True) -> Guest:
        """A VM with ``spec``'s CPUs and memory and no devices (disks and NICs come through deploy())."""
        if spec.disks or spec.nics or spec.kernel or spec.config_drive:
            raise InvalidSpec("esxi: a GuestSpec's disks, NICs and kernel are libvirt files; "
                              "deploy an InstanceSpec through for_host(env).deploy() instead")
        from drivers.esxi.instances import vm_config

        r = self.refs()
        cfg = vm_config(spec.name, spec.uuid, spec.vcpu, spec.memory_mb, self.default_datastore(), [])

        def create(si: Any) -> Any:
            return self.session.wait(r.vm_folder.CreateVM_Task(config=cfg, pool=r.pool, host=r.host),
                                     f"create VM {spec.name}")

        self.session.call(create, f"create VM {spec.name}")
        if start:
            self.start_guest(spec.uuid)
        return self.get_guest(spec.uuid)

    def default_datastore(self) -> str:
        """``cfg.datastore``, else the host's accessible datastore with the most free space."""
        r = self.refs()

        def pick(si: Any) -> str:
            h = props(si, [r.host], ["datastore"])[0]
            ds = [d for d in props(si, list(h.get("datastore", [])), ["name", "summary.freeSpace",
                                                                      "summary.accessible"])
                  if d.get("summary.accessible", True)]
            if self.cfg.datastore:
                named = [d for d in ds if self.cfg.datastore in (d.get("name"), d.id)]
                if not named:
                    have = ", ".join(sorted(str(d.get("name")) for d in ds))
                    raise HypervisorError(f"esxi: host {r.name} has no datastore {self.cfg.datastore!r} "
                                          f"(it has: {have or 'none'})")
                return str(named[0].get("name"))
            if not ds:
                raise HypervisorError(f"esxi: host {r.name} has no accessible datastore")
            return str(max(ds, key=lambda d: int(d.get("summary.freeSpace", 0))).get("name"))

        return self.session.call(pick, "choose a datastore")

    def _power(self, guest_id: str, what: str, want: set[str], start: Callable[[Any], Any]) -> None:
        """Run a power task unless the VM already is in one of ``want`` (a redelivered item is fine)."""
        def run(si: Any, ref: Any, o: Obj) -> None:
            if str(o.get("runtime.powerState", "")) in want:
                return
            self.session.wait(start(ref), f"{what} {o.get('name')}")

        self._on_vm(guest_id, what, run)

    def start_guest(self, guest_id: str) -> None:
        self._power(guest_id, "power on", {"poweredOn"}, lambda vm: vm.PowerOnVM_Task())

    def stop_guest(self, guest_id: str, *, timeout: float = 60.0) -> None:
        """ShutdownGuest when VMware Tools run, waiting up to ``timeout`` s; then (or else) PowerOff."""
        if timeout < 0:
            raise InvalidSpec("stop timeout must be >= 0")

        def run(si: Any, ref: Any, o: Obj) -> None:
            state = str(o.get("runtime.powerState", ""))
            if state == "poweredOff":
                return
            if timeout > 0 and state == "poweredOn" and o.get("guest.toolsRunningStatus") == "guestToolsRunning":
                try:
                    ref.ShutdownGuest()
                    end = time.monotonic() + timeout
                    delay = 0.05
                    while time.monotonic() < end:
                        if str(ref.runtime.powerState) == "poweredOff":
                            return
                        time.sleep(delay)
                        delay = min(delay * 2, 2.0)
                    log.info("VM %s did not shut down within %.0f s: powering it off", o.get("name"), timeout)
                except vmodl.MethodFault as exc:
                    log.info("VM %s: ShutdownGuest refused (%s): powering it off", o.get("name"), fault_text(exc))
            if str(ref.runtime.powerState) != "poweredOff":
                self.session.wait(ref.PowerOffVM_Task(), f"power off {o.get('name')}")

        self._on_vm(guest_id, "stop", run)

    def reboot_guest(self, guest_id: str) -> None:
        """RebootGuest through VMware Tools when they run; a reset otherwise."""
        def run(si: Any, ref: Any, o: Obj) -> None:
            if str(o.get("runtime.powerState", "")) != "poweredOn":
                raise HypervisorError(f"VM {o.get('name')} is {o.get('runtime.powerState')}: start it instead")
            if o.get("guest.toolsRunningStatus") == "guestToolsRunning":
                try:
                    ref.RebootGuest()
                    return
                except vmodl.MethodFault as exc:
                    log.info("VM %s: RebootGuest refused (%s): resetting it", o.get("name"), fault_text(exc))
            self.session.wait(ref.ResetVM_Task(), f"reset {o.get('name')}")

        self._on_vm(guest_id, "reboot", run)

    def reset_guest(self, guest_id: str) -> None:
        def run(si: Any, ref: Any, o: Obj) -> None:
            if str(o.get("runtime.powerState", "")) != "poweredOn":
                raise HypervisorError(f"VM {o.get('name')} is {o.get('runtime.powerState')}: only a running VM resets")
            self.session.wait(ref.ResetVM_Task(), f"reset {o.get('name')}")

        self._on_vm(guest_id, "reset", run)

    def suspend_guest(self, guest_id: str) -> None:
        def run(si: Any, ref: Any, o: Obj) -> None:
            state = str(o.get("runtime.powerState", ""))
            if state == "suspended":
                return
            if state != "poweredOn":
                raise HypervisorError(f"VM {o.get('name')} is {state}: only a running VM suspends")
            self.session.wait(ref.SuspendVM_Task(), f"suspend {o.get('name')}")

        self._on_vm(guest_id, "suspend", run)

    def resume_guest(self, guest_id: str) -> None:
        def run(si: Any, ref: Any, o: Obj) -> None:
            state = str(o.get("runtime.powerState", ""))
            if state == "poweredOn":
                return
            if state != "suspended":
                raise HypervisorError(f"VM {o.get('name')} is {state}: only a suspended VM resumes")
            self.session.wait(ref.PowerOnVM_Task(), f"resume {o.get('name')}")

        self._on_vm(guest_id, "resume", run)

    def reconfigure(self, guest_id: str, *, vcpu: int, memory_mb: int) -> None:
        """New vCPU count and memory for a stopped VM (no hot-add: Cloudpods asks for a stop first)."""
        def run(si: Any, ref: Any, o: Obj) -> None:
            if str(o.get("runtime.powerState", "")) != "poweredOff":
                raise HypervisorError(f"VM {o.get('name')} is {o.get('runtime.powerState')}: "
                                      "stop it before changing its configuration")
            spec = vim.vm.ConfigSpec(numCPUs=vcpu, memoryMB=memory_mb)
            self.session.wait(ref.ReconfigVM_Task(spec=spec), f"reconfigure {o.get('name')}")

        self._on_vm(guest_id, "reconfigure", run)

    def delete_guest(self, guest_id: str) -> None:
        """Power off (if on) and destroy the VM with its disks; GuestNotFound when there is none."""
        def run(si: Any, ref: Any, o: Obj) -> None:
            if str(o.get("runtime.powerState", "")) != "poweredOff":
                self.session.wait(ref.PowerOffVM_Task(), f"power off {o.get('name')}")
            self.session.wait(ref.Destroy_Task(), f"destroy {o.get('name')}")
            self._morefs.pop(guest_id, None)

        self._on_vm(guest_id, "delete", run)

    def watch_events(self, callback: Callable[[GuestEvent], None]) -> None:
        """No event stream (LIFECYCLE_EVENTS is not declared): the periodic sync reads power states."""
        return None

    def close(self) -> None:
        self.session.close()
        with self._lock:
            self._refs = None
