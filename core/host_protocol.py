"""The host contract: what the region asks of a host (agent or in-controller executor) and what it answers.

Importable without the database (the agent daemon imports it; so do region tasks). One enum of
work kinds, one pydantic model per payload and per result, one guest-status vocabulary and the
ONE translation of guest status to server status::

    payload = DeployPayload(server=..., nics=[...], disks=[...])     # region task builds it
    wi = run.dispatch(host_id, WorkKind.DEPLOY, payload, then=...)   # stored as JSON
    p = parse_payload(WorkKind.DEPLOY, wi["payload"])                 # agent/executor parses it
    r = parse_result(WorkKind.DEPLOY, report_body)                    # region parses the answer
    server.status = server_status(r.guest_status)                     # the one translation

A kind nobody handles is a test failure (tests/unit/hostapi), not a runtime surprise; a payload
or result that does not parse is a recorded task failure with a reason.
"""
from __future__ import annotations

import enum
import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from drivers.base import Capability, GuestStatus

_UUID = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$"
_MAC = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")


def _mac(v: str) -> str:
    if not _MAC.match(v):
        raise ValueError(f"bad MAC {v!r}")
    return v.lower()


Mac = Annotated[str, AfterValidator(_mac)]  # aa:bb:cc:dd:ee:ff, kept in lower case


class WorkKind(str, enum.Enum):
    """Every kind of work item. The string is what goes over the wire (Cloudpods-like names)."""

    DEPLOY = "guest-deploy"
    DELETE = "guest-delete"
    START = "guest-start"
    STOP = "guest-stop"
    RESTART = "guest-restart"
    RESET = "guest-reset"
    SUSPEND = "guest-suspend"
    RESUME = "guest-resume"
    STATUS = "guest-status"
    RECONFIGURE = "guest-change-config"
    ATTACH_DISK = "guest-attach-disk"
    DETACH_DISK = "guest-detach-disk"
    REBUILD_ROOT = "guest-rebuild-root"
    MIGRATE_OUT = "guest-migrate-out"  # source host: stop, hand the disks over (export)
    MIGRATE_IN = "guest-migrate-in"  # target host: take the disks, define the guest
    MIGRATE_CLEANUP = "guest-migrate-cleanup"  # source host: forget the guest that moved away
    LIVE_MIGRATE_PREPARE = "guest-live-migrate-prepare"  # target host: disks, leases, the guest's definition
    LIVE_MIGRATE = "guest-live-migrate"  # source host: live migration to the prepared target
    SNAPSHOT_CREATE = "disk-snapshot-create"  # a point-in-time copy of one disk, kept with it
    SNAPSHOT_DELETE = "disk-snapshot-delete"
    INSTANCE_SNAPSHOT_CREATE = "guest-snapshot-create"  # every disk of a guest at one instant (one item)
    RESET_PASSWORD = "guest-reset-password"  # a new login password, set at the guest's next boot
    DISK_RESET = "disk-reset"  # roll a disk back to one of its snapshots (guest stopped)
    SAVE_IMAGE = "guest-save-image"  # one disk of a stopped guest, flattened, into a queued glance image
    DISK_RESIZE = "disk-resize"  # grow a disk (online when the guest runs and the host can)
    DISK_DELETE = "disk-delete"  # a detached disk's file removed from the host (the disk is deleted)
    ATTACH_NIC = "guest-attach-nic"  # a NIC on another network (hot when the guest runs and the host can)
    DETACH_NIC = "guest-detach-nic"
    CDROM = "guest-cdrom"  # an ISO into the guest's CD-ROM drive, or ejected (a media change when it runs)
    BOOT_ORDER = "guest-boot-order"  # the stopped guest's boot devices in order


