"""Work items (core.host_protocol) → calls on the hosted driver → the typed result.

One handler per ``WorkKind`` (a test fails when a kind has none). A handler gets the parsed
payload and returns the kind's result model; raising makes the report an ``ErrorResult`` so
the region's task fails cleanly with that reason. Every guest-touching result carries the
guest's state afterwards, read back from the hypervisor (not assumed).
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from core import host_protocol as hp
from core.host_protocol import WorkKind
from drivers.base import (
    ColdMigratable,
    DiskFiles,
    DiskResizable,
    GuestNotFound,
    GuestStatus,
    HostedDriver,
    ImageSaver,
    InstanceDisk,
    InstanceNic,
    InstanceSpec,
    LiveMigratable,
    NicChangeable,
    SnapshotSource,
    Snapshottable,
)

Handler = Callable[[HostedDriver, Any], Any]


def instance_spec(p: hp.GuestPayload) -> InstanceSpec:
    """The driver-neutral instance a guest payload describes."""
    srv = p.server
    return InstanceSpec(
        server_id=srv.id, name=srv.name or srv.id, vcpu=srv.vcpu_count, memory_mb=srv.vmem_size,
        arch=srv.os_arch if srv.os_arch in ("x86_64", "aarch64") else "x86_64", auto_start=srv.auto_start,
        disks=tuple(instance_disk(d) for d in p.disks),
        nics=tuple(InstanceNic(index=n.index, mac=n.mac, ip=n.ip, mask=n.mask, gateway=n.gateway, dns=n.dns,
                               vlan_id=n.vlan_id, mtu=n.mtu, network_id=n.network_id, wire_id=n.wire_id,
                               bridge=n.bridge) for n in p.nics),
        ssh_keys=(srv.public_key,) if srv.public_key else (), password=srv.password or None,
        user_data=srv.user_data or None, os_type=srv.os_type, cdrom_image_id=p.cdrom_image_id or None,
        boot_order=tuple(p.boot_order))


def instance_disk(d: hp.DiskPayload) -> InstanceDisk:
    src = None
    if d.snapshot_source is not None:
        s = d.snapshot_source
        src = SnapshotSource(server_id=s.server_id, snapshot_id=s.snapshot_id,
                             disk=InstanceDisk(id=s.disk_id, index=s.index, size_mb=0, access_path=s.access_path))
    return InstanceDisk(id=d.id, index=d.index, size_mb=d.size, image_id=d.image_id or None, format=d.format,
                        access_path=d.access_path, snapshot_source=src)


def state_of(h: HostedDriver, server_id: str) -> hp.GuestState:
    try:
        return hp.guest_state(h.driver.get_guest(server_id).status)
    except GuestNotFound:
        return hp.GuestState.ABSENT


def _deployed(h: HostedDriver, server_id: str, out: Any) -> hp.DeployResult:
    return hp.DeployResult(guest_status=state_of(h, server_id), guest_id=out.guest_id,
                           disks=[hp.DiskOut(id=i, access_path=p) for i, p in out.disks])


def deploy(h: HostedDriver, p: hp.DeployPayload) -> hp.DeployResult:
    return _deployed(h, p.server.id, h.deploy(instance_spec(p)))


def delete(h: HostedDriver, p: hp.DeletePayload) -> hp.DeleteResult:
    kept = h.keep_disks(p.server.id, [instance_disk(d) for d in p.keep]) if p.keep else []
    return hp.DeleteResult(deleted=h.remove(p.server.id), kept=[hp.DiskOut(id=i, access_path=a) for i, a in kept])


def _power(op: Callable[[HostedDriver, str], None]) -> Handler:
    def handler(h: HostedDriver, p: hp.PowerPayload) -> hp.GuestResult:
        op(h, p.server.id)
        return hp.GuestResult(guest_status=state_of(h, p.server.id))

    return handler


def _restart(h: HostedDriver, sid: str) -> None:
    if h.driver.get_guest(sid).status is GuestStatus.RUNNING:
        h.driver.reboot_guest(sid)
    else:
        h.driver.start_guest(sid)


def stop(h: HostedDriver, p: hp.StopPayload) -> hp.GuestResult:
    timeout = 0.0 if p.is_force else float(p.timeout_secs)
    h.driver.stop_guest(p.server.id, timeout=timeout)
    return hp.GuestResult(guest_status=state_of(h, p.server.id))


def status(h: HostedDriver, p: hp.PowerPayload) -> hp.StatusResult:
    st = state_of(h, p.server.id)
    return hp.StatusResult(guest_status=st, reason="no such guest on this host" if st is hp.GuestState.ABSENT else "")


def reconfigure(h: HostedDriver, p: hp.ReconfigurePayload) -> hp.ReconfigureResult:
    h.reconfigure(p.server.id, vcpu=p.vcpu_count, memory_mb=p.vmem_size)
    return hp.ReconfigureResult(guest_status=state_of(h, p.server.id), vcpu_count=p.vcpu_count,
                                vmem_size=p.vmem_size)


def attach_disk(h: HostedDriver, p: hp.AttachDiskPayload) -> hp.AttachDiskResult:
    path, hot = h.attach_disk(p.server.id, instance_disk(p.disk))
    return hp.AttachDiskResult(guest_status=state_of(h, p.server.id), disk=hp.DiskOut(id=p.disk.id, access_path=path),
                               hot=hot)


def detach_disk(h: HostedDriver, p: hp.DetachDiskPayload) -> hp.DetachDiskResult:
    hot = h.detach_disk(p.server.id, instance_disk(p.disk), keep=p.keep_disk)
    return hp.DetachDiskResult(guest_status=state_of(h, p.server.id), disk_id=p.disk.id, hot=hot)


def rebuild_root(h: HostedDriver, p: hp.RebuildRootPayload) -> hp.DeployResult:
    return _deployed(h, p.server.id, h.rebuild_root(instance_spec(p)))


def _migratable(h: HostedDriver, op: str) -> ColdMigratable:
    if not isinstance(h, ColdMigratable):
        from drivers.base import not_supported

        not_supported(h.name, op)
    return h


def migrate_out(h: HostedDriver, p: hp.MigrateOutPayload) -> hp.MigrateOutResult:
    source = _migratable(h, "migrate_out").migrate_out(p.server.id, tuple(instance_disk(d) for d in p.disks))
    return hp.MigrateOutResult(guest_status=state_of(h, p.server.id), source=hp.MigrationSource.model_validate(source))


def migrate_in(h: HostedDriver, p: hp.MigrateInPayload) -> hp.DeployResult:
    spec = dataclasses.replace(instance_spec(p), auto_start=False)  # defined stopped; the region starts it
    return _deployed(h, p.server.id, _migratable(h, "migrate_in").migrate_in(spec, p.source.model_dump()))


def migrate_cleanup(h: HostedDriver, p: hp.MigrateCleanupPayload) -> hp.MigrateCleanupResult:
    return hp.MigrateCleanupResult(deleted=_migratable(h, "migrate_cleanup").migrate_cleanup(p.server.id))


def _snapshots(h: HostedDriver, op: str) -> Snapshottable:
    if not isinstance(h, Snapshottable):
        from drivers.base import not_supported

        not_supported(h.name, op)
    return h


def snapshot_create(h: HostedDriver, p: hp.SnapshotPayload) -> hp.SnapshotResult:
    size = _snapshots(h, "create_snapshot").create_snapshot(p.server.id, instance_disk(p.disk), p.snapshot_id)
    return hp.SnapshotResult(guest_status=state_of(h, p.server.id), snapshot_id=p.snapshot_id, size=size)


def snapshot_delete(h: HostedDriver, p: hp.SnapshotPayload) -> hp.SnapshotDeleteResult:
    return hp.SnapshotDeleteResult(deleted=_snapshots(h, "delete_snapshot").delete_snapshot(
        p.server.id, instance_disk(p.disk), p.snapshot_id))


def instance_snapshot_create(h: HostedDriver, p: hp.InstanceSnapshotPayload) -> hp.InstanceSnapshotResult:
    sizes = _snapshots(h, "create_instance_snapshot").create_instance_snapshot(
        p.server.id, [(instance_disk(d), sid) for d, sid in zip(p.disks, p.snapshot_ids, strict=True)])
    return hp.InstanceSnapshotResult(guest_status=state_of(h, p.server.id), sizes=sizes)


def reset_password(h: HostedDriver, p: hp.ResetPasswordPayload) -> hp.ResetPasswordResult:
    fn = getattr(h, "reset_password", None)
    if fn is None:
        from drivers.base import not_supported

        not_supported(h.name, "reset_password")
    live = fn(instance_spec(p))
    return hp.ResetPasswordResult(guest_status=state_of(h, p.server.id), live=bool(live))


def _cdrom_driver(h: HostedDriver, op: str) -> Any:
    if getattr(h, op, None) is None:
        from drivers.base import not_supported

        not_supported(h.name, op)
    return h


def cdrom(h: HostedDriver, p: hp.CdromPayload) -> hp.CdromResult:
    live = _cdrom_driver(h, "change_cdrom").change_cdrom(p.server.id, p.image_id)
    return hp.CdromResult(guest_status=state_of(h, p.server.id), live=bool(live))


def boot_order(h: HostedDriver, p: hp.BootOrderPayload) -> hp.GuestResult:
    _cdrom_driver(h, "set_boot_order").set_boot_order(instance_spec(p))
    return hp.GuestResult(guest_status=state_of(h, p.server.id))


def disk_reset(h: HostedDriver, p: hp.DiskResetPayload) -> hp.GuestResult:
    _snapshots(h, "reset_disk").reset_disk(p.server.id, instance_disk(p.disk), p.snapshot_id)
    return hp.GuestResult(guest_status=state_of(h, p.server.id))


def save_image(h: HostedDriver, p: hp.SaveImagePayload) -> hp.SaveImageResult:
    if not isinstance(h, ImageSaver):
        from drivers.base import not_supported

        not_supported(h.name, "save_image")
    out = h.save_image(p.server.id, instance_disk(p.disks[0]), p.image_id)
    return hp.SaveImageResult(guest_status=state_of(h, p.server.id), image_id=p.image_id,
                              image_status=str(out.get("status", "")), size=int(out.get("size") or 0))


def disk_resize(h: HostedDriver, p: hp.DiskResizePayload) -> hp.DiskResizeResult:
    if not isinstance(h, DiskResizable):
        from drivers.base import not_supported

        not_supported(h.name, "resize_disk")
    size, online = h.resize_disk(p.server.id, instance_disk(p.disk), p.size)
    return hp.DiskResizeResult(guest_status=state_of(h, p.server.id), size=size, online=online)


def instance_nic(n: hp.NicPayload) -> InstanceNic:
    return InstanceNic(index=n.index, mac=n.mac, ip=n.ip, mask=n.mask, gateway=n.gateway, dns=n.dns,
                       vlan_id=n.vlan_id, mtu=n.mtu, network_id=n.network_id, wire_id=n.wire_id, bridge=n.bridge)


def _nic_change(op: str) -> Handler:
    def handler(h: HostedDriver, p: hp.NicChangePayload) -> hp.NicChangeResult:
        if not isinstance(h, NicChangeable):
            from drivers.base import not_supported

            not_supported(h.name, op)
        hot = getattr(h, op)(p.server.id, instance_nic(p.nic))
        return hp.NicChangeResult(guest_status=state_of(h, p.server.id), mac=p.nic.mac, hot=bool(hot))

    return handler


def _live(h: HostedDriver, op: str) -> LiveMigratable:
    if not isinstance(h, LiveMigratable):
        from drivers.base import not_supported

        not_supported(h.name, op)
    return h


def disk_delete(h: HostedDriver, p: hp.DiskDeletePayload) -> hp.DiskDeleteResult:
    """A driver whose disks are no files of this host (a cloud's volumes) has nothing to remove here."""
    if not isinstance(h, DiskFiles):
        return hp.DiskDeleteResult(deleted=False)
    return hp.DiskDeleteResult(deleted=h.delete_disk(instance_disk(p.disk)))


def live_migrate_prepare(h: HostedDriver, p: hp.LiveMigratePreparePayload) -> hp.LiveMigratePrepared:
    disks, target = _live(h, "live_migrate").live_migrate_prepare(instance_spec(p))
    return hp.LiveMigratePrepared(disks=[hp.DiskOut(id=i, access_path=a) for i, a in disks], target=target)


def live_migrate(h: HostedDriver, p: hp.LiveMigratePayload) -> hp.GuestResult:
    status = _live(h, "live_migrate").live_migrate(p.server.id, p.target, tuple(instance_disk(d) for d in p.disks))
    return hp.GuestResult(guest_status=hp.guest_state(status))  # the guest's state on the target


HANDLERS: dict[WorkKind, Handler] = {
    WorkKind.DEPLOY: deploy,
    WorkKind.DELETE: delete,
    WorkKind.START: _power(lambda h, sid: h.driver.start_guest(sid)),
    WorkKind.STOP: stop,
    WorkKind.RESTART: _power(_restart),
    WorkKind.RESET: _power(lambda h, sid: h.driver.reset_guest(sid)),
    WorkKind.SUSPEND: _power(lambda h, sid: h.driver.suspend_guest(sid)),
    WorkKind.RESUME: _power(lambda h, sid: h.driver.resume_guest(sid)),
    WorkKind.STATUS: status,
    WorkKind.RECONFIGURE: reconfigure,
    WorkKind.ATTACH_DISK: attach_disk,
    WorkKind.DETACH_DISK: detach_disk,
    WorkKind.REBUILD_ROOT: rebuild_root,
    WorkKind.MIGRATE_OUT: migrate_out,
    WorkKind.MIGRATE_IN: migrate_in,
    WorkKind.MIGRATE_CLEANUP: migrate_cleanup,
    WorkKind.SNAPSHOT_CREATE: snapshot_create,
    WorkKind.SNAPSHOT_DELETE: snapshot_delete,
    WorkKind.INSTANCE_SNAPSHOT_CREATE: instance_snapshot_create,
    WorkKind.RESET_PASSWORD: reset_password,
    WorkKind.CDROM: cdrom,
    WorkKind.BOOT_ORDER: boot_order,
    WorkKind.DISK_RESET: disk_reset,
    WorkKind.SAVE_IMAGE: save_image,
    WorkKind.DISK_RESIZE: disk_resize,
    WorkKind.DISK_DELETE: disk_delete,
    WorkKind.ATTACH_NIC: _nic_change("attach_nic"),
    WorkKind.DETACH_NIC: _nic_change("detach_nic"),
    WorkKind.LIVE_MIGRATE_PREPARE: live_migrate_prepare,
    WorkKind.LIVE_MIGRATE: live_migrate,
}


def handle(h: HostedDriver, kind: str, payload: Any) -> dict[str, Any]:
    """Run one work item; the JSON result (a ContractError for an unknown kind or bad payload)."""
    k = hp.work_kind(kind)
    p = hp.parse_payload(k, payload)
    return hp.dump(HANDLERS[k](h, p))
