"""Driver contracts: small typed protocols and the value objects drivers talk in.

A hypervisor driver turns provider objects (libvirt domains, vSphere VMs, ...) into our
normalized ``Guest`` and takes a ``GuestSpec`` to create one::

    driver = get_driver("kvm")(uri="test:///default")
    guest = driver.create_guest(GuestSpec(name="vm1", uuid=str(uuid4()), vcpu=1, memory_mb=256))
    driver.stop_guest(guest.id, timeout=30)      # graceful, then forced after 30 s
    driver.delete_guest(guest.id)

Exceptions::

    DriverError
     ├── DriverUnavailable   the driver's SDK is missing, or no such driver
     ├── NotSupported        the driver does not declare the capability for an operation
     ├── InvalidSpec         a GuestSpec (or similar input) is malformed
     ├── GuestNotFound       no guest with that id on this host
     └── HypervisorError     the hypervisor refused or failed an operation
"""

from __future__ import annotations

import enum
import re
import uuid as _uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, NoReturn, Protocol, runtime_checkable

__all__ = [
    "CLOUD_KINDS",
    "Capability",
    "CloudDisk",
    "CloudEip",
    "CloudHost",
    "CloudStorage",
    "CloudWire",
    "HOST_KINDS",
    "PartitionedListing",
    "CloudImage",
    "CloudInstance",
    "CloudNetwork",
    "CloudProvider",
    "EipProvider",
    "SecgroupPushing",
    "SecgroupSpec",
    "CloudRegion",
    "CloudSecgroup",
    "CloudSecgroupRule",
    "CloudStatus",
    "CloudVpc",
    "CloudZone",
    "Page",
    "imported_server_id",
    "ProviderAuthError",
    "ProviderCapability",
    "ProviderError",
    "map_status",
    "ColdMigratable",
    "ConsoleEndpoint",
    "ConsoleStream",
    "Consoles",
    "LiveMigratable",
    "DiskExchange",
    "DiskFiles",
    "DiskSpec",
    "DriverError",
    "DriverUnavailable",
    "Gpu",
    "Guest",
    "GuestEvent",
    "GuestNotFound",
    "GuestSpec",
    "GuestStats",
    "GuestStatus",
    "HostEnv",
    "HostFacts",
    "HostNic",
    "HostedDriver",
    "KeptElsewhere",
    "delete_guest",
    "NoDiskVerbs",
    "CloudZoneGuests",
    "CloudZoneHosted",
    "HypervisorDriver",
    "ImageSaver",
    "DiskResizable",
    "NicChangeable",
    "ImageUpload",
    "ImageSource",
    "InstanceDisk",
    "InstanceNic",
    "InstanceSpec",
    "Deployed",
    "LocalImage",
    "PxeBoot",
    "PxeJob",
    "NetworkBackend",
    "HypervisorError",
    "InvalidSpec",
    "NicSpec",
    "NotSupported",
    "NumaCell",
    "Snapshottable",
    "SnapshotSource",
    "StagedDisk",
    "StoragePath",
    "not_supported",
    "require",
    "BmcError",
    "BootDevice",
    "MachineInventory",
    "Management",
    "PowerState",
    "Probing",
    "Sensor",
]


# --- errors ---------------------------------------------------------------------------------


class DriverError(Exception):
    """Base of every error a driver raises on purpose."""


class DriverUnavailable(DriverError):
    """The driver cannot be loaded: unknown name, or its SDK is not installed."""


class NotSupported(DriverError):
    """The driver does not declare the capability an operation needs."""

    def __init__(self, driver: str, op: str) -> None:
        super().__init__(f"{driver} does not support {op}")
        self.driver = driver
        self.op = op


class InvalidSpec(DriverError, ValueError):
    """Malformed input to a driver (a bad name, MAC, size, path ...)."""


class GuestNotFound(DriverError, LookupError):
    """No guest with that id (uuid or name) on this host."""

    def __init__(self, guest_id: str) -> None:
        super().__init__(f"guest {guest_id} not found")
        self.guest_id = guest_id


class HypervisorError(DriverError):
    """The hypervisor refused or failed an operation; the message is the hypervisor's."""


def not_supported(driver: str, op: str) -> NoReturn:
    """The one place ``NotSupported`` is raised from (a bare NotImplementedError is a bug)."""
    raise NotSupported(driver=driver, op=op)


# --- capabilities ---------------------------------------------------------------------------


class Capability(str, enum.Enum):
    """What a driver declares it can do; the scheduler turns these into host traits."""

    GRACEFUL_STOP = "graceful_stop"
    REBOOT = "reboot"
    RESET = "reset"
    SUSPEND = "suspend"
    LIFECYCLE_EVENTS = "lifecycle_events"
    CONFIG_DRIVE = "config_drive"
    DIRECT_KERNEL_BOOT = "direct_kernel_boot"
    SERIAL_LOG = "serial_log"
    DISK_RESIZE = "disk_resize"
    CHANGE_CONFIG = "change_config"  # vCPU/memory of a stopped guest
    ATTACH_DISK = "attach_disk"  # data disks attached/detached while the guest is stopped
    ATTACH_DISK_HOT = "attach_disk_hot"  # ... and while it runs
    REBUILD_ROOT = "rebuild_root"
    COLD_MIGRATE = "cold_migrate"
    LIVE_MIGRATE = "live_migrate"
    SNAPSHOT = "snapshot"  # disk snapshots: create, delete, reset a disk to one (drivers.base.Snapshottable)
    SAVE_IMAGE = "save_image"  # a stopped guest's disk into a glance image (drivers.base.ImageSaver)
    ATTACH_NIC = "attach_nic"  # NICs attached/detached while the guest is stopped (drivers.base.NicChangeable)
    ATTACH_NIC_HOT = "attach_nic_hot"  # ... and while it runs
    CDROM = "cdrom"  # an ISO inserted/ejected and the boot order set while the guest is stopped
    CDROM_HOT = "cdrom_hot"  # ... the ISO changed in a running guest (a media change)
    GUEST_AGENT = "guest_agent"  # a qemu guest agent channel: a running guest's password set through it
    VNC = "vnc"
    SERIAL_CONSOLE = "serial_console"
    # a physical machine behind a BMC (drivers/baremetal): what its management controller offers
    BMC_POWER = "bmc_power"  # power on/off/reset/status of the whole machine
    BOOT_DEVICE = "boot_device"  # next boot from pxe/disk/cdrom/bios
    SENSORS = "sensors"  # sensor readings and overall health
    INVENTORY = "inventory"  # FRU / system inventory (serial, model, CPUs, memory, NICs)
    SOL_CONSOLE = "sol_console"  # serial-over-LAN