# What a host must declare to be sent a kind. Kinds absent here need nothing beyond a driver.
KIND_CAPABILITY: dict[WorkKind, Capability] = {
    WorkKind.RESTART: Capability.REBOOT,
    WorkKind.RESET: Capability.RESET,
    WorkKind.SUSPEND: Capability.SUSPEND,
    WorkKind.RESUME: Capability.SUSPEND,
    WorkKind.RECONFIGURE: Capability.CHANGE_CONFIG,
    WorkKind.ATTACH_DISK: Capability.ATTACH_DISK,
    WorkKind.DETACH_DISK: Capability.ATTACH_DISK,
    WorkKind.REBUILD_ROOT: Capability.REBUILD_ROOT,
    WorkKind.MIGRATE_OUT: Capability.COLD_MIGRATE,
    WorkKind.MIGRATE_IN: Capability.COLD_MIGRATE,
    WorkKind.MIGRATE_CLEANUP: Capability.COLD_MIGRATE,
    WorkKind.LIVE_MIGRATE_PREPARE: Capability.LIVE_MIGRATE,
    WorkKind.LIVE_MIGRATE: Capability.LIVE_MIGRATE,
    WorkKind.SNAPSHOT_CREATE: Capability.SNAPSHOT,
    WorkKind.SNAPSHOT_DELETE: Capability.SNAPSHOT,
    WorkKind.INSTANCE_SNAPSHOT_CREATE: Capability.SNAPSHOT,
    WorkKind.RESET_PASSWORD: Capability.CONFIG_DRIVE,
    WorkKind.DISK_RESET: Capability.SNAPSHOT,
    WorkKind.SAVE_IMAGE: Capability.SAVE_IMAGE,
    WorkKind.DISK_RESIZE: Capability.DISK_RESIZE,
    WorkKind.ATTACH_NIC: Capability.ATTACH_NIC,
    WorkKind.DETACH_NIC: Capability.ATTACH_NIC,
    WorkKind.CDROM: Capability.CDROM,
    WorkKind.BOOT_ORDER: Capability.CDROM,
}

# server actions of the API -> the capability the server's host must declare (400 before a task)
ACTION_CAPABILITY: dict[str, Capability] = {
    "restart": Capability.REBOOT,
    "reset": Capability.RESET,
    "suspend": Capability.SUSPEND,
    "resume": Capability.SUSPEND,
    "change-config": Capability.CHANGE_CONFIG,
    "attachdisk": Capability.ATTACH_DISK,
    "detachdisk": Capability.ATTACH_DISK,
    "rebuild-root": Capability.REBUILD_ROOT,
    "migrate": Capability.COLD_MIGRATE,
    "live-migrate": Capability.LIVE_MIGRATE,
    "create-snapshot": Capability.SNAPSHOT,  # a disk's snapshots need its server's host (drivers' snapshot)
    "disk-reset": Capability.SNAPSHOT,
    "instance-snapshot": Capability.SNAPSHOT,  # instance-snapshot-create: all disks of a server
    "reset-password": Capability.CONFIG_DRIVE,  # server-reset-password: the drive rewritten (+ guest_agent: running)
    "save-image": Capability.SAVE_IMAGE,  # server-save-image and disk-save
    "resize": Capability.DISK_RESIZE,  # disk-resize
    "attachnetwork": Capability.ATTACH_NIC,  # running guest: attach_nic_hot (core.region.managers.servers)
    "detachnetwork": Capability.ATTACH_NIC,
    "change-ipaddr": Capability.ATTACH_NIC,  # the stopped guest's NIC re-leased (attach_nic, same MAC)
    "insertiso": Capability.CDROM,  # running guest: cdrom_hot (core.region.managers.servers)
    "ejectiso": Capability.CDROM,
    "set-boot-index": Capability.CDROM,
}


# --- guest status: one vocabulary, one translation ------------------------------------------------

class GuestState(str, enum.Enum):
    """What a host says about a guest: the driver's canonical statuses, plus ``absent``."""

    RUNNING = "running"
    STOPPED = "stopped"
    PAUSED = "paused"
    SUSPENDED = "suspended"
    SHUTTING_DOWN = "shutting_down"
    CRASHED = "crashed"
    UNKNOWN = "unknown"
    ABSENT = "absent"  # no such guest on the host


def guest_state(status: GuestStatus) -> GuestState:
    return GuestState(status.value)


# guest state -> the server status it means; None: in passing, says nothing settled
_SERVER_STATUS: dict[GuestState, str | None] = {
    GuestState.RUNNING: "running",
    GuestState.STOPPED: "ready",
    GuestState.CRASHED: "ready",
    GuestState.PAUSED: "suspend",
    GuestState.SUSPENDED: "suspend",
    GuestState.SHUTTING_DOWN: None,
    GuestState.UNKNOWN: "unknown",
    GuestState.ABSENT: "unknown",
}
POWER_STATUS = {"running": "on", "ready": "off", "suspend": "suspend"}


def server_status(state: GuestState | str) -> str | None:
    """THE translation of a host's guest state into the server status the region keeps."""
    return _SERVER_STATUS[GuestState(state)]


