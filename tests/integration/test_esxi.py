"""drivers/esxi against govmomi's vSphere simulator (PEERS.md "VMware"; tests/support/vcsim.py).

The simulator is a real SOAP server speaking the vSphere API 6.5: pyvmomi logs in, reads with
property collectors, runs tasks and uploads files to its datastores over HTTP as to a vCenter.
"""
from __future__ import annotations

import http.client
import ssl
import subprocess
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.peers import need, need_binary
from tests.support.vcsim import Vcsim, need_vcsim

pytest.importorskip("pyVmomi", reason="needs pyvmomi (pip install cloudpods-one[esxi])")

from pyVmomi import vim

from core.agent.handlers import handle
from drivers.base import (
    Capability,
    DriverUnavailable,
    GuestNotFound,
    GuestStatus,
    HostEnv,
    HypervisorError,
    InstanceDisk,
    InstanceNic,
    InstanceSpec,
    LocalImage,
    NotSupported,
)
from drivers.esxi.inventory import STATUS_MAP, read_inventory, vm_status
from drivers.esxi.session import EsxiConfig, EsxiLoginError, EsxiUnreachable, Session
from drivers.registry import get_driver

IMAGE_MB = 8


class DirImages:
    """An ImageSource over image files in a directory (the executor's image cache protocol)."""

    def __init__(self, root: Path, templates: dict[str, str]) -> None:
        self.root, self.templates = root, templates

    def get(self, image_id: str) -> LocalImage:
        props = {"vmware_template": self.templates[image_id]} if image_id in self.templates else {}
        return LocalImage(path=str(self.root / "tiny.qcow2"), format="qcow2", properties=props,
                          virtual_size_mb=IMAGE_MB)


class NoNetwork:
    """vSphere port groups need no host-side plumbing from the controller."""

    def plug(self, nic: InstanceNic, hostname: str | None = None) -> str:
        return nic.bridge

    def unplug(self, mac: str) -> None:
        return None


@pytest.fixture(scope="module")
def sim() -> Iterator[Vcsim]:
    need_vcsim()
    with Vcsim(username="admin", password="s3cret-pw") as s:
        yield s


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    need_binary("qemu-img", "qemu-utils")
    d = tmp_path_factory.mktemp("esxi-images")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(d / "tiny.qcow2"), f"{IMAGE_MB}M"], check=True)
    return d


@pytest.fixture
def hosted(sim: Vcsim, image_dir: Path, tmp_path: Path) -> Iterator[object]:
    env = HostEnv(uri="", data_dir=str(tmp_path), instances_dir=str(tmp_path / "instances"),
                  images=DirImages(image_dir, {"tmpl-img": "DC0_H0_VM0"}), network=NoNetwork(),
                  options=sim.config(esxi_host="DC0_H0"))
    h = get_driver("esxi").for_host(env)
    h.validate()
    try:
        yield h
    finally:
        h.close()


def session(sim: Vcsim, **over: object) -> Session:
    return Session(EsxiConfig.parse(sim.config(**over)))


def spec(name: str, *, disks: tuple[InstanceDisk, ...] | None = None, start: bool = True) -> InstanceSpec:
    sid = str(uuid.uuid4())
    return InstanceSpec(
        server_id=sid, name=name, vcpu=2, memory_mb=512, auto_start=start,
        disks=disks if disks is not None else (InstanceDisk(id=f"{sid[:8]}-root", index=0, size_mb=64,
                                                            image_id="img"),
                                               InstanceDisk(id=f"{sid[:8]}-data", index=1, size_mb=128)),
        nics=(InstanceNic(index=0, mac="00:22:4d:" + ":".join(f"{b:02x}" for b in uuid.UUID(sid).bytes[:3]),
                          ip="10.9.0.5", mask=24, bridge="DC0_DVPG0"),))


def datastore_file_size(sim: Vcsim, path: str) -> int | None:
    """Size of ``[LocalDS_0] path`` through the datastore HTTP API (None: no such file)."""
    q = urllib.parse.urlencode({"dcPath": "DC0", "dsName": "LocalDS_0"})
    conn = http.client.HTTPSConnection(sim.host, sim.port, context=ssl._create_unverified_context(), timeout=30)
    try:
        conn.request("GET", f"/folder/{urllib.parse.quote(path)}?{q}")
        r = conn.getresponse()
        body = r.read()
        return len(body) if r.status == 200 else None
    finally:
        conn.close()


# --- connecting -------------------------------------------------------------------------------------