def require(driver: HypervisorDriver, cap: Capability, op: str) -> None:
    """Raise NotSupported unless ``driver`` declares ``cap`` (capabilities are declared, never probed)."""
    if cap not in driver.capabilities:
        not_supported(driver.name, op)


# --- guest value objects --------------------------------------------------------------------


class GuestStatus(str, enum.Enum):
    """Our canonical guest status; each driver maps its own states onto these (STATUS_MAP)."""

    RUNNING = "running"
    STOPPED = "stopped"
    PAUSED = "paused"
    SUSPENDED = "suspended"
    SHUTTING_DOWN = "shutting_down"
    CRASHED = "crashed"
    UNKNOWN = "unknown"


_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_IFNAME_RE = re.compile(r"^[A-Za-z0-9_.-]{1,15}$")  # Linux IFNAMSIZ - 1
_DISK_FORMATS = frozenset({"qcow2", "raw"})
_DISK_BUSES = frozenset({"virtio", "scsi", "sata", "ide"})
_DISK_DEVICES = frozenset({"disk", "cdrom"})
_NIC_MODELS = frozenset({"virtio", "e1000", "rtl8139"})


def _abs_path(value: str, what: str) -> None:
    if not value.startswith("/") or "\0" in value or "\n" in value:
        raise InvalidSpec(f"{what} must be an absolute path, got {value!r}")


@dataclass(frozen=True)
class DiskSpec:
    """One block device of a guest: an image file attached on a bus."""

    path: str
    format: str = "qcow2"
    bus: str = "virtio"
    device: str = "disk"
    readonly: bool = False

    def __post_init__(self) -> None:
        _abs_path(self.path, "disk path")
        if self.format not in _DISK_FORMATS:
            raise InvalidSpec(f"disk format must be one of {sorted(_DISK_FORMATS)}, got {self.format!r}")
        if self.bus not in _DISK_BUSES:
            raise InvalidSpec(f"disk bus must be one of {sorted(_DISK_BUSES)}, got {self.bus!r}")
        if self.device not in _DISK_DEVICES:
            raise InvalidSpec(f"disk device must be one of {sorted(_DISK_DEVICES)}, got {self.device!r}")


@dataclass(frozen=True)
class NicSpec:
    """One network interface: a MAC on a Linux bridge, through a tap named ``ifname``."""

    mac: str
    bridge: str
    ifname: str | None = None
    model: str = "virtio"

    def __post_init__(self) -> None:
        object.__setattr__(self, "mac", self.mac.lower())
        if not _MAC_RE.match(self.mac):
            raise InvalidSpec(f"bad MAC address {self.mac!r}")
        if int(self.mac[:2], 16) & 1:
            raise InvalidSpec(f"MAC {self.mac} is a multicast address")
        if not _IFNAME_RE.match(self.bridge):
            raise InvalidSpec(f"bad bridge name {self.bridge!r} (1-15 of [A-Za-z0-9_.-])")
        if self.ifname is not None and not _IFNAME_RE.match(self.ifname):
            raise InvalidSpec(f"bad tap name {self.ifname!r} (1-15 of [A-Za-z0-9_.-])")
        if self.model not in _NIC_MODELS:
            raise InvalidSpec(f"nic model must be one of {sorted(_NIC_MODELS)}, got {self.model!r}")


@dataclass(frozen=True)
class GuestSpec:
    """Everything a driver needs to create a guest; validated on construction."""

    name: str
    uuid: str
    vcpu: int
    memory_mb: int
    disks: tuple[DiskSpec, ...] = ()
    nics: tuple[NicSpec, ...] = ()
    config_drive: str | None = None
    serial_log: str | None = None
    kernel: str | None = None
    initrd: str | None = None
    cmdline: str | None = None
    arch: str = "x86_64"
    # consoles: a password-less VNC server on this address (loopback or the host's management
    # address: only the agent's console proxy may reach it); the first serial port as a pty the
    # agent can attach to (its output still goes to ``serial_log``). None/False: no such device.
    vnc_listen: str | None = None
    serial_console: bool = False
    # the guest's CD-ROM drive for ISOs (not the config drive): None no drive, "" an empty drive,
    # else the ISO file in it
    iso: str | None = None
    # the boot devices in order ("disk<N>": the N-th of ``disks``, "cdrom": the ISO drive); empty:
    # the disks in their order
    boot_order: tuple[str, ...] = ()
    guest_agent: bool = False  # a virtio-serial channel for the qemu guest agent (qemu-ga in the guest)

    def __post_init__(self) -> None:
        if not _NAME_RE.match(self.name):
            raise InvalidSpec(
                f"bad guest name {self.name!r} (1-63 of [A-Za-z0-9_.-], not starting with . - _)"
            )
        try:
            object.__setattr__(self, "uuid", str(_uuid.UUID(self.uuid)))
        except (ValueError, TypeError, AttributeError):
            raise InvalidSpec(f"bad guest uuid {self.uuid!r}") from None
        if not isinstance(self.vcpu, int) or not 1 <= self.vcpu <= 512:
            raise InvalidSpec(f"vcpu must be an integer 1..512, got {self.vcpu!r}")
        if not isinstance(self.memory_mb, int) or not 16 <= self.memory_mb <= 16 * 1024 * 1024:
            raise InvalidSpec(f"memory_mb must be an integer >= 16, got {self.memory_mb!r}")
        object.__setattr__(self, "disks", tuple(self.disks))
        object.__setattr__(self, "nics", tuple(self.nics))
        for d in self.disks:
            if not isinstance(d, DiskSpec):
                raise InvalidSpec(f"disks must be DiskSpec, got {type(d).__name__}")
        for n in self.nics:
            if not isinstance(n, NicSpec):
                raise InvalidSpec(f"nics must be NicSpec, got {type(n).__name__}")
        macs = [n.mac for n in self.nics]
        if len(set(macs)) != len(macs):
            raise InvalidSpec("two nics share a MAC address")
        for attr in ("config_drive", "serial_log", "kernel", "initrd"):
            value = getattr(self, attr)
            if value is not None:
                _abs_path(value, attr)
        if self.iso:
            _abs_path(self.iso, "iso")
        object.__setattr__(self, "boot_order", tuple(self.boot_order))
        for dev in self.boot_order:
            if dev == "cdrom" and self.iso is None:
                raise InvalidSpec("boot order names the cdrom but the guest has no cdrom drive")
            if dev != "cdrom" and not (dev.startswith("disk") and dev[4:].isdigit()
                                       and int(dev[4:]) < len(self.disks)):
                raise InvalidSpec(f"boot order: no such device {dev!r} (disk<N> or cdrom)")
        if len(set(self.boot_order)) != len(self.boot_order):
            raise InvalidSpec("boot order names a device twice")
        if self.initrd and not self.kernel:
            raise InvalidSpec("initrd given without kernel")
        if self.cmdline and not self.kernel:
            raise InvalidSpec("cmdline given without kernel")
        if self.vnc_listen is not None:
            import ipaddress

            try:
                ipaddress.ip_address(self.vnc_listen)
            except ValueError:
                raise InvalidSpec(f"vnc_listen must be an IP address, got {self.vnc_listen!r}") from None


