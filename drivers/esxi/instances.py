"""ESXi instances end to end: a server's VM from an image (uploaded to a datastore) or a template.

    hosted = EsxiDriver.for_host(env)        # a HostedDriver (drivers.base), run by the executor
    out = hosted.deploy(spec)                # InstanceSpec -> Deployed; the VM's instance UUID is the server id
    hosted.remove(spec.server_id)

The root disk comes from the server's image in one of two ways:

- the image has the property ``vmware_template`` (a template's name or ``vm-NN`` id in the same
  datacenter): the template is cloned onto this host and datastore (vCenter copies the disks);
- otherwise the image file from the controller's image cache is converted to a hosted sparse
  VMDK (``qemu-img``), uploaded through the datastore HTTP API (``PUT /folder/...``) next to the
  VM, and copied into a thin datastore disk by the VirtualDiskManager (what ``govc import.vmdk``
  does without an OVF), then grown to the size the server asked for.

Data disks are new thin disks. NICs are VMXNET3 with the MAC the region allocated, on the port
group the NIC's wire names on this host (``bridge``), else the config's ``network``, else
``VM Network``. A deploy that finds a VM of an earlier, interrupted attempt (same instance UUID)
destroys it first, so a redelivered work item ends like a first one. vCenter keeps the VMs, so
``persist``/``restore`` have nothing to do.
"""
from __future__ import annotations

import http.client
import logging
import os
import re
import shutil
import ssl
import subprocess
import tempfile
import urllib.parse
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pyVmomi import vim

from drivers.base import (
    Capability,
    Deployed,
    HostEnv,
    HypervisorError,
    InstanceDisk,
    InstanceNic,
    InstanceSpec,
    KeptElsewhere,
    NoDiskVerbs,
    delete_guest,
)
from drivers.esxi.inventory import HostRefs, collect, props

if TYPE_CHECKING:  # the driver imports this module (for_host): only the type comes back
    from drivers.esxi.driver import EsxiDriver

log = logging.getLogger(__name__)

TEMPLATE_PROPERTY = "vmware_template"
KEPT_DIR = "cloudpods-disks"  # where data disks that outlive their server are moved, per datastore
_CONTROLLER_KEY = -100
_UPLOAD_CHUNK = 1 << 20

GUEST_IDS = {"linux": "otherLinux64Guest", "windows": "windows9Server64Guest"}


def vm_dir(name: str, sid: str) -> str:
    """The VM's directory on the datastore: the server name plus a short id (names may repeat)."""
    base = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-._")[:50] or "vm"
    return f"{base}-{sid[:8]}"


def _unit(index: int) -> int:
    """SCSI unit numbers 0..15 skip 7 (the controller's own)."""
    if index >= 15:
        raise HypervisorError(f"esxi: disk index {index}: at most 15 disks on one SCSI controller")
    return index if index < 7 else index + 1


def vm_config(name: str, sid: str, vcpu: int, memory_mb: int, datastore: str, devices: list[Any],
              *, directory: str = "", os_type: str = "") -> Any:
    vmx = f"[{datastore}] {directory}/{directory}.vmx" if directory else f"[{datastore}]"
    return vim.vm.ConfigSpec(
        name=name, instanceUuid=sid, numCPUs=vcpu, memoryMB=memory_mb,
        guestId=GUEST_IDS.get(os_type.lower(), "otherGuest64"), annotation=f"cloudpods-one server {sid}",
        files=vim.vm.FileInfo(vmPathName=vmx), deviceChange=devices)


def disk_file(device: Any) -> str:
    """A virtual disk's file, ``[datastore] dir/name.vmdk`` ('' for a backing without a file)."""
    return str(getattr(device.backing, "fileName", "") or "")


def _add(device: Any, create: bool = False) -> Any:
    spec = vim.vm.device.VirtualDeviceSpec(operation=vim.vm.device.VirtualDeviceSpec.Operation.add, device=device)
    if create:
        spec.fileOperation = vim.vm.device.VirtualDeviceSpec.FileOperation.create
    return spec


def _scsi_controller() -> Any:
    return _add(vim.vm.device.VirtualLsiLogicController(
        key=_CONTROLLER_KEY, busNumber=0, sharedBus=vim.vm.device.VirtualSCSIController.Sharing.noSharing))


def _disk(key: int, controller: int, index: int, size_mb: int, file: str, *, create: bool) -> Any:
    backing = vim.vm.device.VirtualDisk.FlatVer2BackingInfo(fileName=file, diskMode="persistent",
                                                            thinProvisioned=True)
    return _add(vim.vm.device.VirtualDisk(key=key, controllerKey=controller, unitNumber=_unit(index),
                                          capacityInKB=size_mb * 1024, backing=backing), create=create)