def test_wrong_password_is_one_clear_error(sim: Vcsim) -> None:
    with pytest.raises(EsxiLoginError) as exc:
        _ = session(sim, password="not-the-password").si
    msg = str(exc.value)
    assert "wrong username or password" in msg and "admin" in msg and "not-the-password" not in msg


def test_unreachable_endpoint_names_the_address(sim: Vcsim) -> None:
    from tests.support.vcsim import free_port

    port = free_port()
    with pytest.raises(EsxiUnreachable) as exc:
        _ = session(sim, port=port, http_timeout_s=5).si
    assert f"127.0.0.1:{port}" in str(exc.value) and "check host and port" in str(exc.value)


def test_a_self_signed_certificate_is_refused_unless_insecure(sim: Vcsim) -> None:
    with pytest.raises(EsxiUnreachable) as exc:
        _ = session(sim, insecure=False).si
    assert "insecure=true" in str(exc.value)


def test_config_is_validated_at_the_edge(sim: Vcsim) -> None:
    from drivers.base import InvalidSpec

    with pytest.raises(InvalidSpec, match="password"):
        EsxiConfig.parse({"host": "h", "username": "u"})
    with pytest.raises(InvalidSpec, match="unknown key"):
        EsxiConfig.parse({**sim.config(), "pasword": "x"})
    with pytest.raises(InvalidSpec, match="port"):
        EsxiConfig.parse({**sim.config(), "port": "http"})
    assert "s3cret-pw" not in repr(EsxiConfig.parse(sim.config()))


def test_several_hosts_and_none_named_is_refused_naming_them(sim: Vcsim, tmp_path: Path) -> None:
    env = HostEnv(uri="", data_dir=str(tmp_path), instances_dir=str(tmp_path), images=DirImages(tmp_path, {}),
                  network=NoNetwork(), options=sim.config())
    h = get_driver("esxi").for_host(env)
    try:
        with pytest.raises(HypervisorError, match="set esxi_host to one of .*DC0_H0"):
            h.validate()
    finally:
        h.close()


# --- inventory ---------------------------------------------------------------------------------------

def test_inventory_reads_every_kind_of_object(sim: Vcsim) -> None:
    with session(sim) as s:
        inv = read_inventory(s)
    assert "vCenter" in inv.about
    assert [d.name for d in inv.datacenters] == ["DC0"]
    assert [c.name for c in inv.clusters] == ["DC0_C0"]
    hosts = {h.name: h for h in inv.hosts}
    assert set(hosts) == {"DC0_H0", "DC0_C0_H0", "DC0_C0_H1", "DC0_C0_H2"}
    assert hosts["DC0_C0_H1"].cluster == "DC0_C0" and hosts["DC0_H0"].cluster == ""
    h = hosts["DC0_H0"]
    assert h.cpu_count > 0 and h.mem_mb > 1000 and h.cpu_mhz > 0 and h.online and h.uuid
    ds = {d.name: d for d in inv.datastores}
    assert ds["LocalDS_0"].capacity_mb > ds["LocalDS_0"].free_mb > 0
    assert ds["LocalDS_0"].id in h.datastores
    nets = {n.name: n for n in inv.networks}
    assert nets["VM Network"].kind == "network" and nets["DC0_DVPG0"].kind == "dvportgroup"
    assert nets["DC0_DVPG0"].dvs_uuid and nets["DC0_DVPG0"].portgroup_key == nets["DC0_DVPG0"].id
    vms = {v.name: v for v in inv.vms}
    assert {"DC0_H0_VM0", "DC0_H0_VM1", "DC0_C0_RP0_VM0", "DC0_C0_RP0_VM1"} <= set(vms)
    vm = vms["DC0_H0_VM0"]
    assert vm.host == h.id and vm.instance_uuid and vm.vcpu >= 1 and vm.memory_mb >= 1
    assert vm.disks and vm.disks[0].file.startswith("[LocalDS_0] ") and vm.disks[0].datastore == ds["LocalDS_0"].id
    assert vm.nics and vm.nics[0].network == "DC0_DVPG0"
    assert not inv.faults


def test_status_map_has_an_explicit_unknown() -> None:
    assert STATUS_MAP == {"poweredOn": GuestStatus.RUNNING, "poweredOff": GuestStatus.STOPPED,
                          "suspended": GuestStatus.SUSPENDED}
    assert vm_status("poweredOn", "inaccessible") is GuestStatus.UNKNOWN
    assert vm_status("somethingNew") is GuestStatus.UNKNOWN
    assert vm_status(None) is GuestStatus.UNKNOWN