@dataclass(frozen=True)
class Guest:
    """A guest as a driver reports it; ``extra`` keeps provider leftovers (vcpu, memory, reason)."""

    id: str
    name: str
    status: GuestStatus
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class GuestStats:
    """One guest's resource counters at one moment (monotonic counters; rates are the caller's job).

    A hypervisor driver that can read them offers ``guest_stats() -> list[GuestStats]`` (optional:
    the agent checks for it). A counter the hypervisor does not give is None, never a made-up 0.
    """

    id: str
    name: str
    running: bool
    vcpus: int
    cpu_time_ns: int | None = None
    memory_kib: int | None = None  # what the guest has (balloon current, or its configured memory)
    memory_rss_kib: int | None = None  # what it uses on the host, when known
    disk_read_bytes: int | None = None
    disk_write_bytes: int | None = None
    net_rx_bytes: int | None = None
    net_tx_bytes: int | None = None


@dataclass(frozen=True)
class GuestEvent:
    """A lifecycle change reported by the hypervisor (status is the new canonical status)."""

    guest_id: str
    name: str
    status: GuestStatus
    event: str
    detail: str


# --- host facts -----------------------------------------------------------------------------


@dataclass(frozen=True)
class NumaCell:
    id: int
    memory_mb: int
    cpus: tuple[int, ...]


@dataclass(frozen=True)
class StoragePath:
    path: str
    total_mb: int
    free_mb: int


@dataclass(frozen=True)
class HostNic:
    name: str
    mac: str
    mtu: int
    up: bool
    speed_mbps: int | None
    kind: str  # "physical", "bridge", "vlan", "bond", "virtual"


@dataclass(frozen=True)
class Gpu:
    """A PCI display controller or processing accelerator (class 0x03xx / 0x12xx)."""

    address: str
    vendor_id: str
    device_id: str
    description: str
    driver: str | None


@dataclass(frozen=True)
class HostFacts:
    """What an agent reports about its host when it registers."""

    hostname: str
    arch: str
    cpu_model: str
    cpu_count: int
    cpu_mhz: int
    sockets: int
    cores_per_socket: int
    threads_per_core: int
    memory_mb: int
    numa: tuple[NumaCell, ...]
    hypervisor: str  # the domain type guests get: "kvm", "qemu", "test"
    hypervisor_version: str
    guest_types: tuple[str, ...]  # domain types the hypervisor offers for this arch
    storage: tuple[StoragePath, ...]
    nics: tuple[HostNic, ...]
    gpus: tuple[Gpu, ...]


# --- the protocol ---------------------------------------------------------------------------


@runtime_checkable
class HypervisorDriver(Protocol):
    """A hypervisor on one host.

    Example::

        drv: HypervisorDriver = KvmDriver(uri="test:///default")
        g = drv.create_guest(spec)            # defined and started
        assert drv.get_guest(g.id).status is GuestStatus.RUNNING
    """

    name: ClassVar[str]
    capabilities: ClassVar[frozenset[Capability]]

    def host_facts(self) -> HostFacts: ...

    def list_guests(self) -> list[Guest]: ...

    def get_guest(self, guest_id: str) -> Guest: ...

    def create_guest(self, spec: GuestSpec, *, start: bool = True) -> Guest: ...

    def start_guest(self, guest_id: str) -> None: ...

    def stop_guest(self, guest_id: str, *, timeout: float = 60.0) -> None: ...

    def reboot_guest(self, guest_id: str) -> None: ...

    def reset_guest(self, guest_id: str) -> None: ...

    def suspend_guest(self, guest_id: str) -> None: ...

    def resume_guest(self, guest_id: str) -> None: ...

    def delete_guest(self, guest_id: str) -> None: ...

    def watch_events(self, callback: Callable[[GuestEvent], None]) -> None: ...

    def close(self) -> None: ...


# --- what an agent gives the driver it hosts, and what it asks of it --------------------------------
#
# The agent (core/agent) is driver-neutral: it pulls work items, keeps the image cache and the
# host network (bridges, DHCP), and hands each item to the driver named in its config through
# the ``HostedDriver`` protocol below, in these value objects. Driver code never imports core.


@dataclass(frozen=True)
class LocalImage:
    """An image in the agent's cache: a local file, its format and glance's properties."""

    path: str
    format: str
    properties: Mapping[str, Any]
    virtual_size_mb: int


class ImageSource(Protocol):
    """The agent's image cache: ``get`` downloads once, verifies, and returns the local file."""

    def get(self, image_id: str) -> LocalImage: ...