# --- payloads ------------------------------------------------------------------------------------

class _Model(BaseModel):
    # payloads are ours: an unknown key is a bug of one side; results may carry extras (forward compat)
    model_config = ConfigDict(extra="forbid")


class ServerRef(_Model):
    id: str = Field(pattern=_UUID)
    name: str = Field(default="", max_length=255)


class ServerSpec(ServerRef):
    vcpu_count: int = Field(ge=1, le=512)
    vmem_size: int = Field(ge=16, le=16 * 1024 * 1024)  # MB
    hypervisor: str = "kvm"
    os_type: str = ""
    os_arch: str = ""
    auto_start: bool = False
    user_data: str = ""
    public_key: str | None = None
    password: str | None = None


class NicPayload(_Model):
    index: int = Field(ge=0, le=63)
    ifname: str = ""
    ip: str
    mac: Mac
    mask: int = Field(ge=0, le=32)
    gateway: str = ""
    dns: str = ""
    vlan_id: int = Field(default=1, ge=0, le=4095)
    network_id: str = ""
    wire_id: str = ""
    bridge: str = ""
    mtu: int = Field(default=1500, ge=0, le=65535)


class SnapshotSource(_Model):
    """Where a new disk's first contents come from: snapshot ``snapshot_id`` kept inside the file of
    disk ``disk_id`` (index ``index``, at ``access_path`` when the region knows it) of guest ``server_id``
    on the same host (a clone of an instance snapshot)."""

    server_id: str = Field(pattern=_UUID)
    disk_id: str
    index: int = Field(ge=0, le=63)
    access_path: str = ""
    snapshot_id: str = Field(pattern=_UUID)


class DiskPayload(_Model):
    id: str
    index: int = Field(ge=0, le=63)
    size: int = Field(ge=0)  # MB
    format: str = "qcow2"
    disk_type: str = "data"
    image_id: str | None = None
    storage_id: str = ""
    storage_type: str = ""
    mount_point: str = ""
    access_path: str = ""
    snapshot_source: SnapshotSource | None = None  # made from a snapshot of another disk (clone)


class GuestPayload(_Model):
    """A whole guest: deploy, rebuild-root, migrate-in all describe the guest this way."""

    server: ServerSpec
    nics: list[NicPayload] = Field(default_factory=list, max_length=64)
    disks: list[DiskPayload] = Field(default_factory=list, max_length=64)
    cdrom_image_id: str | None = None  # an ISO image in the CD-ROM drive
    # boot devices, first first: "disk<index>" / "cdrom" (server-set-boot-index); empty: the disks in order
    boot_order: list[str] = Field(default_factory=list, max_length=65)

    @field_validator("boot_order")
    @classmethod
    def _devices(cls, v: list[str]) -> list[str]:
        for dev in v:
            if not re.fullmatch(r"cdrom|disk[0-9]{1,2}", dev):
                raise ValueError(f"boot device {dev!r}: disk<index> or cdrom")
        if len(set(v)) != len(v):
            raise ValueError("a boot device named twice")
        return v


class DeployPayload(GuestPayload):
    pass


class DeletePayload(_Model):
    server: ServerRef
    disks: list[str] = Field(default_factory=list)
    # data disks the region keeps (auto_delete off): their files must survive the guest, moved out
    # of the instance dir; the result says where they are now
    keep: list[DiskPayload] = Field(default_factory=list, max_length=64)


class PowerPayload(_Model):
    server: ServerRef


class StopPayload(PowerPayload):
    is_force: bool = False
    timeout_secs: int = Field(default=30, ge=0, le=3600)


class ReconfigurePayload(_Model):
    server: ServerRef
    vcpu_count: int = Field(ge=1, le=512)
    vmem_size: int = Field(ge=16, le=16 * 1024 * 1024)


class AttachDiskPayload(_Model):
    server: ServerRef
    disk: DiskPayload


class DetachDiskPayload(_Model):
    server: ServerRef
    disk: DiskPayload
    keep_disk: bool = True


class RebuildRootPayload(GuestPayload):
    pass


class CdromPayload(_Model):
    """ISO image ``image_id`` into ``server``'s CD-ROM drive; None: eject."""

    server: ServerRef
    image_id: str | None = None


class BootOrderPayload(GuestPayload):
    """The whole guest (its disks' files) with the new ``boot_order``."""


class ResetPasswordPayload(GuestPayload):
    """The whole guest (its config drive is rebuilt from it) with the new ``server.password``."""


