"""KVM instances end to end: qcow2 overlays on the image cache, the NoCloud config drive, taps.

    hosted = KvmDriver.for_host(env)          # a HostedDriver (drivers.base)
    out = hosted.deploy(spec)                 # InstanceSpec -> Deployed
    hosted.remove(spec.server_id)

Each instance lives in ``<instances>/<server id>/``: disk overlays, the config drive, the serial
log, ``nics.json`` (its leases, re-applied to the DHCP server when the agent restarts) and
``domain.xml`` (its libvirt definition, mode 0600, written whenever the agent changed the guest:
``restore()`` re-defines a guest the hypervisor lost from it — libvirt's test:/// driver keeps
guests in memory only, a real host can lose definitions with a libvirtd reset). A
deploy that finds leftovers of an earlier, interrupted attempt (agent killed mid-create) removes
them and starts over, so a redelivered work item ends in the same state as a first one.

Images with ``kernel_id`` / ``ramdisk_id`` / ``os_command_line`` properties (OpenStack's
convention) boot that kernel directly, with the image as the root disk.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import shutil
from typing import Any

from drivers.base import (
    Capability,
    ConsoleEndpoint,
    Deployed,
    DiskSpec,
    GuestNotFound,
    GuestSpec,
    GuestStatus,
    HostEnv,
    HypervisorError,
    InstanceDisk,
    InstanceNic,
    InstanceSpec,
    InvalidSpec,
    LocalImage,
    NicSpec,
    not_supported,
)
from drivers.kvm.cdrom import KvmCdrom
from drivers.kvm.live import KvmLiveMigration
from drivers.kvm.migration import KvmMigration
from drivers.kvm.saveimage import KvmSaveImage
from drivers.kvm.snapshots import KvmSnapshots

VERSION = "1.2"  # of this driver's host contract implementation (reported at registration)

log = logging.getLogger(__name__)

BOOT_PROPS = ("kernel_id", "ramdisk_id", "os_command_line")
DOMAIN_FILE = "domain.xml"


def _endpoint(protocol: str, where: str, *, standin: bool = False) -> ConsoleEndpoint:
    """``/dev/pts/N`` (a pty) or ``host:port`` (TCP) as a ConsoleEndpoint."""
    if where.startswith("/"):
        return ConsoleEndpoint(protocol=protocol, path=where, standin=standin)
    host, _, port = where.rpartition(":")
    if not host or not port.isdigit():
        raise InvalidSpec(f"console {protocol}: expected host:port or a pty path, got {where!r}")
    return ConsoleEndpoint(protocol=protocol, host=host.strip("[]"), port=int(port), standin=standin)


def hostname_of(name: str) -> str:
    """A server name as a DNS label (cloud-init and DHCP want one)."""
    h = re.sub(r"[^A-Za-z0-9-]+", "-", name).strip("-")[:63].strip("-")
    return h or "guest"


def tap_name(server_id: str, index: int) -> str:
    return f"cp{server_id.replace('-', '')[:10]}{index}"[:15]


def domain_name(name: str, sid: str) -> str:
    """libvirt names are unique per host: the server name plus a short id (names may repeat across projects)."""
    base = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-._")[:50] or "guest"
    return f"{base}-{sid[:8]}"


class KvmInstances(KvmMigration, KvmLiveMigration, KvmSnapshots, KvmSaveImage, KvmCdrom):
    """The ``HostedDriver`` of KVM: instances built from ``InstanceSpec`` on a ``KvmDriver``.

    Cold migration (migrate-out / migrate-in / cleanup) is ``KvmMigration`` (drivers/kvm/migration.py),
    live migration ``KvmLiveMigration`` (drivers/kvm/live.py)."""

    name = "kvm"

    def port_name(self, server_id: str, index: int) -> str:
        """The host-side port (tap) of a guest nic: what the agent's security-group rules bind to."""
        return tap_name(server_id, index)

    def __init__(self, driver: Any, env: HostEnv) -> None:
        self.driver = driver
        self.env = env
        self.version = VERSION
        self.simulated = env.uri.startswith("test:")
        # libvirt's test driver has no device calls: a simulated host changes a running guest's
        # disks in its definition only (they show at the next boot), and says so at registration
        # ... and migrates nothing live; nor does a host that names no URI other hosts reach it by
        self.capabilities = frozenset(driver.capabilities) - (
            {Capability.ATTACH_DISK_HOT, Capability.ATTACH_NIC_HOT, Capability.LIVE_MIGRATE, Capability.CDROM_HOT}
            if self.simulated
            else set()) - (
            set() if env.options.get("migrate_uri") else {Capability.LIVE_MIGRATE})
        # consoles: a real guest has them (VNC on ``console_listen``, the serial pty); a test:///
        # guest has none, unless a stand-in peer is configured for it (tests: ``console_standin``)
        self.standin: dict[str, str] = dict(env.options.get("console_standin") or {})
        if self.simulated:
            self.capabilities -= {c for c, p in ((Capability.VNC, "vnc"), (Capability.SERIAL_CONSOLE, "serial"))
                                  if p not in self.standin}
        self.console_listen = str(env.options.get("console_listen") or "127.0.0.1")
        self._qemu_img = shutil.which("qemu-img") is not None
        if not self._qemu_img:  # sparse raw files keep no snapshots, and there is nothing to convert with
            self.capabilities -= {Capability.SNAPSHOT, Capability.SAVE_IMAGE, Capability.DISK_RESIZE}
        if self.simulated and not self._qemu_img:
            log.warning("qemu-img not found: guests of this simulated host get sparse files as disks")

    # --- HostedDriver ---------------------------------------------------------------------------

    def validate(self) -> None:
        if not os.path.isabs(self.env.instances_dir):
            raise HypervisorError(f"instances dir must be absolute, got {self.env.instances_dir!r}")
        if not self.simulated and not self._qemu_img:
            raise HypervisorError("qemu-img not found (apt install qemu-utils)")

    def close(self) -> None:
        self.driver.close()

    def instance_dir(self, server_id: str) -> str:
        if not re.fullmatch(r"[0-9a-fA-F-]{36}", server_id):
            raise HypervisorError(f"bad server id {server_id!r}")
        return os.path.join(self.env.instances_dir, server_id)

    def deploy(self, spec: InstanceSpec) -> Deployed:
        sid = spec.server_id
        self.remove(sid, spec.nics)  # leftovers of an interrupted attempt
        d = self.instance_dir(sid)
        os.makedirs(d, mode=0o700)
        try:
            gspec, disks_out = self._guest_spec(spec, d)
            guest = self.driver.create_guest(gspec, start=spec.auto_start)
            self.persist(sid)
        except BaseException:
            self.remove(sid, spec.nics)
            raise
        return Deployed(guest_id=guest.id, status=guest.status, disks=tuple(disks_out))

    def remove(self, server_id: str, nics: tuple[InstanceNic, ...] | None = None) -> bool:
        d = self.instance_dir(server_id)
        if nics is None:
            nics = _read_nics(d)
        existed = True
        try:
            self.driver.delete_guest(server_id)
        except GuestNotFound:
            existed = False
        for nic in nics:
            self.env.network.unplug(nic.mac)
        shutil.rmtree(d, ignore_errors=True)
        return existed

    def keep_disks(self, server_id: str, disks: list[Any]) -> list[tuple[str, str]]:
        """Data disks the region keeps when the server goes: their files move to
        ``<data dir>/disks/<disk id>.<ext>`` (0600 in a 0700 dir), out of the instance dir that
        ``remove`` deletes; a later attach finds them by that access path."""
        kept_dir = os.path.join(self.env.data_dir, "disks")
        os.makedirs(kept_dir, mode=0o700, exist_ok=True)
        out = []
        for disk in disks:
            if not re.fullmatch(r"[0-9A-Za-z-]{1,64}", disk.id):
                raise HypervisorError(f"bad disk id {disk.id!r}")
            src = self._disk_path(server_id, disk, existing=True)
            dst = os.path.join(kept_dir, disk.id + (os.path.splitext(src)[1] or ".qcow2"))
            if os.path.exists(src) and os.path.realpath(src) != os.path.realpath(dst):
                if not self._owned(src):  # a file outside our instances is not ours to move
                    out.append((disk.id, src))
                    continue
                os.replace(src, dst)  # same filesystem: a rename, never a copy
                os.chmod(dst, 0o600)
            elif not os.path.exists(dst):
                raise HypervisorError(f"disk {disk.id}: its file {src} is missing on this host")
            out.append((disk.id, dst))
        return out

    def delete_disk(self, disk: InstanceDisk) -> bool:
        """A deleted disk's file goes (drivers.base.DiskFiles): only a file of ours (the instances
        or the kept-disks dir), never one a guest of this host still uses."""
        path = disk.access_path
        if not path:
            return False
        kept = os.path.realpath(os.path.join(self.env.data_dir, "disks"))
        real = os.path.realpath(path)
        if not (self._owned(path) or os.path.dirname(real) == kept):
            raise HypervisorError(f"disk {disk.id}: {path} is not a file this host made; left in place")
        for guest in self.driver.list_guests():
            if any(os.path.realpath(d.path) == real for d in self.driver.guest_disks(guest.id, live=False)):
                raise HypervisorError(f"disk {disk.id}: {path} is used by guest {guest.name} on this host")
        try:
            os.unlink(real)
        except FileNotFoundError:
            return False
        log.info("disk %s deleted: %s removed", disk.id, real)
        return True

    def reconfigure(self, server_id: str, *, vcpu: int, memory_mb: int) -> None:
        """New vCPU/memory for a stopped guest: redefine the domain from its own XML."""
        from drivers.kvm.xml import spec_from_xml

        g = self.driver.get_guest(server_id)
        if g.status is not GuestStatus.STOPPED:
            raise HypervisorError(f"guest {server_id} is {g.status.value}: stop it before changing its configuration")
        dom = self.driver.host.lookup(server_id)
        spec = dataclasses.replace(spec_from_xml(dom.XMLDesc(0)), vcpu=vcpu, memory_mb=memory_mb)
        self.driver.host.conn().defineXML(self.driver.domain_xml(spec))
        self.persist(server_id)

    def attach_disk(self, server_id: str, disk: InstanceDisk) -> tuple[str, bool]:
        """Attach a data disk: its file (made blank if missing) into the definition, and hot-plugged
        into the guest if it runs on a host that can (ATTACH_DISK_HOT); (file, whether hot-plugged).

        A disk that was attached before (``access_path`` given, file there) is re-attached as it is;
        a new one is ``<instance dir>/disk<index>-<disk id>.qcow2`` (the id in the name: a file a
        detached disk left behind is never handed to another disk). Redelivered: the same state.
        """
        if disk.index == 0:
            raise HypervisorError("disk index 0 is the root disk: attach data disks at index 1 or higher")
        live = self._hot(server_id, "attach")
        path = self._disk_path(server_id, disk)
        if not os.path.exists(path):
            if disk.access_path:  # it had data once: never hand out a blank disk in its place
                raise HypervisorError(f"disk {disk.id}: its file {path} is missing on this host")
            if disk.image_id:  # disk-create --image: the image's contents, copy-on-write over its cached file
                img = self.env.images.get(disk.image_id)
                self._overlay(img, path, max(disk.size_mb, img.virtual_size_mb))
            else:
                self._data_disk(path, disk.size_mb)
        self.driver.attach_disk(server_id, DiskSpec(path=path, format=self._format_of(path)), index=disk.index,
                                live=live)
        self.persist(server_id)
        return path, live

    def detach_disk(self, server_id: str, disk: InstanceDisk, *, keep: bool = True) -> bool:
        """Take a data disk out of the definition, and out of the running guest (hot-unplug) if it
        runs on a host that can; its file is removed unless ``keep``. Already detached: fine.
        The root disk is never detached."""
        path = self._disk_path(server_id, disk, existing=True)
        roots = [d for d in self.driver.guest_disks(server_id, live=False) if d.device == "disk"]
        if disk.index == 0 or (roots and os.path.realpath(roots[0].path) == os.path.realpath(path)):
            raise HypervisorError(f"disk {disk.id} is the root disk of {server_id}: it cannot be detached "
                                  "(rebuild-root replaces it)")
        live = self._hot(server_id, "detach")
        self.driver.detach_disk(server_id, path, live=live, timeout=max(self.env.stop_timeout_s, 5.0))
        self.persist(server_id)
        if not keep and self._owned(path):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        return live

    def rebuild_root(self, spec: InstanceSpec) -> Deployed:
        """A fresh root overlay on the spec's image (the same or another), data disks kept, a new
        config drive (keys, password, user data of ``spec``), the domain re-defined from ``spec``;
        started if ``spec.auto_start``. A running guest is stopped first. Redelivered: rebuilt again.
        """
        sid = spec.server_id
        d = self.instance_dir(sid)
        g = self.driver.get_guest(sid)  # GuestNotFound: there is nothing to rebuild on this host
        roots = [x for x in spec.disks if x.index == 0]
        if not roots or not roots[0].image_id:
            raise HypervisorError(f"server {sid} has no root disk from an image to rebuild")
        if g.status is not GuestStatus.STOPPED:
            log.info("rebuild-root: stopping guest %s first", sid)
            self.driver.stop_guest(sid, timeout=self.env.stop_timeout_s)
        gspec, disks_out = self._guest_spec(spec, d, rebuild=True)
        try:
            self.driver.host.conn().defineXML(self.driver.domain_xml(gspec))
        except Exception as exc:
            raise HypervisorError(f"re-define guest {sid}: {exc}") from None
        if spec.auto_start:
            self.driver.start_guest(sid)
        self.persist(sid)
        return Deployed(guest_id=sid, status=self.driver.get_guest(sid).status, disks=tuple(disks_out))

    def reset_password(self, spec: InstanceSpec) -> bool:
        """``spec``'s password for the guest; whether a running guest took it now.

        Stopped: a new config drive (keys, user data, NICs as before) sets it at the next boot. Running:
        through the qemu guest agent (virDomainSetUserPassword; qemu-ga must run in the guest), and the
        drive rewritten too, so the next boot keeps it rather than bringing back the old one."""
        import libvirt

        from drivers.kvm.configdrive import ACCOUNT, ConfigDrive, NicConfig, build_config_drive

        sid = spec.server_id
        status = self.driver.get_guest(sid).status  # GuestNotFound: nothing here
        if not spec.password:
            raise HypervisorError("reset-password without a password")
        live = status is GuestStatus.RUNNING
        if not live and status is not GuestStatus.STOPPED:
            raise HypervisorError(f"guest {sid} is {status.value}: stop or start it to reset its password")
        if live:
            if Capability.GUEST_AGENT not in self.capabilities:
                raise HypervisorError(f"guest {sid} is running and this host has no guest agent channel: stop it")
            try:
                self.driver.host.lookup(sid).setUserPassword(ACCOUNT, spec.password, 0)
            except libvirt.libvirtError as exc:
                raise HypervisorError(f"guest {sid}: the guest agent did not set the password "
                                      f"({exc.get_error_message()}); is qemu-guest-agent running in it? "
                                      "Or stop the server: the password is then set at its next boot") from None
        build_config_drive(os.path.join(self.instance_dir(sid), "config.iso"), ConfigDrive(
            instance_id=sid, hostname=hostname_of(spec.name), ssh_keys=spec.ssh_keys, password=spec.password,
            user_data=spec.user_data or None, nics=tuple(NicConfig(mac=n.mac, dhcp=True) for n in spec.nics)))
        return live

    def persist(self, server_id: str) -> None:
        """Keep the guest's definition in its instance dir (``domain.xml``), for ``restore``.

        The inactive XML without VIR_DOMAIN_XML_SECURE: no console passwords in it (the guest's
        password only ever is in the config drive). A guest or dir that is gone: nothing to keep.
        """
        import libvirt

        d = self.instance_dir(server_id)
        if not os.path.isdir(d):
            return
        try:  # the definition, not the running state (which names live taps, ports, ...)
            xml = str(self.driver.host.lookup(server_id).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        except GuestNotFound:
            return
        except Exception as exc:  # libvirt errors: the previous description stays
            raise HypervisorError(f"cannot read the definition of guest {server_id}: {exc}") from None
        path = os.path.join(d, DOMAIN_FILE)
        tmp = path + ".tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(xml)
        os.replace(tmp, path)  # never a half-written description, even if the agent dies here

    def restore(self) -> list[tuple[str, str]]:
        """After a restart: DHCP leases again (nics.json), and guests the hypervisor lost re-defined
        (stopped) from their ``domain.xml``; [(server id, why it could not be restored)].

        Power state is not decided here: the agent asks the region what each guest should be.
        """
        problems: list[tuple[str, str]] = []
        try:
            ids = sorted(os.listdir(self.env.instances_dir))
        except FileNotFoundError:
            return problems
        for sid in ids:
            d = os.path.join(self.env.instances_dir, sid)
            if not os.path.isdir(d) or not re.fullmatch(r"[0-9a-fA-F-]{36}", sid):
                continue
            for nic in _read_nics(d):
                try:
                    self.env.network.plug(nic, None)
                except Exception as exc:  # one bad record must not stop the others
                    log.warning("cannot restore the lease of %s on %s: %s", nic.mac, sid, exc)
                    problems.append((sid, f"DHCP lease of {nic.mac}: {exc}"))
            try:
                problem = self._define_lost(sid, d)
            except Exception as exc:  # a broken description or libvirt refusing it: say so, go on
                problem = f"cannot re-define the guest from {DOMAIN_FILE}: {exc}"
            if problem:
                log.warning("guest %s: %s", sid, problem)
                problems.append((sid, problem))
        return problems

    def _define_lost(self, sid: str, d: str) -> str:
        """Define the guest from its description if the hypervisor lacks it; a problem, or ""."""
        from drivers.kvm.xml import parse_devices

        try:
            self.driver.host.lookup(sid)
        except GuestNotFound:
            pass
        else:
            if not os.path.exists(os.path.join(d, DOMAIN_FILE)):
                self.persist(sid)  # deployed by an agent that kept no description yet
            return ""
        try:
            with open(os.path.join(d, DOMAIN_FILE)) as f:
                xml = f.read()
        except FileNotFoundError:
            return f"the hypervisor lost the guest and this host kept no description of it ({DOMAIN_FILE})"
        devices = parse_devices(xml)
        missing = [p for p in devices.disk_paths if not os.path.exists(p)]
        if missing:
            return f"the hypervisor lost the guest and its disk file {', '.join(missing)} is missing"
        self.driver.host.conn().defineXML(xml)
        log.info("re-defined guest %s from %s", sid, os.path.join(d, DOMAIN_FILE))
        return ""

    # --- building -------------------------------------------------------------------------------

    def _guest_spec(self, spec: InstanceSpec, d: str, *,
                    rebuild: bool = False) -> tuple[GuestSpec, list[tuple[str, str]]]:
        """The guest ``spec`` describes, its disk files made (``rebuild``: a fresh root overlay in
        place of the old one, data disks used as they are); [(disk id, file)]."""
        from drivers.kvm.configdrive import ConfigDrive, NicConfig, build_config_drive

        disks: list[DiskSpec] = []
        out: list[tuple[str, str]] = []
        boot: dict[str, Any] = {}
        for disk in sorted(spec.disks, key=lambda x: x.index):
            path = os.path.join(d, f"disk{disk.index}.qcow2")
            if rebuild and disk.index > 0:  # a data disk keeps its file (and data)
                path = self._disk_path(spec.server_id, disk, existing=True)
                if not os.path.exists(path):
                    raise HypervisorError(f"data disk {disk.id} of {spec.server_id}: {path} is missing")
            elif disk.snapshot_source is not None and not rebuild:
                self._from_snapshot(disk, path)
                if disk.image_id and not boot:  # a clone boots as its source did (kernel, initrd...)
                    img = self.env.images.get(disk.image_id)
                    boot = {k: img.properties[k] for k in BOOT_PROPS if img.properties.get(k)}
            elif disk.image_id:
                img = self.env.images.get(disk.image_id)
                if not boot:
                    boot = {k: img.properties[k] for k in BOOT_PROPS if img.properties.get(k)}
                if rebuild:  # the old root stays until the new one is complete
                    if disk.access_path and disk.index == 0:
                        path = disk.access_path
                    new = path + ".rebuild"
                    _unlink(new)
                    self._overlay(img, new, max(disk.size_mb, img.virtual_size_mb))
                    os.replace(new, path)
                else:
                    self._overlay(img, path, max(disk.size_mb, img.virtual_size_mb))
            else:
                self._data_disk(path, disk.size_mb)
            disks.append(DiskSpec(path=path, format=self._format_of(path)))
            out.append((disk.id, path))
        nics, nic_cfgs = [], []
        host = hostname_of(spec.name)
        for nic in sorted(spec.nics, key=lambda x: x.index):
            bridge = self.env.network.plug(nic, host)
            nics.append(NicSpec(mac=nic.mac, bridge=bridge, ifname=tap_name(spec.server_id, nic.index)))
            nic_cfgs.append(NicConfig(mac=nic.mac, dhcp=True))
        _write_nics(d, spec.nics)
        config_drive = build_config_drive(os.path.join(d, "config.iso"), ConfigDrive(
            instance_id=spec.server_id, hostname=host, ssh_keys=spec.ssh_keys, password=spec.password or None,
            user_data=spec.user_data or None, nics=tuple(nic_cfgs)))
        kernel = initrd = cmdline = None
        if boot.get("kernel_id"):
            kernel = self.env.images.get(str(boot["kernel_id"])).path
            if boot.get("ramdisk_id"):
                initrd = self.env.images.get(str(boot["ramdisk_id"])).path
            cmdline = str(boot.get("os_command_line") or "console=ttyS0") or None
        # every guest gets its (empty) CD-ROM drive, as Cloudpods' do: an ISO can go into it while it runs
        iso = self.env.images.get(spec.cdrom_image_id).path if spec.cdrom_image_id else ""
        positions = {f"disk{x.index}": f"disk{n}" for n, x in enumerate(sorted(spec.disks, key=lambda x: x.index))}
        order = tuple(positions.get(dev, dev) for dev in spec.boot_order if dev in positions or dev == "cdrom")
        gspec = GuestSpec(name=domain_name(spec.name, spec.server_id), uuid=spec.server_id, vcpu=spec.vcpu,
                          memory_mb=spec.memory_mb, disks=tuple(disks), nics=tuple(nics), config_drive=config_drive,
                          iso=iso, boot_order=order, guest_agent=True,
                          serial_log=os.path.join(d, "serial.log"), kernel=kernel, initrd=initrd, cmdline=cmdline,
                          arch=spec.arch if spec.arch in ("x86_64", "aarch64") else "x86_64",
                          vnc_listen=self.console_listen if Capability.VNC in self.driver.capabilities else None,
                          serial_console=Capability.SERIAL_CONSOLE in self.driver.capabilities)
        return gspec, out

    def console(self, server_id: str, protocol: str) -> ConsoleEndpoint:
        """Where the running guest's ``vnc`` or ``serial`` console listens now (drivers.base.Consoles)."""
        from drivers.kvm.xml import console_places

        cap = {"vnc": Capability.VNC, "serial": Capability.SERIAL_CONSOLE}.get(protocol)
        if cap is None:
            raise InvalidSpec(f"console protocol must be vnc or serial, not {protocol!r}")
        if cap not in self.capabilities:
            not_supported(self.name, f"{protocol} console")
        g = self.driver.get_guest(server_id)
        if g.status is not GuestStatus.RUNNING:
            raise HypervisorError(f"guest {server_id} is {g.status.value}: its console is there while it runs")
        if self.simulated:  # a test:/// guest: the configured stand-in peer, labelled as such
            return _endpoint(protocol, self.standin[protocol], standin=True)
        places = console_places(self.driver.host.lookup(server_id).XMLDesc(0))
        if protocol == "vnc":
            if places.vnc is None:
                raise HypervisorError(f"guest {server_id} has no VNC display (defined before consoles existed: "
                                      "rebuild or redeploy it)")
            return ConsoleEndpoint(protocol="vnc", host=places.vnc[0], port=places.vnc[1])
        if places.serial_pty is None:
            raise HypervisorError(f"guest {server_id} has no serial console pty (defined before consoles existed)")
        return ConsoleEndpoint(protocol="serial", path=places.serial_pty)

    def attach_nic(self, server_id: str, nic: InstanceNic) -> bool:
        """A NIC on the guest (``drivers.base.NicChangeable``): its bridge ready and its address leased,
        into the definition, and hot-plugged if the guest runs on a host that can (ATTACH_NIC_HOT);
        kept in ``nics.json`` (leases after a restart). Whether the running guest got it now."""
        import libvirt

        from drivers.kvm.xml import interface_device_xml, interface_xml_of, with_interface

        d = self.instance_dir(server_id)
        dom = self.driver.host.lookup(server_id)
        spec = NicSpec(mac=nic.mac, bridge=self.env.network.plug(nic, None), ifname=tap_name(server_id, nic.index))
        live = self._hot_nic(server_id)
        xml = interface_device_xml(spec)
        try:
            running = interface_xml_of(dom.XMLDesc(0), nic.mac) if live else None
            if live and running is None:
                flags = libvirt.VIR_DOMAIN_AFFECT_LIVE
                if interface_xml_of(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE), nic.mac) is None:
                    flags |= libvirt.VIR_DOMAIN_AFFECT_CONFIG
                dom.attachDeviceFlags(xml, flags)
            elif interface_xml_of(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE), nic.mac) is None:
                self.driver._change_config(dom, dom.attachDeviceFlags, xml, lambda x: with_interface(x, spec))
            else:  # the NIC is there (change-ipaddr): onto the new network's bridge if that is another one
                self._rebridge(dom, running, nic.mac, spec.bridge)
        except libvirt.libvirtError as exc:
            raise HypervisorError(f"attach NIC {nic.mac} to guest {server_id}: {exc.get_error_message()}") from None
        _write_nics(d, (*[n for n in _read_nics(d) if n.mac.lower() != nic.mac.lower()], nic))
        self.persist(server_id)
        return live

    def _rebridge(self, dom: Any, running: str | None, mac: str, bridge: str) -> None:
        """The guest's NIC ``mac`` onto ``bridge``: live (libvirt moves the tap, the guest keeps its
        device) when ``running`` is its live XML, and in the definition either way."""
        import libvirt

        from drivers.kvm.xml import interface_xml_of, rebridged

        live = rebridged(running, mac, bridge) if running is not None else None
        if live is not None:
            dom.updateDeviceFlags(live, libvirt.VIR_DOMAIN_AFFECT_LIVE | libvirt.VIR_DOMAIN_AFFECT_CONFIG)
            return
        config = interface_xml_of(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE), mac)
        changed = rebridged(config, mac, bridge) if config is not None else None
        if changed is not None:
            self.driver._change_config(dom, dom.updateDeviceFlags, changed,
                                       lambda x: rebridged(x, mac, bridge) or x)

    def detach_nic(self, server_id: str, nic: InstanceNic) -> bool:
        """The NIC with ``nic.mac`` out of the running guest (if it runs on a host that can) and its
        definition; its lease gone. Already gone: fine. Whether the running guest lost it now."""
        import libvirt

        from drivers.kvm.xml import interface_xml_of, without_interface

        d = self.instance_dir(server_id)
        dom = self.driver.host.lookup(server_id)
        live = self._hot_nic(server_id)
        try:
            running = interface_xml_of(dom.XMLDesc(0), nic.mac) if live else None
            if running is not None:
                dom.detachDeviceFlags(running, libvirt.VIR_DOMAIN_AFFECT_LIVE)
            config = interface_xml_of(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE), nic.mac)
            if config is not None:
                self.driver._change_config(dom, dom.detachDeviceFlags, config,
                                           lambda x: without_interface(x, nic.mac))
        except libvirt.libvirtError as exc:
            raise HypervisorError(f"detach NIC {nic.mac} from guest {server_id}: {exc.get_error_message()}") from None
        self.env.network.unplug(nic.mac)
        _write_nics(d, tuple(n for n in _read_nics(d) if n.mac.lower() != nic.mac.lower()))
        self.persist(server_id)
        return live

    def _hot_nic(self, server_id: str) -> bool:
        active = bool(self.driver.host.lookup(server_id).isActive())
        if active and Capability.ATTACH_NIC_HOT not in self.capabilities:
            log.info("NIC change on running guest %s: this host cannot hot-plug, it applies at the next boot",
                     server_id)
            return False
        return active

    def _hot(self, server_id: str, op: str) -> bool:
        """Whether to change the running guest too: it runs, and this host can hot-plug disks."""
        import libvirt

        try:
            active = bool(self.driver.host.lookup(server_id).isActive())
        except libvirt.libvirtError as exc:
            raise HypervisorError(f"{op} disk: guest {server_id}: {exc.get_error_message()}") from None
        if active and Capability.ATTACH_DISK_HOT not in self.capabilities:
            log.info("%s disk on running guest %s: this host cannot hot-plug, the change applies at the "
                     "next boot", op, server_id)
            return False
        return active

    def _disk_path(self, server_id: str, disk: InstanceDisk, *, existing: bool = False) -> str:
        """Where a data disk's file is: where the region says it is, else where attach_disk makes it
        (``existing``: or deploy's ``disk<index>.qcow2``, when only that one is there)."""
        if disk.access_path:
            if not os.path.isabs(disk.access_path):
                raise HypervisorError(f"disk {disk.id}: access path {disk.access_path!r} is not absolute")
            return disk.access_path
        d = self.instance_dir(server_id)
        path = os.path.join(d, f"disk{disk.index}-{disk.id[:8]}.qcow2")
        deployed = os.path.join(d, f"disk{disk.index}.qcow2")
        if existing and not os.path.exists(path) and os.path.exists(deployed):
            return deployed
        return path

    def _format_of(self, path: str) -> str:
        """qcow2 where qemu-img makes the files; a simulated host without it writes sparse raw files."""
        return "qcow2" if self._qemu_img else "raw"

    def _owned(self, path: str) -> bool:
        base: str = os.path.realpath(self.env.instances_dir)
        real = os.path.realpath(path)
        return os.path.commonpath([real, base]) == base and real != base

    def _overlay(self, img: LocalImage, path: str, size_mb: int) -> None:
        if self._qemu_img:
            from drivers.kvm.disks import create_overlay

            if img.format not in ("qcow2", "raw"):
                raise HypervisorError(f"cannot use a {img.format} image as a backing file (qcow2 or raw only)")
            create_overlay(img.path, path, backing_format=img.format, size_mb=size_mb)
        elif self.simulated:
            _sparse(path, size_mb)
        else:
            raise HypervisorError("qemu-img not found (apt install qemu-utils)")

    def _from_snapshot(self, disk: InstanceDisk, path: str) -> None:
        """``disk`` as a copy of another guest's disk at one of its snapshots (a clone)."""
        from drivers.kvm.snapshots import copy_snapshot, snapshot_names

        src = disk.snapshot_source
        assert src is not None
        if os.path.exists(path):  # redelivered deploy: the copy was made (it is renamed into place last)
            return
        spath = self._disk_path(src.server_id, src.disk, existing=True)
        if not os.path.exists(spath):
            raise HypervisorError(f"disk {disk.id}: the snapshot's disk {src.disk.id} is not on this host ({spath})")
        if src.snapshot_id not in snapshot_names(spath):
            raise HypervisorError(f"disk {disk.id}: disk {src.disk.id} has no snapshot {src.snapshot_id}")
        copy_snapshot(spath, src.snapshot_id, path, disk.size_mb)

    def _data_disk(self, path: str, size_mb: int) -> None:
        if size_mb <= 0:
            raise HypervisorError("a data disk needs a positive size")
        if self._qemu_img:
            from drivers.kvm.disks import create_data_disk

            create_data_disk(path, size_mb)
        elif self.simulated:
            _sparse(path, size_mb)
        else:
            raise HypervisorError("qemu-img not found (apt install qemu-utils)")


def _write_nics(d: str, nics: tuple[InstanceNic, ...]) -> None:
    with open(os.path.join(d, "nics.json"), "w") as f:
        json.dump([dataclasses.asdict(n) for n in nics], f)


def _read_nics(d: str) -> tuple[InstanceNic, ...]:
    try:
        with open(os.path.join(d, "nics.json")) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return ()
    known = {f.name for f in dataclasses.fields(InstanceNic)}
    out = []
    for n in data if isinstance(data, list) else []:
        if isinstance(n, dict) and n.get("mac"):
            try:
                out.append(InstanceNic(**{k: v for k, v in n.items() if k in known}))
            except TypeError:
                continue
    return tuple(out)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _sparse(path: str, size_mb: int) -> None:
    with open(path, "wb") as f:
        f.truncate(size_mb << 20)


__all__ = ["KvmInstances", "domain_name", "hostname_of", "tap_name"]