@dataclass(frozen=True)
class InstanceNic:
    """One NIC of an instance as the region allocated it (address, wire, MAC)."""

    index: int
    mac: str
    ip: str
    mask: int
    gateway: str = ""
    dns: str = ""
    vlan_id: int = 1
    mtu: int = 1500
    network_id: str = ""
    wire_id: str = ""
    bridge: str = ""


class NetworkBackend(Protocol):
    """The host network: make the NIC's bridge ready and answer DHCP for its MAC."""

    def plug(self, nic: InstanceNic, hostname: str | None = None) -> str:
        """Ready the NIC's bridge and lease its address; returns the bridge name."""
        ...

    def unplug(self, mac: str) -> None: ...


@dataclass(frozen=True)
class SnapshotSource:
    """A snapshot (``snapshot_id``) kept inside disk ``disk`` of guest ``server_id`` on this host."""

    server_id: str
    disk: InstanceDisk
    snapshot_id: str


@dataclass(frozen=True)
class InstanceDisk:
    """One disk of an instance: from an image (``image_id``), blank (``size_mb``), or a copy of
    another disk's snapshot (``snapshot_source``: a clone of an instance snapshot)."""

    id: str
    index: int
    size_mb: int
    image_id: str | None = None
    format: str = "qcow2"
    access_path: str = ""
    snapshot_source: SnapshotSource | None = None


@dataclass(frozen=True)
class InstanceSpec:
    """Everything about an instance a driver builds it from (the region's view, driver-neutral)."""

    server_id: str
    name: str
    vcpu: int
    memory_mb: int
    arch: str = "x86_64"
    auto_start: bool = False
    disks: tuple[InstanceDisk, ...] = ()
    nics: tuple[InstanceNic, ...] = ()
    ssh_keys: tuple[str, ...] = ()
    password: str | None = field(default=None, repr=False)
    user_data: str | None = None
    os_type: str = ""
    cdrom_image_id: str | None = None  # an ISO image in the guest's CD-ROM drive (server-create --cdrom)
    boot_order: tuple[str, ...] = ()  # "disk<index>" / "cdrom", first boot device first (set-boot-index)


@dataclass(frozen=True)
class Deployed:
    """What building an instance gave: the guest, its status, where each disk lives."""

    guest_id: str
    status: GuestStatus
    disks: tuple[tuple[str, str], ...] = ()  # (disk id, access path)


@dataclass(frozen=True)
class StagedDisk:
    """A disk file the controller holds for a moving guest: its sha256 and size in bytes."""

    disk_id: str
    sha256: str
    size: int


@runtime_checkable
class DiskExchange(Protocol):
    """Disk files through the controller, for a cold migration (the agent streams, never buffers).

    The source uploads each disk of the guest it hands over; the target downloads them, checked
    against the sha256 the upload gave (a mismatch raises ``HypervisorError``)."""

    def upload(self, server_id: str, disk_id: str, path: str) -> StagedDisk: ...

    def download(self, server_id: str, disk_id: str, path: str, *, sha256: str) -> None: ...


@dataclass(frozen=True)
class ConsoleEndpoint:
    """Where a guest's console listens on its host, for the agent's console proxy to attach to.

    ``protocol``: ``vnc`` (RFB over TCP at ``host``:``port``) or ``serial`` (a pty at ``path``,
    or TCP at ``host``:``port``). ``standin`` says it is not the guest's own device but a test
    peer configured in its place (libvirt's test:/// guests have no consoles)."""

    protocol: str
    host: str = ""
    port: int = 0
    path: str = ""
    standin: bool = False
    # a console the driver carries itself (IPMI serial-over-LAN): no socket or pty to open
    stream: ConsoleStream | None = field(default=None, compare=False, repr=False)
    where: str = ""  # what to call it in the session's record when it is a stream ("SOL of BMC 10.0.0.5:623")


@runtime_checkable
class ConsoleStream(Protocol):
    """A console session the driver opened (e.g. serial-over-LAN through a BMC). ``read`` blocks
    until bytes arrive and returns b"" once the console is gone; ``close`` wakes a blocked read."""

    def read(self) -> bytes: ...

    def write(self, data: bytes) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class Consoles(Protocol):
    """A hosted driver that gives access to its guests' consoles (``Capability.VNC`` /
    ``Capability.SERIAL_CONSOLE``): where the console of a running guest listens right now."""

    def console(self, server_id: str, protocol: str) -> ConsoleEndpoint: ...


@dataclass(frozen=True)
class HostEnv:
    """What the agent gives a hosted driver: where to keep files, the image cache, the network."""

    uri: str
    data_dir: str
    instances_dir: str
    images: ImageSource
    network: NetworkBackend
    domain_type: str = "auto"
    stop_timeout_s: float = 30.0
    options: Mapping[str, Any] = field(default_factory=dict)
    exchange: DiskExchange | None = None  # disks to/from the controller (cold migration); None: no such link
    pxe: PxeBoot | None = None  # the boot network a bare-metal machine deploys through; None: no such network


@runtime_checkable
class HostedDriver(Protocol):
    """A driver as a host agent runs it: instances end to end, on top of a ``HypervisorDriver``.

    Made by the driver class's ``for_host(env)``; ``capabilities`` are what registration
    reports (the scheduler and the API act on them); a method whose capability is not declared
    raises ``NotSupported``.
    """

    name: str
    version: str
    capabilities: frozenset[Capability]
    driver: HypervisorDriver

    def validate(self) -> None:
        """Check the configuration without touching guests (raise DriverError naming the fix)."""
        ...

    def deploy(self, spec: InstanceSpec) -> Deployed: ...

    def remove(self, server_id: str) -> bool:
        """Guest, leases and files gone (each step fine if already gone). True if a guest existed."""
        ...

    def reconfigure(self, server_id: str, *, vcpu: int, memory_mb: int) -> None: ...

    def attach_disk(self, server_id: str, disk: InstanceDisk) -> tuple[str, bool]:
        """Attach a data disk (made if missing); (access path, whether it was hot-plugged)."""
        ...

    def detach_disk(self, server_id: str, disk: InstanceDisk, *, keep: bool = True) -> bool:
        """Detach a data disk (its file removed unless ``keep``); whether it was hot-unplugged."""
        ...

    def rebuild_root(self, spec: InstanceSpec) -> Deployed: ...

    def keep_disks(self, server_id: str, disks: list[InstanceDisk]) -> list[tuple[str, str]]:
        """Before ``remove``: move these data disks' files out of the instance, so they outlive it;
        [(disk id, new access path)]. Already moved (redelivery): the same answer."""
        ...

    def persist(self, server_id: str) -> None:
        """Keep the instance's description on the host (no secrets in it), so ``restore`` can re-define it.

        The agent calls it after every work item that touched the instance; a gone instance is a no-op."""
        ...

    def restore(self) -> list[tuple[str, str]]:
        """After a restart: re-define persisted instances the hypervisor lost; [(server id, problem)]."""
        ...

    def close(self) -> None: ...