class MigrateOutPayload(_Model):
    """To the source host: stop the guest and make its disks available to ``target_host_id``."""

    server: ServerRef
    target_host_id: str
    disks: list[DiskPayload] = Field(default_factory=list, max_length=64)


class MigratedDisk(_Model):
    """One disk the source uploaded to the controller for the target to download."""

    id: str
    index: int = Field(ge=0, le=63)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=0)  # bytes of the file
    format: str = Field(pattern=r"^(qcow2|raw)$")
    backing_image_id: str | None = None  # a qcow2 overlay on this image (the target rebases onto its cache)


class MigrationSource(_Model):
    """What migrate-out handed over: the disks staged on the controller."""

    disks: list[MigratedDisk] = Field(default_factory=list, max_length=64)


class MigrateInPayload(GuestPayload):
    """To the target host: fetch the disks the source exported, define the guest (stopped)."""

    source_host_id: str
    source: MigrationSource = Field(default_factory=MigrationSource)  # what migrate-out reported


class MigrateCleanupPayload(_Model):
    server: ServerRef


class LiveMigratePreparePayload(GuestPayload):
    """To the target host: make the running guest's disks (empty, same sizes and backing images),
    DHCP leases and config drive here, and say how the source reaches this host."""

    source_host_id: str


class LiveMigratePayload(_Model):
    """To the source host: migrate the running guest live to the target that was prepared."""

    server: ServerRef
    target_host_id: str
    target: dict[str, Any] = Field(default_factory=dict)  # what the target's prepare returned (driver's own)
    disks: list[DiskPayload] = Field(default_factory=list, max_length=64)  # the guest's disks on the source


class SnapshotPayload(_Model):
    """A snapshot of ``disk`` (attached to ``server``) named by the snapshot's id."""

    server: ServerRef
    disk: DiskPayload
    snapshot_id: str = Field(pattern=_UUID)


class DiskResetPayload(SnapshotPayload):
    pass


class InstanceSnapshotPayload(_Model):
    """Snapshots of all ``disks`` of ``server`` taken at one instant, ``snapshot_ids[i]`` naming the
    snapshot of ``disks[i]`` (a running guest: one atomic transaction across its disks)."""

    server: ServerRef
    disks: list[DiskPayload] = Field(min_length=1, max_length=64)
    snapshot_ids: list[str] = Field(min_length=1, max_length=64)

    @field_validator("snapshot_ids")
    @classmethod
    def _ids(cls, v: list[str]) -> list[str]:
        for i in v:
            if not re.match(_UUID, i):
                raise ValueError(f"bad snapshot id {i!r}")
        return v

    @model_validator(mode="after")
    def _paired(self) -> InstanceSnapshotPayload:
        if len(self.disks) != len(self.snapshot_ids):
            raise ValueError("one snapshot id per disk")
        return self


class DiskDeletePayload(_Model):
    """A disk no server has any more, deleted: its file on this host goes."""

    disk: DiskPayload


class SaveImagePayload(_Model):
    """Upload disk ``disks[0]`` of the stopped ``server``, flattened, into the queued image ``image_id``
    (through the controller's agent route into glance's intake). A list, as in migrate-out: the
    upload route checks the disk against the dispatched item the same way."""

    server: ServerRef
    disks: list[DiskPayload] = Field(min_length=1, max_length=1)
    image_id: str = Field(pattern=_UUID)


class NicChangePayload(_Model):
    """Attach (or detach) one NIC of ``server``; the region allocated (or holds) its address."""

    server: ServerRef
    nic: NicPayload


class DiskResizePayload(_Model):
    server: ServerRef
    disk: DiskPayload
    size: int = Field(ge=1)  # MB, the new (larger) size


# --- results -------------------------------------------------------------------------------------

class _Result(BaseModel):
    model_config = ConfigDict(extra="allow")


class GuestResult(_Result):
    """Every guest-touching result says what state the guest is in afterwards."""

    guest_status: GuestState


class ResetPasswordResult(GuestResult):
    live: bool = False  # a running guest took it now (the guest agent); else it is set at the next boot


class CdromResult(GuestResult):
    live: bool = False  # the running guest saw a media change (else: the definition, a stopped guest)


class DiskOut(_Result):
    id: str
    access_path: str = ""


class DeployResult(GuestResult):
    guest_id: str = ""
    disks: list[DiskOut] = Field(default_factory=list)