class EsxiInstances(KeptElsewhere, NoDiskVerbs):
    """The ``HostedDriver`` of ESXi: instances built from ``InstanceSpec`` on an ``EsxiDriver``. vCenter
    keeps the VMs' definitions: nothing to re-define after a restart, the sync reads it."""

    name = "esxi"

    def __init__(self, driver: EsxiDriver, env: HostEnv) -> None:
        self.driver = driver
        self.env = env
        self.version = driver.version
        self.capabilities: frozenset[Capability] = frozenset(driver.capabilities)
        self.session = driver.session

    # --- HostedDriver ---------------------------------------------------------------------------
    def validate(self) -> None:
        """Log in, find the host and a datastore (each failure names the fix); a host vCenter has
        lost (disconnected, not responding) does not validate, so the host goes offline here too."""
        r = self.driver.refs()
        state = self.session.call(lambda si: props(si, [r.host], ["runtime.connectionState"]), "read the host")
        conn = str(state[0].get("runtime.connectionState", "connected")) if state else "gone"
        if conn != "connected":
            raise HypervisorError(f"esxi: host {r.name} is {conn} in vCenter")
        self.driver.default_datastore()

    def close(self) -> None:
        self.driver.close()

    def deploy(self, spec: InstanceSpec) -> Deployed:
        sid = spec.server_id
        self.remove(sid)  # leftovers of an interrupted attempt
        r = self.driver.refs()
        ds = self.driver.default_datastore()
        directory = vm_dir(spec.name, sid)
        root = next((d for d in spec.disks if d.index == 0), None)
        image = self.env.images.get(root.image_id) if root is not None and root.image_id else None
        template = str((image.properties if image is not None else {}).get(TEMPLATE_PROPERTY) or "")
        try:
            if template:
                self._clone(r, spec, ds, template)
            else:
                self._create(r, spec, ds, directory, root, image)
            paths = self._resize_and_paths(sid, spec.disks)
            if spec.auto_start:
                self.driver.start_guest(sid)
            guest = self.driver.get_guest(sid)
        except BaseException:
            try:
                self.remove(sid)
            except Exception as exc:  # the original failure matters more
                log.warning("cleaning up VM of server %s after a failed deploy: %s", sid, exc)
            raise
        return Deployed(guest_id=sid, status=guest.status, disks=tuple(paths))

    def remove(self, server_id: str, nics: Any = None) -> bool:
        return delete_guest(self.driver, server_id)

    def reconfigure(self, server_id: str, *, vcpu: int, memory_mb: int) -> None:
        self.driver.reconfigure(server_id, vcpu=vcpu, memory_mb=memory_mb)

    def keep_disks(self, server_id: str, disks: list[InstanceDisk]) -> list[tuple[str, str]]:
        """Before ``remove``: detach these data disks and move their files to
        ``[datastore] cloudpods-disks/<disk id>.vmdk``, out of the VM that Destroy deletes with its
        disks. Already moved (a redelivered item): the same answer."""
        out: list[tuple[str, str]] = []

        def run(si: Any) -> None:
            ref = self.driver.vm_ref(si, server_id)
            dc = self.driver.refs().datacenter
            devices = [d for d in ref.config.hardware.device if isinstance(d, vim.vm.device.VirtualDisk)]
            by_file = {disk_file(d): d for d in devices}
            content = si.RetrieveContent()
            for disk in disks:
                if not re.fullmatch(r"[0-9A-Za-z-]{1,64}", disk.id):
                    raise HypervisorError(f"bad disk id {disk.id!r}")
                dev = by_file.get(disk.access_path)
                if dev is None:
                    if f"/{KEPT_DIR}/" in disk.access_path or disk.access_path.endswith(f"] {KEPT_DIR}/{disk.id}.vmdk"):
                        out.append((disk.id, disk.access_path))
                        continue
                    raise HypervisorError(f"esxi: disk {disk.id} ({disk.access_path or 'no path'}) is not attached "
                                          f"to the VM of server {server_id}")
                src = disk_file(dev)
                ds = src[1:src.index("]")]
                dst = f"[{ds}] {KEPT_DIR}/{disk.id}.vmdk"
                remove = vim.vm.device.VirtualDeviceSpec(operation=vim.vm.device.VirtualDeviceSpec.Operation.remove,
                                                         device=dev)
                self.session.wait(ref.ReconfigVM_Task(spec=vim.vm.ConfigSpec(deviceChange=[remove])),
                                  f"detach disk {disk.id}")
                try:
                    content.fileManager.MakeDirectory(name=f"[{ds}] {KEPT_DIR}", datacenter=dc,
                                                      createParentDirectories=True)
                except vim.fault.FileAlreadyExists:
                    pass
                self.session.wait(content.virtualDiskManager.MoveVirtualDisk_Task(
                    sourceName=src, sourceDatacenter=dc, destName=dst, destDatacenter=dc, force=False),
                    f"move disk {disk.id}")
                out.append((disk.id, dst))

        self.session.call(run, f"keep the data disks of {server_id}")
        return out

    def delete_disk(self, disk: InstanceDisk) -> bool:
        """A deleted disk's file goes (drivers.base.DiskFiles): only a disk ``keep_disks`` moved to
        ``[datastore] cloudpods-disks/`` (a VM's own disks go with the VM); True if it existed."""
        path = disk.access_path
        if not path:
            return False
        if not re.fullmatch(rf"\[[^\]]+\] {KEPT_DIR}/[0-9A-Za-z-]{{1,64}}\.vmdk", path):
            raise HypervisorError(f"disk {disk.id}: {path} is not a disk this driver kept; left in place")

        def run(si: Any) -> bool:
            try:
                self.session.wait(si.RetrieveContent().virtualDiskManager.DeleteVirtualDisk_Task(
                    name=path, datacenter=self.driver.refs().datacenter), f"delete disk {disk.id}")
            except HypervisorError as exc:
                if "FileNotFound" in str(exc):
                    return False
                raise
            return True

        return bool(self.session.call(run, f"delete disk {disk.id}"))

    # --- building a VM ---------------------------------------------------------------------------
    def _nic_devices(self, si: Any, r: HostRefs, nics: Sequence[InstanceNic]) -> list[Any]:
        if not nics:
            return []
        host = props(si, [r.host], ["network"])[0]
        nets = props(si, list(host.get("network", [])), ["name"])
        by_name = {str(n.get("name")): n.ref for n in nets}
        out = []
        for i, nic in enumerate(sorted(nics, key=lambda n: n.index)):
            want = nic.bridge or self.driver.cfg.network or "VM Network"
            net = by_name.get(want)
            if net is None:
                raise HypervisorError(f"esxi: host {r.name} has no port group {want!r} for NIC {nic.index} "
                                      f"(it has: {', '.join(sorted(by_name)) or 'none'}); name it as the wire's "
                                      "bridge on this host, or set the host's network option")
            if isinstance(net, vim.dvs.DistributedVirtualPortgroup):
                dvs = net.config.distributedVirtualSwitch
                if dvs is None:
                    raise HypervisorError(f"esxi: port group {want!r} belongs to no distributed switch")
                backing: Any = vim.vm.device.VirtualEthernetCard.DistributedVirtualPortBackingInfo(
                    port=vim.dvs.PortConnection(portgroupKey=net.key, switchUuid=dvs.uuid))
            else:
                backing = vim.vm.device.VirtualEthernetCard.NetworkBackingInfo(deviceName=want, network=net)
            card = vim.vm.device.VirtualVmxnet3(
                key=-(200 + i), addressType="manual", macAddress=nic.mac, backing=backing,
                connectable=vim.vm.device.VirtualDevice.ConnectInfo(startConnected=True, allowGuestControl=True,
                                                                    connected=True))
            out.append(_add(card))
        return out

    def _data_disks(self, spec: InstanceSpec, ds: str, directory: str, controller: int) -> list[Any]:
        return [_disk(-(300 + d.index), controller, d.index, max(d.size_mb, 1),
                      f"[{ds}] {directory}/{directory}_{d.index}.vmdk", create=True)
                for d in spec.disks if d.index != 0]

    def _create(self, r: HostRefs, spec: InstanceSpec, ds: str, directory: str, root: InstanceDisk | None,
                image: Any) -> None:
        devices = [_scsi_controller()]
        root_file = f"[{ds}] {directory}/{directory}.vmdk"
        if root is not None and image is not None:
            self._import_disk(r, image, ds, directory, root_file)
            devices.append(_disk(-300, _CONTROLLER_KEY, 0, max(root.size_mb, image.virtual_size_mb, 1), root_file,
                                 create=False))
        elif root is not None:
            devices.append(_disk(-300, _CONTROLLER_KEY, 0, max(root.size_mb, 1), root_file, create=True))
        devices += self._data_disks(spec, ds, directory, _CONTROLLER_KEY)

        def create(si: Any) -> None:
            cfg = vm_config(spec.name, spec.server_id, spec.vcpu, spec.memory_mb, ds,
                            devices + self._nic_devices(si, r, spec.nics), directory=directory, os_type=spec.os_type)
            try:
                self.session.wait(r.vm_folder.CreateVM_Task(config=cfg, pool=r.pool, host=r.host),
                                  f"create VM {spec.name}")
            except HypervisorError as exc:
                if "DuplicateName" not in str(exc):
                    raise
                cfg.name = directory  # another VM has this name in the folder: the unique one
                self.session.wait(r.vm_folder.CreateVM_Task(config=cfg, pool=r.pool, host=r.host),
                                  f"create VM {directory}")

        self.session.call(create, f"create VM {spec.name}")

    def _clone(self, r: HostRefs, spec: InstanceSpec, ds: str, template: str) -> None:
        def clone(si: Any) -> None:
            found = [o for o in collect(si, r.datacenter, vim.VirtualMachine, ["name", "config.template"])
                     if template in (o.get("name"), o.id)]
            if not found:
                raise HypervisorError(f"esxi: no template {template!r} in datacenter {r.datacenter_name} "
                                      f"(the image's {TEMPLATE_PROPERTY} property)")
            src = sorted(found, key=lambda o: not o.get("config.template", False))[0].ref
            host = props(si, [r.host], ["datastore"])[0]
            ds_ref = next((d.ref for d in props(si, list(host.get("datastore", [])), ["name"]) if d.get("name") == ds),
                          None)
            clone_spec = vim.vm.CloneSpec(
                location=vim.vm.RelocateSpec(pool=r.pool, host=r.host, datastore=ds_ref), powerOn=False,
                template=False, config=vim.vm.ConfigSpec(instanceUuid=spec.server_id, numCPUs=spec.vcpu,
                                                         memoryMB=spec.memory_mb,
                                                         annotation=f"cloudpods-one server {spec.server_id}"))
            vm = self.session.wait(src.CloneVM_Task(folder=r.vm_folder, name=spec.name, spec=clone_spec),
                                   f"clone {template} into {spec.name}")
            # the template's NICs go, ours come; CPU/memory again (not every vCenter applies a clone's config);
            # data disks beyond the template's root are added blank
            devices = vm.config.hardware.device
            changes = [vim.vm.device.VirtualDeviceSpec(operation=vim.vm.device.VirtualDeviceSpec.Operation.remove,
                                                       device=d)
                       for d in devices if isinstance(d, vim.vm.device.VirtualEthernetCard)]
            changes += self._nic_devices(si, r, spec.nics)
            controllers = [d for d in devices if isinstance(d, vim.vm.device.VirtualSCSIController)]
            if any(d.index != 0 for d in spec.disks):
                if controllers:
                    ctl = int(controllers[0].key)
                else:
                    changes.append(_scsi_controller())
                    ctl = _CONTROLLER_KEY
                vmx = str(vm.config.files.vmPathName)  # "[ds] dir/name.vmx": data disks go next to it
                directory = vmx.split("] ", 1)[-1].rsplit("/", 1)[0]
                changes += self._data_disks(spec, vmx[1:vmx.index("]")], directory, ctl)
            cfg = vim.vm.ConfigSpec(numCPUs=spec.vcpu, memoryMB=spec.memory_mb, deviceChange=changes)
            self.session.wait(vm.ReconfigVM_Task(spec=cfg), f"configure the clone {spec.name}")

        self.session.call(clone, f"clone {template}")

    def _resize_and_paths(self, sid: str, disks: Sequence[InstanceDisk]) -> list[tuple[str, str]]:
        """Grow disks smaller than asked (an image's own size, a template's disk); [(disk id, file)]."""
        def run(si: Any) -> list[tuple[str, str]]:
            ref = self.driver.vm_ref(si, sid)
            vdisks = sorted((d for d in ref.config.hardware.device if isinstance(d, vim.vm.device.VirtualDisk)),
                            key=lambda d: (int(d.controllerKey or 0), int(d.unitNumber or 0)))
            edits, out = [], []
            for want, dev in zip(sorted(disks, key=lambda d: d.index), vdisks, strict=False):
                if want.size_mb and int(dev.capacityInKB or 0) < want.size_mb * 1024:
                    dev.capacityInKB = want.size_mb * 1024
                    edits.append(vim.vm.device.VirtualDeviceSpec(
                        operation=vim.vm.device.VirtualDeviceSpec.Operation.edit, device=dev))
                out.append((want.id, disk_file(dev)))
            if edits:
                self.session.wait(ref.ReconfigVM_Task(spec=vim.vm.ConfigSpec(deviceChange=edits)), "grow disks")
            return out

        return self.session.call(run, f"size the disks of {sid}")

    # --- an image onto a datastore ---------------------------------------------------------------
    def _import_disk(self, r: HostRefs, image: Any, ds: str, directory: str, dest: str) -> None:
        """The image as a datastore disk at ``dest``: convert, upload, copy (the upload removed).

        The upload is a hosted ``monolithicFlat`` VMDK (a descriptor and its ``-flat`` extent:
        every vSphere endpoint accepts both files over /folder); CopyVirtualDisk then turns it into a
        datastore disk (thin when talking to ESXi directly; vCenter refuses a destSpec)."""
        qemu_img = shutil.which("qemu-img")
        if qemu_img is None:
            raise HypervisorError("esxi: qemu-img not found on the controller (apt install qemu-utils): "
                                  "it converts images to VMDK for upload")
        staging = os.path.join(self.env.data_dir, "uploads")
        os.makedirs(staging, mode=0o700, exist_ok=True)
        stem = f"{directory}-upload"
        with tempfile.TemporaryDirectory(dir=staging) as tmp:
            local = os.path.join(tmp, f"{stem}.vmdk")
            src_fmt = image.format if image.format in ("qcow2", "raw", "vmdk", "vpc", "vhdx") else "raw"
            proc = subprocess.run([qemu_img, "convert", "-q", "-f", src_fmt, "-O", "vmdk", "-o",
                                   "subformat=monolithicFlat", image.path, local],
                                  capture_output=True, text=True, timeout=3600)
            if proc.returncode != 0:
                raise HypervisorError(f"esxi: converting the image to VMDK failed: {proc.stderr.strip()[:500]}")
            for name in (f"{stem}-flat.vmdk", f"{stem}.vmdk"):
                self._upload(r, ds, f"{directory}/{name}", os.path.join(tmp, name))
        staged = f"[{ds}] {directory}/{stem}.vmdk"

        def copy(si: Any) -> None:
            content = si.RetrieveContent()
            vdm = content.virtualDiskManager
            try:  # a leftover of an interrupted attempt would make the copy fail
                self.session.wait(vdm.DeleteVirtualDisk_Task(name=dest, datacenter=r.datacenter), "remove leftover")
            except HypervisorError:
                pass
            direct = str(content.about.apiType) == "HostAgent"
            spec = vim.VirtualDiskManager.FileBackedVirtualDiskSpec(diskType="thin", adapterType="lsiLogic") \
                if direct else None
            self.session.wait(vdm.CopyVirtualDisk_Task(sourceName=staged, sourceDatacenter=r.datacenter,
                                                       destName=dest, destDatacenter=r.datacenter, destSpec=spec),
                              f"copy the image into {dest}")
            try:
                self.session.wait(vdm.DeleteVirtualDisk_Task(name=staged, datacenter=r.datacenter),
                                  "remove the uploaded image")
            except HypervisorError as exc:
                log.warning("esxi: the uploaded %s stays on the datastore: %s", staged, exc)

        self.session.call(copy, f"import the image to {dest}")

    def _upload(self, r: HostRefs, ds: str, path: str, local: str) -> None:
        """PUT a file through the datastore HTTP API, streamed, with the session's cookie."""
        cfg = self.driver.cfg
        query = urllib.parse.urlencode({"dcPath": r.datacenter_name, "dsName": ds})
        url = f"/folder/{urllib.parse.quote(path)}?{query}"
        ctx = ssl._create_unverified_context() if cfg.insecure else ssl.create_default_context()
        cookie = str(getattr(self.session.si._stub, "cookie", "") or "").split(";", 1)[0]
        size = os.path.getsize(local)
        conn = http.client.HTTPSConnection(cfg.host, cfg.port, context=ctx, timeout=cfg.http_timeout_s)
        try:
            with open(local, "rb") as fh:
                conn.request("PUT", url, body=fh, headers={"Content-Type": "application/octet-stream",
                                                          "Content-Length": str(size), "Cookie": cookie})
                resp = conn.getresponse()
                body = resp.read(2000)
            if resp.status not in (200, 201, 204):
                raise HypervisorError(f"esxi: uploading to [{ds}] {path} failed: HTTP {resp.status} "
                                      f"{body.decode(errors='replace')[:300]}")
        except (OSError, http.client.HTTPException) as exc:
            raise HypervisorError(f"esxi: uploading to [{ds}] {path} failed: {exc}") from None
        finally:
            conn.close()
        log.info("esxi: uploaded %d bytes to [%s] %s", size, ds, path)