# --- parts hosted drivers share (mixins: a driver class lists those whose behaviour it has) ------------


def delete_guest(driver: HypervisorDriver, server_id: str) -> bool:
    """``HostedDriver.remove`` of a driver whose guest is all there is: delete it; False if it was gone."""
    try:
        driver.delete_guest(server_id)
    except GuestNotFound:
        return False
    return True


class KeptElsewhere:
    """``persist``/``restore`` of a hosted driver whose instances someone else keeps (a cloud, a
    vCenter, the machine's own disk): nothing to write on this host, nothing to re-define after a restart."""

    def persist(self, server_id: str) -> None:
        return None

    def restore(self) -> list[tuple[str, str]]:
        return []


class NoDiskVerbs:
    """A hosted driver that neither attaches nor detaches data disks nor rebuilds a root disk."""

    name: str

    def attach_disk(self, server_id: str, disk: InstanceDisk) -> tuple[str, bool]:
        not_supported(self.name, "attach_disk")

    def detach_disk(self, server_id: str, disk: InstanceDisk, *, keep: bool = True) -> bool:
        not_supported(self.name, "detach_disk")

    def rebuild_root(self, spec: InstanceSpec) -> Deployed:
        not_supported(self.name, "rebuild_root")


class CloudZoneGuests:
    """The ``HypervisorDriver`` side of a cloud's zone (aws, cloudpods): guests are made by the hosted
    driver's ``deploy``; no hard reset, suspend or resume; no lifecycle events (the periodic sync reads
    statuses); the zone has no fixed size."""

    name: ClassVar[str]
    capabilities: ClassVar[frozenset[Capability]]

    def reset_guest(self, guest_id: str) -> None:
        not_supported(self.name, "reset")

    def suspend_guest(self, guest_id: str) -> None:
        not_supported(self.name, "suspend")

    def resume_guest(self, guest_id: str) -> None:
        not_supported(self.name, "resume")

    def create_guest(self, spec: Any, *, start: bool = True) -> Guest:
        not_supported(self.name, "create_guest (use deploy)")

    def watch_events(self, callback: Callable[[Any], None]) -> None:
        return None

    def zone_facts(self, hostname: str, version: str) -> HostFacts:
        # a cloud zone has no fixed size: large numbers, so only quotas bound what is placed there
        return HostFacts(hostname=hostname, arch="x86_64", cpu_model=self.name, cpu_count=100_000, cpu_mhz=0,
                         sockets=1, cores_per_socket=100_000, threads_per_core=1, memory_mb=1 << 30, numa=(),
                         hypervisor=self.name, hypervisor_version=version, guest_types=(self.name,), storage=(),
                         nics=(), gpus=())


class CloudZoneHosted(KeptElsewhere):
    """The ``HostedDriver`` side of a cloud's zone (aws, cloudpods): an instance is removed by deleting
    it there; the cloud keeps it and the disks a server keeps (they stay where they are); no resize."""

    name: str
    driver: HypervisorDriver

    def remove(self, server_id: str) -> bool:
        return delete_guest(self.driver, server_id)

    def reconfigure(self, server_id: str, *, vcpu: int, memory_mb: int) -> None:
        not_supported(self.name, "change_config")

    def keep_disks(self, server_id: str, disks: list[InstanceDisk]) -> list[tuple[str, str]]:
        return [(d.id, d.access_path) for d in disks]

    def close(self) -> None:
        self.driver.close()


@runtime_checkable
class ColdMigratable(Protocol):
    """A hosted driver that moves stopped guests between hosts (``Capability.COLD_MIGRATE``).

    ``migrate_out`` (source): the guest must be stopped; its disks go to ``env.exchange``; returns
    what the target needs (JSON: per disk its sha256, format, backing image). ``migrate_in``
    (target): the guest built from ``spec`` with those disks, defined stopped. ``migrate_cleanup``
    (source): the guest, its leases and files gone (True if it existed). All three are idempotent.
    """

    def migrate_out(self, server_id: str, disks: tuple[InstanceDisk, ...]) -> dict[str, Any]: ...

    def migrate_in(self, spec: InstanceSpec, source: Mapping[str, Any]) -> Deployed: ...

    def migrate_cleanup(self, server_id: str) -> bool: ...


@runtime_checkable
class DiskFiles(Protocol):
    """A hosted driver whose disks are files on the host: a deleted disk's file goes with it.

    ``delete_disk`` removes the file of a disk no guest uses (refused if one does), only inside
    the driver's own directories; True if a file was removed, False if there was none."""

    def delete_disk(self, disk: InstanceDisk) -> bool: ...


@runtime_checkable
class LiveMigratable(Protocol):
    """A hosted driver that moves running guests between hosts (``Capability.LIVE_MIGRATE``).

    ``live_migrate_prepare`` (target): everything but the running guest made here from ``spec``
    (disks of the same sizes on the same images, leases, config drive); returns (disk id, file)
    pairs and the hand-over the source needs (JSON: how to reach this hypervisor, the definition
    the guest gets here). ``live_migrate`` (source): the guest moved live with that hand-over, its
    memory and the disks' own blocks copied; the source's leases and files gone afterwards; the
    guest's status on the target. A failed move leaves the guest running on the source. Both
    idempotent (a prepared target is prepared again; a guest already moved is not moved twice).
    ``migrate_cleanup`` (ColdMigratable) undoes a prepare that was never used.
    """

    def live_migrate_prepare(self, spec: InstanceSpec) -> tuple[list[tuple[str, str]], dict[str, Any]]: ...

    def live_migrate(self, server_id: str, target: Mapping[str, Any],
                     disks: tuple[InstanceDisk, ...] = ()) -> GuestStatus: ...