class DeleteResult(_Result):
    deleted: bool
    kept: list[DiskOut] = Field(default_factory=list)  # where the kept disks' files are now


class StatusResult(GuestResult):
    reason: str = ""


class ReconfigureResult(GuestResult):
    vcpu_count: int
    vmem_size: int


class AttachDiskResult(GuestResult):
    disk: DiskOut
    hot: bool = False


class DetachDiskResult(GuestResult):
    disk_id: str
    hot: bool = False


class MigrateOutResult(GuestResult):
    source: MigrationSource = Field(default_factory=MigrationSource)


class LiveMigratePrepared(_Result):
    """The target is ready: where the guest's disks will be, and the driver's hand-over (URIs, definition)."""

    disks: list[DiskOut] = Field(default_factory=list)
    target: dict[str, Any] = Field(default_factory=dict)


class MigrateCleanupResult(_Result):
    deleted: bool


class SnapshotResult(GuestResult):
    snapshot_id: str
    size: int = Field(default=0, ge=0)  # MB: the disk's virtual size when it was taken


class InstanceSnapshotResult(GuestResult):
    sizes: list[int] = Field(default_factory=list)  # MB: each disk's virtual size, in the payload's order


class SaveImageResult(GuestResult):
    image_id: str
    image_status: str  # glance's status after its intake: active, or why not
    size: int = Field(default=0, ge=0)  # bytes of the uploaded file


class NicChangeResult(GuestResult):
    mac: str
    hot: bool = False  # the running guest got (or lost) it now, not at its next boot


class DiskResizeResult(GuestResult):
    size: int = Field(ge=0)  # MB the disk has now
    online: bool = False  # the running guest was told (it sees the new size without a reboot)


class DiskDeleteResult(_Result):
    deleted: bool  # False: no file of that disk on this host (never made, or already gone)


class SnapshotDeleteResult(_Result):
    deleted: bool  # False: the disk had no such snapshot (already deleted)


class ErrorResult(BaseModel):
    """A failed work item, in Cloudpods' convention."""

    model_config = ConfigDict(populate_by_name=True, extra="allow")
    status: str = Field(alias="__status__", pattern=r"^(error|failed|fail)$")
    reason: str = Field(default="the host reported a failure", alias="__reason__", max_length=4000)


PAYLOADS: dict[WorkKind, type[BaseModel]] = {
    WorkKind.DEPLOY: DeployPayload,
    WorkKind.DELETE: DeletePayload,
    WorkKind.START: PowerPayload,
    WorkKind.STOP: StopPayload,
    WorkKind.RESTART: PowerPayload,
    WorkKind.RESET: PowerPayload,
    WorkKind.SUSPEND: PowerPayload,
    WorkKind.RESUME: PowerPayload,
    WorkKind.STATUS: PowerPayload,
    WorkKind.RECONFIGURE: ReconfigurePayload,
    WorkKind.ATTACH_DISK: AttachDiskPayload,
    WorkKind.DETACH_DISK: DetachDiskPayload,
    WorkKind.REBUILD_ROOT: RebuildRootPayload,
    WorkKind.MIGRATE_OUT: MigrateOutPayload,
    WorkKind.MIGRATE_IN: MigrateInPayload,
    WorkKind.MIGRATE_CLEANUP: MigrateCleanupPayload,
    WorkKind.LIVE_MIGRATE_PREPARE: LiveMigratePreparePayload,
    WorkKind.LIVE_MIGRATE: LiveMigratePayload,
    WorkKind.SNAPSHOT_CREATE: SnapshotPayload,
    WorkKind.SNAPSHOT_DELETE: SnapshotPayload,
    WorkKind.INSTANCE_SNAPSHOT_CREATE: InstanceSnapshotPayload,
    WorkKind.RESET_PASSWORD: ResetPasswordPayload,
    WorkKind.CDROM: CdromPayload,
    WorkKind.BOOT_ORDER: BootOrderPayload,
    WorkKind.DISK_RESET: DiskResetPayload,
    WorkKind.SAVE_IMAGE: SaveImagePayload,
    WorkKind.DISK_RESIZE: DiskResizePayload,
    WorkKind.DISK_DELETE: DiskDeletePayload,
    WorkKind.ATTACH_NIC: NicChangePayload,
    WorkKind.DETACH_NIC: NicChangePayload,
}