def test_reading_twice_gives_the_same_inventory(sim: Vcsim) -> None:
    with session(sim) as s:
        a, b = read_inventory(s), read_inventory(s)
    # datastore free space is the one figure allowed to move between reads
    assert a.hosts == b.hosts and a.networks == b.networks and a.vms == b.vms and a.clusters == b.clusters
    assert [d.id for d in a.datastores] == [d.id for d in b.datastores]


def test_an_inaccessible_vm_is_a_fault_against_it_and_the_others_are_read() -> None:
    need_vcsim()
    with Vcsim(inaccessible_vm="DC0_C0_RP0_VM1") as s2, session(s2) as s:
        inv = read_inventory(s)
    names = {v.name for v in inv.vms}
    assert "DC0_C0_RP0_VM1" not in names
    assert {"DC0_H0_VM0", "DC0_H0_VM1", "DC0_C0_RP0_VM0"} <= names
    assert len(inv.hosts) == 4 and inv.datastores and inv.networks
    [fault] = inv.faults
    assert fault.kind == "vm" and fault.name == "DC0_C0_RP0_VM1" and fault.id.startswith("vm-")
    assert "config.instanceUuid" in fault.reason


def test_a_vm_deleted_behind_our_back_is_gone_from_the_next_read(sim: Vcsim, hosted: object) -> None:
    h = hosted
    sp = spec("behind-back", disks=(), start=False)
    h.deploy(sp)  # type: ignore[attr-defined]
    with session(sim) as s:
        assert any(v.instance_uuid == sp.server_id for v in read_inventory(s).vms)
        vm = s.si.RetrieveContent().searchIndex.FindByUuid(None, sp.server_id, True, True)
        s.wait(vm.Destroy_Task(), "destroy")  # another admin, straight in vCenter
        assert not any(v.instance_uuid == sp.server_id for v in read_inventory(s).vms)
    with pytest.raises(GuestNotFound):
        h.driver.get_guest(sp.server_id)  # type: ignore[attr-defined]
    # the work-item answer the region gets: the guest is absent (not an error, not a stale 'running')
    out = handle(h, "guest-status", {"server": {"id": sp.server_id}})  # type: ignore[arg-type]
    assert out["guest_status"] == "absent" and out["reason"]
    assert h.remove(sp.server_id) is False  # type: ignore[attr-defined]


# --- lifecycle through the host contract ---------------------------------------------------------------

def test_deploy_from_an_image_uploads_it_and_runs_the_vm(sim: Vcsim, hosted: object) -> None:
    h = hosted
    sp = spec("web 1")
    out = h.deploy(sp)  # type: ignore[attr-defined]
    assert out.guest_id == sp.server_id and out.status is GuestStatus.RUNNING
    paths = dict(out.disks)
    root = paths[sp.disks[0].id]
    assert root.startswith("[LocalDS_0] web-1-") and root.endswith(".vmdk")
    # the image's bytes are on the datastore (the -flat extent of the copied disk), the upload is gone
    rel = root.split("] ", 1)[1]
    assert datastore_file_size(sim, rel.replace(".vmdk", "-flat.vmdk")) == IMAGE_MB * 1024 * 1024
    assert datastore_file_size(sim, rel.replace(".vmdk", "-upload.vmdk")) is None
    g = h.driver.get_guest(sp.server_id)  # type: ignore[attr-defined]
    assert g.name == "web 1" and g.extra["vcpu"] == 2 and g.extra["memory_mb"] == 512
    with session(sim) as s:
        vm = next(v for v in read_inventory(s).vms if v.instance_uuid == sp.server_id)
    assert [d.size_mb for d in vm.disks] == [64, 128]  # the root grown from the image's 8 MB
    assert vm.nics[0].mac == sp.nics[0].mac and vm.nics[0].network == "DC0_DVPG0" and vm.host == "host-21"
    # a redelivered deploy ends in the same state (the first attempt's VM replaced, not doubled)
    h.deploy(sp)  # type: ignore[attr-defined]
    with session(sim) as s:
        assert sum(v.instance_uuid == sp.server_id for v in read_inventory(s).vms) == 1
    assert h.remove(sp.server_id) is True and h.remove(sp.server_id) is False  # type: ignore[attr-defined]
    assert datastore_file_size(sim, rel.replace(".vmdk", "-flat.vmdk")) is None