# --- cloud providers (public clouds, another Cloudpods, vCenter) ----------------------------------
#
# A cloud account's provider lists what the cloud has, page by page, as normalised value objects
# (libcloud's lesson): the fields every cloud has, typed; whatever else the cloud says in ``extra``.
# Each provider maps its own statuses onto ours through a ``STATUS_MAP`` with an explicit unknown
# (``map_status``), so a status nobody mapped reads "unknown", never a crash nor a guess. What a
# provider can do is data (``ProviderCapability``), never a NotImplementedError at run time.
#
# The controller's sync (core/cloud/sync.py) calls ``fetch_page(kind, page_token)``: a ``Page`` holds
# items and the next token ("" when the listing is complete). A raised ``ProviderError`` (or any
# error) for a page means: that kind was not fully seen, so nothing of that kind is marked gone.
# Instance lifecycle goes through the host contract instead: each synced zone is an executor host
# whose driver (``for_host``) is a ``HostedDriver`` built from the account's config.


class ProviderError(DriverError):
    """The cloud's API refused or failed a call; the message is the cloud's (code + text)."""


class ProviderAuthError(ProviderError):
    """The cloud refused the account's credentials (wrong keys, expired, no permission)."""


class ProviderCapability(str, enum.Enum):
    """What a cloud provider can do (the API refuses the rest before a task starts)."""

    SYNC = "sync"
    COMPUTE = "compute"  # instances: create, start, stop, reboot, delete
    DISK = "disk"  # volumes: create, attach, detach
    EIP = "eip"  # allocate, associate, dissociate, release
    SECGROUP_PUSH = "secgroup_push"  # rules written back to the cloud
    IMAGE = "image"
    # the provider lists its own hypervisor hosts, datastores and port groups (a vCenter): they
    # become hosts (each an executor host), storages and wires, instead of one host per zone
    HOSTS = "hosts"
    # ``fetch_partition_page`` of different kinds and partitions (an AWS account's regions) may run
    # at once, each in its own thread: the sync lists them side by side while it applies
    PARALLEL_LISTING = "parallel_listing"


class CloudStatus(str, enum.Enum):
    """Canonical statuses of synced cloud objects (servers use GuestStatus via ``Guest``)."""

    AVAILABLE = "available"
    CREATING = "creating"
    DELETING = "deleting"
    IN_USE = "in_use"
    ERROR = "error"
    UNKNOWN = "unknown"


def map_status(status_map: Mapping[str, Any], native: str | None, unknown: Any) -> Any:
    """A provider status through its map; ``unknown`` for anything unmapped (never KeyError)."""
    return status_map.get(str(native or "").lower(), unknown)


@dataclass(frozen=True)
class CloudRegion:
    external_id: str
    name: str
    status: CloudStatus = CloudStatus.AVAILABLE
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CloudZone:
    external_id: str
    name: str
    region_id: str  # external id of its region
    status: CloudStatus = CloudStatus.AVAILABLE
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CloudVpc:
    external_id: str
    name: str
    region_id: str
    cidr_block: str = ""
    is_default: bool = False
    status: CloudStatus = CloudStatus.AVAILABLE
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CloudNetwork:
    """A subnet: addresses ``ip_start..ip_end`` of ``cidr`` usable by guests, in one zone of a VPC."""

    external_id: str
    name: str
    vpc_id: str
    zone_id: str
    cidr: str
    ip_start: str
    ip_end: str
    gateway: str = ""
    status: CloudStatus = CloudStatus.AVAILABLE
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CloudSecgroupRule:
    direction: str  # in | out
    protocol: str  # any | tcp | udp | icmp
    ports: str = ""  # "" (all), "22", "1000-2000"
    cidr: str = ""
    action: str = "allow"
    priority: int = 1
    description: str = ""
    peer: str = ""  # SecgroupSpec.id of the group whose members are the other end ("" : ``cidr``)


@dataclass(frozen=True)
class CloudSecgroup:
    external_id: str
    name: str
    vpc_id: str = ""
    description: str = ""
    rules: tuple[CloudSecgroupRule, ...] = ()
    # the id of the security group here it is the cloud's copy of (pushed by ``SecgroupPushing``):
    # the sync keeps it as that group, never as a group of its own
    secgroup_id: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class SecgroupSpec:
    """A security group here as a cloud is to enforce it: ``rules`` in order (``peer`` on a rule is
    the id of another group of the same push, whose members are the source/destination)."""

    id: str
    name: str
    rules: tuple[CloudSecgroupRule, ...] = ()
    external_id: str = ""  # a group synced from this very cloud: used as it is there (rules untouched)


@runtime_checkable
class SecgroupPushing(Protocol):
    """A hosted driver of a cloud zone that writes security groups into the cloud (capability
    ``ProviderCapability.SECGROUP_PUSH``). The executor calls it whenever what the zone's host
    enforces changes (``hosts.secgroup_version``), with every group its servers are in (and the
    groups their rules name as peers). Idempotent."""

    def push_secgroups(self, groups: Sequence[SecgroupSpec], servers: Mapping[str, Sequence[str]]) -> Sequence[str]:
        """``servers``: server id -> the ids of its groups, in order. Returns the servers whose
        instance the cloud does not have (yet): the executor pushes again while they deploy."""
        ...