RESULTS: dict[WorkKind, type[BaseModel]] = {
    WorkKind.DEPLOY: DeployResult,
    WorkKind.DELETE: DeleteResult,
    WorkKind.START: GuestResult,
    WorkKind.STOP: GuestResult,
    WorkKind.RESTART: GuestResult,
    WorkKind.RESET: GuestResult,
    WorkKind.SUSPEND: GuestResult,
    WorkKind.RESUME: GuestResult,
    WorkKind.STATUS: StatusResult,
    WorkKind.RECONFIGURE: ReconfigureResult,
    WorkKind.ATTACH_DISK: AttachDiskResult,
    WorkKind.DETACH_DISK: DetachDiskResult,
    WorkKind.REBUILD_ROOT: DeployResult,
    WorkKind.MIGRATE_OUT: MigrateOutResult,
    WorkKind.MIGRATE_IN: DeployResult,
    WorkKind.MIGRATE_CLEANUP: MigrateCleanupResult,
    WorkKind.LIVE_MIGRATE_PREPARE: LiveMigratePrepared,
    WorkKind.LIVE_MIGRATE: GuestResult,
    WorkKind.SNAPSHOT_CREATE: SnapshotResult,
    WorkKind.SNAPSHOT_DELETE: SnapshotDeleteResult,
    WorkKind.INSTANCE_SNAPSHOT_CREATE: InstanceSnapshotResult,
    WorkKind.RESET_PASSWORD: ResetPasswordResult,
    WorkKind.CDROM: CdromResult,
    WorkKind.BOOT_ORDER: GuestResult,
    WorkKind.DISK_RESET: GuestResult,
    WorkKind.SAVE_IMAGE: SaveImageResult,
    WorkKind.DISK_RESIZE: DiskResizeResult,
    WorkKind.DISK_DELETE: DiskDeleteResult,
    WorkKind.ATTACH_NIC: NicChangeResult,
    WorkKind.DETACH_NIC: NicChangeResult,
}


class ContractError(ValueError):
    """A payload or result that does not follow the contract (the message names the field)."""


def _explain(kind: WorkKind, what: str, exc: ValidationError) -> ContractError:
    errs = exc.errors()[:3]
    parts = [f"{'.'.join(str(x) for x in e.get('loc', ())) or '(body)'}: {e.get('msg', '')}" for e in errs]
    return ContractError(f"malformed {kind.value} {what}: {'; '.join(parts)}")


def work_kind(kind: str) -> WorkKind:
    try:
        return WorkKind(kind)
    except ValueError:
        raise ContractError(f"unknown work kind {kind!r}") from None


def parse_payload(kind: WorkKind | str, data: Any) -> Any:
    """The typed payload of a work item (``task_id`` is added by the task engine, not part of it)."""
    k = work_kind(kind) if isinstance(kind, str) else kind
    if isinstance(data, dict):
        data = {key: v for key, v in data.items() if key != "task_id"}
    try:
        return PAYLOADS[k].model_validate(data)
    except ValidationError as exc:
        raise _explain(k, "payload", exc) from None


def parse_result(kind: WorkKind | str, data: Any) -> Any:
    """A host's answer: ``ErrorResult`` for a failure, else the kind's result model."""
    k = work_kind(kind) if isinstance(kind, str) else kind
    if not isinstance(data, dict):
        raise ContractError(f"malformed {k.value} result: expected a JSON object")
    body = {key: v for key, v in data.items() if key != "work_item_id"}
    if "__status__" in body and str(body["__status__"]).lower() in ("error", "failed", "fail"):
        try:
            return ErrorResult.model_validate({**body, "__status__": str(body["__status__"]).lower(),
                                               "__reason__": str(body.get("__reason__") or "")[:4000]
                                               or "the host reported a failure"})
        except ValidationError as exc:
            raise _explain(k, "error result", exc) from None
    try:
        return RESULTS[k].model_validate(body)
    except ValidationError as exc:
        raise _explain(k, "result", exc) from None


def dump(model: BaseModel) -> dict[str, Any]:
    """A model as the JSON a work item stores (aliases, no Nones that mean 'absent')."""
    return model.model_dump(mode="json", by_alias=True)


def error_result(reason: str) -> dict[str, Any]:
    return {"__status__": "error", "__reason__": reason[:4000]}