def test_power_verbs_and_change_config_through_the_work_item_handlers(hosted: object) -> None:
    h = hosted
    sp = spec("power", disks=())
    h.deploy(sp)  # type: ignore[attr-defined]
    ref = {"server": {"id": sp.server_id, "name": "power"}}

    def do(kind: str, **extra: object) -> dict[str, object]:
        return handle(h, kind, {**ref, **extra})  # type: ignore[arg-type]

    assert do("guest-status")["guest_status"] == "running"
    assert do("guest-suspend")["guest_status"] == "suspended"
    assert do("guest-resume")["guest_status"] == "running"
    assert do("guest-restart")["guest_status"] == "running"
    assert do("guest-reset")["guest_status"] == "running"
    with pytest.raises(HypervisorError, match="stop it before"):
        do("guest-change-config", vcpu_count=4, vmem_size=1024)
    assert do("guest-stop", timeout_secs=5)["guest_status"] == "stopped"
    assert do("guest-stop")["guest_status"] == "stopped"  # again: fine (a redelivered item)
    out = do("guest-change-config", vcpu_count=4, vmem_size=1024)
    assert (out["vcpu_count"], out["vmem_size"]) == (4, 1024)
    g = h.driver.get_guest(sp.server_id)  # type: ignore[attr-defined]
    assert (g.extra["vcpu"], g.extra["memory_mb"]) == (4, 1024)
    assert do("guest-start")["guest_status"] == "running"
    assert handle(h, "guest-delete", ref)["deleted"] is True  # type: ignore[arg-type]
    assert do("guest-status")["guest_status"] == "absent"


def test_clone_from_a_template_image(sim: Vcsim, hosted: object) -> None:
    h = hosted
    sp = spec("from-tmpl", disks=(InstanceDisk(id="t-root", index=0, size_mb=256, image_id="tmpl-img"),
                                  InstanceDisk(id="t-data", index=1, size_mb=32)))
    out = h.deploy(sp)  # type: ignore[attr-defined]
    assert out.status is GuestStatus.RUNNING
    with session(sim) as s:
        vm = next(v for v in read_inventory(s).vms if v.instance_uuid == sp.server_id)
    assert vm.name == "from-tmpl" and (vm.vcpu, vm.memory_mb) == (2, 512)
    assert [n.mac for n in vm.nics] == [sp.nics[0].mac]  # the template's NIC replaced by ours
    assert [d.size_mb for d in vm.disks] == [256, 32]
    assert h.remove(sp.server_id)  # type: ignore[attr-defined]


def test_a_missing_template_or_port_group_fails_naming_it_and_leaves_nothing(sim: Vcsim, hosted: object,
                                                                            image_dir: Path) -> None:
    h = hosted
    h.env.images.templates["ghost-img"] = "no-such-template"  # type: ignore[attr-defined]
    sp = spec("ghost", disks=(InstanceDisk(id="g-root", index=0, size_mb=64, image_id="ghost-img"),))
    with pytest.raises(HypervisorError, match="no template 'no-such-template'"):
        h.deploy(sp)  # type: ignore[attr-defined]
    bad = InstanceSpec(**{**spec("nonet", disks=()).__dict__,
                          "nics": (InstanceNic(index=0, mac="00:22:4d:00:00:09", ip="10.9.0.9", mask=24,
                                               bridge="no-such-pg"),)})
    with pytest.raises(HypervisorError, match="no port group 'no-such-pg'.*DC0_DVPG0"):
        h.deploy(bad)  # type: ignore[attr-defined]
    with session(sim) as s:
        uuids = {v.instance_uuid for v in read_inventory(s).vms}
    assert sp.server_id not in uuids and bad.server_id not in uuids