@dataclass(frozen=True)
class CloudInstance:
    """An instance: ``status`` through the provider's STATUS_MAP (GuestStatus.UNKNOWN if unmapped);
    ``server_id`` is the id of the server row that created it (a tag we set), "" for others."""

    external_id: str
    name: str
    zone_id: str
    status: GuestStatus
    vcpu: int = 0
    memory_mb: int = 0
    instance_type: str = ""
    image_id: str = ""
    private_ips: tuple[tuple[str, str], ...] = ()  # (subnet external id, address)
    public_ip: str = ""
    secgroup_ids: tuple[str, ...] = ()
    server_id: str = ""
    os_type: str = ""
    host_id: str = ""  # external id of its CloudHost (providers with HOSTS); else the zone's host
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CloudDisk:
    external_id: str
    name: str
    zone_id: str
    size_mb: int
    status: CloudStatus
    disk_type: str = "data"  # sys | data
    storage_type: str = ""
    instance_id: str = ""
    device: str = ""
    storage_id: str = ""  # external id of its CloudStorage (providers with HOSTS); else the zone's storage
    disk_id: str = ""  # the id of the disk row it was made for here (a tag we set), "" for others
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CloudWire:
    """A layer-2 network of a provider with HOSTS (a vCenter port group); ``bridge`` is the name
    its hosts know it by (a VM's NIC is put on it)."""

    external_id: str
    name: str
    zone_id: str
    vpc_id: str
    bridge: str = ""
    vlan_id: int = 1
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CloudStorage:
    """A datastore of a provider with HOSTS; ``capacity_mb`` its size."""

    external_id: str
    name: str
    zone_id: str
    capacity_mb: int
    free_mb: int = 0
    storage_type: str = ""
    status: CloudStatus = CloudStatus.AVAILABLE
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CloudHost:
    """A hypervisor host of a provider with HOSTS (an ESXi host): an executor host here, with its
    capacity, the storages it mounts and the wires it reaches (external ids)."""

    external_id: str
    name: str
    zone_id: str
    cpu_count: int
    mem_mb: int
    status: CloudStatus = CloudStatus.AVAILABLE  # anything else: the host is offline
    enabled: bool = True  # False: in maintenance
    cpu_mhz: int = 0
    cpu_desc: str = ""
    version: str = ""
    storage_ids: tuple[str, ...] = ()
    wire_ids: tuple[str, ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CloudEip:
    external_id: str
    name: str
    ip_addr: str
    region_id: str = ""
    instance_id: str = ""
    status: CloudStatus = CloudStatus.AVAILABLE
    eip_id: str = ""  # the id of the eip row it was allocated for here (a tag we set), "" for others
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class CloudImage:
    external_id: str
    name: str
    size_mb: int = 0
    os_type: str = ""
    status: CloudStatus = CloudStatus.AVAILABLE
    is_public: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Page:
    """One page of a listing; ``next_token`` "" when this was the last page."""

    items: tuple[Any, ...]
    next_token: str = ""
    # objects the cloud has but could not be read (external id, reason): kept as they are here,
    # neither updated nor deleted; an id also covers the ids under it ("vm-42" covers "vm-42/2000")
    unreadable: tuple[tuple[str, str], ...] = ()


# the kinds a provider lists, in the order the sync walks them (parents before children)
CLOUD_KINDS = ("cloudregions", "zones", "vpcs", "wires", "storages", "hosts", "networks", "secgroups",
               "cachedimages", "servers", "disks", "eips")
# kinds only a provider with ProviderCapability.HOSTS lists (the others get one host per zone)
HOST_KINDS = ("wires", "storages", "hosts")


@runtime_checkable
class CloudProvider(Protocol):
    """One cloud account's API, as the controller's sync sees it.

    Made by the driver class's ``for_account(config)`` where ``config`` is the decrypted account
    (``access_url``, ``account``, ``secret``, ``options``). ``fetch_page(kind, page_token)`` returns a
    ``Page`` of the value objects above for each kind in ``CLOUD_KINDS`` the provider has (an
    empty page for one it has not); ``validate`` checks the credentials (``ProviderAuthError``).
    """

    name: str
    capabilities: frozenset[ProviderCapability]

    def validate(self) -> dict[str, Any]:
        """Call the cloud once to prove the credentials work; facts about the account."""
        ...

    def fetch_page(self, kind: str, page_token: str = "") -> Page: ...

    def close(self) -> None: ...


@runtime_checkable
class PartitionedListing(Protocol):
    """What a provider with ``ProviderCapability.PARALLEL_LISTING`` also has: each kind's listing
    split into independent partitions (AWS: one per region), each paged on its own (``next_token``
    "" at the end of that partition). Thread-safe across kinds and partitions."""

    def partitions(self, kind: str) -> tuple[str, ...]: ...

    def fetch_partition_page(self, kind: str, partition: str, page_token: str = "") -> Page: ...


@runtime_checkable
class EipProvider(Protocol):
    """What a provider with ``ProviderCapability.EIP`` also has (region: the region's external id).
    Each call is idempotent: a retried allocate finds the address tagged with ``eip_id``, a
    retried associate or dissociate of what is already so does nothing."""

    def allocate_eip(self, region: str, name: str, eip_id: str, bandwidth: int = 0) -> CloudEip: ...

    def associate_eip(self, region: str, eip_external_id: str, instance_external_id: str) -> CloudEip: ...

    def dissociate_eip(self, region: str, eip_external_id: str) -> None: ...

    def release_eip(self, region: str, eip_external_id: str) -> bool: ...


# --- machines behind a BMC (bare metal), Ironic-style composed interfaces --------------------------
#
# A bare-metal driver composes a power interface, a management interface (boot device), an
# inventory/sensor interface and (where the BMC has it) a serial-over-LAN console, each implemented
# per protocol (IPMI, Redfish). ``validate()`` checks the configuration without contacting the BMC;
# every call that does is bounded (timeouts, a few retries) and fails with a ``BmcError`` whose
# message says what to do.


class BmcError(DriverError):
    """The BMC could not do what was asked. ``status`` classifies it for the host row's
    ``ipmi_status``: ``unreachable`` (no answer), ``auth_failed`` (credentials refused),
    ``timeout`` (it answered, then stopped), ``error`` (it refused the command)."""

    STATUSES = ("unreachable", "auth_failed", "timeout", "error")

    def __init__(self, message: str, status: str = "error") -> None:
        super().__init__(message)
        self.status = status if status in self.STATUSES else "error"


class PowerState(str, enum.Enum):
    ON = "on"
    OFF = "off"
    UNKNOWN = "unknown"


class BootDevice(str, enum.Enum):
    PXE = "pxe"
    DISK = "disk"
    CDROM = "cdrom"
    BIOS = "bios"


@dataclass(frozen=True)
class Sensor:
    """One sensor reading: ``health`` is ok/warning/critical/unknown."""

    name: str
    value: float | None
    unit: str
    health: str
    states: tuple[str, ...] = ()


@dataclass(frozen=True)
class MachineInventory:
    """What the BMC says the machine is (fields it does not report stay 0/empty)."""

    manufacturer: str = ""
    model: str = ""
    serial: str = ""
    uuid: str = ""
    cpu_count: int = 0
    memory_mb: int = 0
    nic_macs: tuple[str, ...] = ()
    disks: tuple[str, ...] = ()
    firmware: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class Management(Protocol):
    """Power, boot device, inventory and sensors of one machine through its BMC."""

    protocol: str  # "ipmi" | "redfish"
    address: str  # what an error names: "127.0.0.1:6230", "http://127.0.0.1:8001"

    def validate(self) -> None: ...

    def info(self) -> dict[str, Any]:
        """The BMC's protocol, address and user: what may be shown (never the password)."""
        ...

    def get_power_state(self) -> PowerState: ...

    def set_power_state(self, action: str) -> PowerState:
        """``on`` / ``off`` (hard) / ``soft`` (ACPI shutdown) / ``reset``; the state it reads back."""
        ...

    def set_boot_device(self, device: BootDevice, *, persistent: bool = False) -> None: ...

    def get_boot_device(self) -> str: ...

    def inventory(self) -> MachineInventory: ...

    def sensors(self) -> list[Sensor]: ...

    def health(self) -> str:
        """ok / warning / critical / unknown."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class PxeJob(Protocol):
    """One machine's turn on the boot network: its DHCP answer and deploy ramdisk are staged until
    ``close``; ``wait`` returns what the ramdisk reported (raises ``HypervisorError`` with its
    reason when it failed or said nothing in time)."""

    def wait(self, timeout_s: float, total_s: float | None = None) -> dict[str, Any]:
        """``total_s``: the whole time given to the machine, for the error (when waited in parts)."""
        ...

    def reported(self, timeout_s: float) -> bool:
        """Whether the ramdisk has reported, waiting up to ``timeout_s`` for it."""
        ...

    def close(self) -> None: ...


@runtime_checkable
class PxeBoot(Protocol):
    """The boot network (DHCP, TFTP, HTTP) a bare-metal driver deploys through: the controller
    runs it; the driver powers the machine and waits for the job.

    ``action``: ``deploy`` (write ``image``, a raw file, to the machine's first disk) or ``wipe``
    (erase its partition tables)."""

    def stage(self, mac: str, action: str, image: LocalImage | None = None) -> PxeJob: ...


_IMPORTED_NS = _uuid.UUID("6f1c9a52-3b0e-4c57-9d7e-0c3c1f5a9b21")


def imported_server_id(manager_id: str, external_id: str) -> str:
    """The id the sync gives the server row of a cloud instance it did not create: stable, so the
    zone's hosted driver finds the instance of a server id without state kept anywhere."""
    return str(_uuid.uuid5(_IMPORTED_NS, f"{manager_id}:{external_id}"))
@runtime_checkable
class Snapshottable(Protocol):
    """A hosted driver that keeps point-in-time snapshots of a guest's disks (``Capability.SNAPSHOT``).

    A snapshot is named by the region's snapshot id and kept with its disk (it moves with it).
    ``create_snapshot`` works on a stopped or running guest and returns the disk's virtual size
    (MiB); ``reset_disk`` needs the guest stopped; all three are idempotent (a redelivered item
    finds its work done: create sees the snapshot, delete sees it gone).
    """

    def create_snapshot(self, server_id: str, disk: InstanceDisk, snapshot_id: str) -> int: ...

    def delete_snapshot(self, server_id: str, disk: InstanceDisk, snapshot_id: str) -> bool: ...

    def reset_disk(self, server_id: str, disk: InstanceDisk, snapshot_id: str) -> None: ...

    def create_instance_snapshot(self, server_id: str, disks: Sequence[tuple[InstanceDisk, str]]) -> list[int]:
        """Snapshot every (disk, snapshot id) of the guest at one instant (a running guest: atomically
        across its disks); each disk's virtual size (MiB). Idempotent as ``create_snapshot``."""
        ...


@runtime_checkable
class ImageUpload(Protocol):
    """A host's way into the controller's image service (``HostEnv.exchange`` may provide it): the
    file streams into the queued image through glance's intake checks; glance's answer
    (``{"id", "status", "size", "disk_format"}``) is returned, an intake refusal raised."""

    def upload_image(self, image_id: str, path: str) -> Mapping[str, Any]: ...


@runtime_checkable
class ImageSaver(Protocol):
    """A hosted driver that saves a stopped guest's disk as an image (``Capability.SAVE_IMAGE``):
    the disk flattened (no backing file, no snapshots) and uploaded with ``ImageUpload``; glance's answer."""

    def save_image(self, server_id: str, disk: InstanceDisk, image_id: str) -> Mapping[str, Any]: ...


@runtime_checkable
class DiskResizable(Protocol):
    """A hosted driver that grows a guest's disk (``Capability.DISK_RESIZE``): never shrinks; online
    (the running guest told, e.g. libvirt blockResize) where it can; (new size MiB, whether online)."""

    def resize_disk(self, server_id: str, disk: InstanceDisk, size_mb: int) -> tuple[int, bool]: ...


@runtime_checkable
class Probing(Protocol):
    """A hosted driver of a machine behind a BMC (``bmc``): ``probe()`` contacts it and returns
    what the host row records (``ipmi_status``, ``power_status``, ``health``); a ``BmcError`` else.
    The controller probes such hosts periodically, each independently of the others."""

    bmc: Management

    def probe(self) -> dict[str, Any]: ...


@runtime_checkable
class NicChangeable(Protocol):
    """A hosted driver that adds and removes a guest's NICs (``Capability.ATTACH_NIC``; hot-plugged into
    a running guest where ``ATTACH_NIC_HOT`` is declared, else in the definition for its next boot).
    Both return whether the running guest was changed; both are idempotent (matched by MAC)."""

    def attach_nic(self, server_id: str, nic: InstanceNic) -> bool: ...

    def detach_nic(self, server_id: str, nic: InstanceNic) -> bool: ...