# --- delivery: at least once, acknowledged ---------------------------------------------------------
#
# A long poll hands items out (``dispatched``) and the agent acknowledges the ones it received
# (POST /agent/hosts/<id>/work-items/ack, a ``WorkAck``) as soon as the reply reaches it. An item not
# acknowledged within Settings.work_item_ack_s (the replica died between its commit and its reply, or
# the reply was lost) is handed out again by the host's next poll; the agent skips an id it already
# holds and re-reports one it already finished, so a redelivered item never runs twice there.

class WorkAck(_Model):
    ids: list[str] = Field(max_length=200)

    @field_validator("ids")
    @classmethod
    def _ids(cls, v: list[str]) -> list[str]:
        for i in v:
            if not re.match(_UUID, i):
                raise ValueError(f"bad work item id {i[:40]!r}")
        return v


# --- security groups: what a host enforces on its guests' ports (pulled, not a work item) ---------
#
# The region bumps hosts.secgroup_version in the transaction of every change that alters a host's
# rules; the long poll of work items returns ``secgroup_version`` early when it differs from the
# agent's, and the agent then GETs /agent/hosts/<id>/secgroups (a ``HostSecgroups``) and applies it.

_IPV4 = r"^\d{1,3}(\.\d{1,3}){3}$"
_OCTET = r"(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4_NET = re.compile(rf"^{_OCTET}(\.{_OCTET}){{3}}(/(3[0-2]|[12]?\d))?$")  # a.b.c.d[/n], no leading zeros
MAX_BW_LIMIT = 100_000  # Mbps (100 Gbit/s)


class SecRule(_Model):
    """One rule as the host applies it: ``cidrs`` empty and no ``peer`` means any address; ``peer``
    names a security group whose guests' addresses are ``HostSecgroups.peers[peer]`` (an empty
    group yields ``matches_nothing``)."""

    direction: str = Field(pattern=r"^(in|out)$")
    action: str = Field(pattern=r"^(allow|deny)$")
    protocol: str = Field(pattern=r"^(any|tcp|udp|icmp)$")
    ports: str = Field(default="", pattern=r"^(\d{1,5}(-\d{1,5})?(,\d{1,5}(-\d{1,5})?)*)?$")
    cidrs: list[str] = Field(default_factory=list, max_length=4096)
    priority: int = Field(ge=1, le=100)
    peer: str = Field(default="", pattern=r"^([0-9a-fA-F-]{36})?$")
    matches_nothing: bool = False

    @field_validator("ports")
    @classmethod
    def _ports(cls, v: str) -> str:
        for item in filter(None, v.split(",")):
            lo, _, hi = item.partition("-")
            if not int(lo) <= int(hi or lo) <= 65535:
                raise ValueError(f"bad port range {item!r}")
        return v

    @field_validator("cidrs")
    @classmethod
    def _cidrs(cls, v: list[str]) -> list[str]:
        import ipaddress

        for c in v:
            # the usual form by a regex: ipaddress costs ~100 µs each, most of validating a host's 10 000 rules
            if not _IPV4_NET.match(c) and ipaddress.ip_network(c, strict=False).version != 4:
                raise ValueError(f"{c!r} is not an IPv4 network")
        return v


class GuestPort(_Model):
    """One nic of a guest on this host, with the rules of all its security groups (in order)."""

    server_id: str = Field(pattern=_UUID)
    index: int = Field(ge=0, le=63)
    mac: Mac
    ip: str = Field(pattern=_IPV4)
    src_ip_check: bool = True
    src_mac_check: bool = True
    enforce: bool = True  # False: the server is in no security group (everything allowed)
    bw_limit: int = Field(default=0, ge=0, le=MAX_BW_LIMIT)  # Mbps each way on the port (tc); 0: none
    rules: list[SecRule] = Field(default_factory=list, max_length=10000)


class GuestEip(_Model):
    """An EIP associated with a guest nic on this host: DNAT ``eip`` -> ``ip``, and the guest's traffic
    leaving its own network (``cidr``) SNAT to ``eip``."""

    eip: str = Field(pattern=_IPV4)
    ip: str = Field(pattern=_IPV4)
    cidr: str = Field(pattern=r"^\d{1,3}(\.\d{1,3}){3}/\d{1,2}$")
    server_id: str = Field(pattern=_UUID)


class HostSecgroups(_Model):
    version: int = Field(ge=0)
    ports: list[GuestPort] = Field(default_factory=list)
    peers: dict[str, list[str]] = Field(default_factory=dict)  # security group id -> its guests' addresses
    eips: list[GuestEip] = Field(default_factory=list)