def test_data_disks_kept_past_their_server_are_moved_out_of_the_vm(sim: Vcsim, hosted: object) -> None:
    h = hosted
    sp = spec("keeper")
    out = h.deploy(sp)  # type: ignore[attr-defined]
    data = sp.disks[1]
    kept = h.keep_disks(sp.server_id, [InstanceDisk(id=data.id, index=1, size_mb=128,  # type: ignore[attr-defined]
                                                    access_path=dict(out.disks)[data.id])])
    assert kept == [(data.id, f"[LocalDS_0] cloudpods-disks/{data.id}.vmdk")]
    assert h.remove(sp.server_id)  # type: ignore[attr-defined]
    assert datastore_file_size(sim, f"cloudpods-disks/{data.id}.vmdk") is not None
    # the disk deleted later: its file goes (once); a path the driver did not make is refused
    gone = InstanceDisk(id=data.id, index=1, size_mb=128, access_path=kept[0][1])
    assert handle(h, "disk-delete", {"disk": {"id": data.id, "index": 1, "size": 128,  # type: ignore[arg-type]
                                              "access_path": kept[0][1]}})["deleted"] is True
    assert datastore_file_size(sim, f"cloudpods-disks/{data.id}.vmdk") is None
    assert h.delete_disk(gone) is False  # type: ignore[attr-defined]
    with pytest.raises(HypervisorError, match="not a disk this driver kept"):
        h.delete_disk(InstanceDisk(id="x", index=1, size_mb=1,  # type: ignore[attr-defined]
                                   access_path="[LocalDS_0] DC0_H0_VM0/disk1.vmdk"))


def test_capabilities_are_declared_and_the_rest_refused(hosted: object) -> None:
    h = hosted
    caps = h.capabilities  # type: ignore[attr-defined]
    assert {Capability.SUSPEND, Capability.RESET, Capability.REBOOT, Capability.CHANGE_CONFIG} <= caps
    assert Capability.ATTACH_DISK not in caps and Capability.COLD_MIGRATE not in caps
    with pytest.raises(NotSupported):
        h.rebuild_root(spec("x"))  # type: ignore[attr-defined]


def test_a_missing_sdk_is_driver_unavailable_naming_pyvmomi() -> None:
    code = ("import sys; sys.modules['pyVmomi'] = None; sys.modules['pyVim'] = None\n"
            "from drivers.registry import get_driver\n"
            "from drivers.base import DriverUnavailable\n"
            "try:\n    get_driver('esxi')\nexcept DriverUnavailable as e:\n    print(e)\n")
    r = subprocess.run([__import__("sys").executable, "-c", code], capture_output=True, text=True, timeout=60,
                       cwd=Path(__file__).resolve().parents[2])
    need(r.returncode == 0, r.stderr)
    assert r.stdout.strip() == "esxi needs pyvmomi", r.stdout + r.stderr
    assert DriverUnavailable  # the class the message came from


def test_vm_state_is_what_vcenter_says(sim: Vcsim, hosted: object) -> None:
    """A VM powered off in vCenter directly reads as stopped (no cached state in the driver)."""
    h = hosted
    sp = spec("outside", disks=())
    h.deploy(sp)  # type: ignore[attr-defined]
    with session(sim) as s:
        vm = s.si.RetrieveContent().searchIndex.FindByUuid(None, sp.server_id, True, True)
        s.wait(vm.PowerOffVM_Task(), "power off")
        assert isinstance(vm, vim.VirtualMachine)
    assert h.driver.get_guest(sp.server_id).status is GuestStatus.STOPPED  # type: ignore[attr-defined]
    assert h.remove(sp.server_id)  # type: ignore[attr-defined]


def test_a_device_change_made_in_vcenter_shows_at_the_next_read(sim: Vcsim, hosted: object) -> None:
    """Device lists are re-read only for VMs whose config version moved: a change must still show."""
    h = hosted
    sp = spec("devchange", disks=(InstanceDisk(id="dc-root", index=0, size_mb=16),), start=False)
    h.deploy(sp)  # type: ignore[attr-defined]
    with session(sim) as s:
        before = next(v for v in read_inventory(s).vms if v.instance_uuid == sp.server_id)
        vm = s.si.RetrieveContent().searchIndex.FindByUuid(None, sp.server_id, True, True)
        ctl = next(d for d in vm.config.hardware.device if isinstance(d, vim.vm.device.VirtualSCSIController))
        disk = vim.vm.device.VirtualDisk(key=-1, controllerKey=ctl.key, unitNumber=3, capacityInKB=8 * 1024,
                                         backing=vim.vm.device.VirtualDisk.FlatVer2BackingInfo(
                                             fileName="[LocalDS_0]", diskMode="persistent"))
        add = vim.vm.device.VirtualDeviceSpec(operation="add", fileOperation="create", device=disk)
        s.wait(vm.ReconfigVM_Task(spec=vim.vm.ConfigSpec(deviceChange=[add])), "add a disk")
        after = next(v for v in read_inventory(s).vms if v.instance_uuid == sp.server_id)
    assert len(after.disks) == len(before.disks) + 1 and after.disks[-1].size_mb == 8
    assert h.remove(sp.server_id)  # type: ignore[attr-defined]
