"""KVM attach-disk, detach-disk and rebuild-root on libvirt's test driver (a node file per test).

libvirt's test driver has no device calls (virDomainAttachDeviceFlags is unsupported there), so a
simulated host changes a running guest's disks in its definition only and does not declare
``attach_disk_hot``; the hot-plug path runs against real qemu in tests/integration/test_agent_real.py.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from drivers.base import (
    Capability,
    GuestStatus,
    HostEnv,
    HypervisorError,
    InstanceDisk,
    InstanceNic,
    InstanceSpec,
    LocalImage,
)

libvirt = pytest.importorskip("libvirt", reason="libvirt-python not installed (pip install '.[kvm]')")
from drivers.kvm.driver import KvmDriver  # noqa: E402
from drivers.kvm.xml import parse_disks  # noqa: E402

pytestmark = pytest.mark.skipif(shutil.which("qemu-img") is None, reason="qemu-img missing (apt install qemu-utils)")


class Net:
    def plug(self, nic: InstanceNic, hostname: str | None = None) -> str:
        return "br-sim"

    def unplug(self, mac: str) -> None:
        pass


class Images:
    """Two base images, as the agent's image cache would hand them out."""

    def __init__(self, root: Path) -> None:
        self.images: dict[str, LocalImage] = {}
        for name in ("cirros", "debian"):
            path = root / f"{name}.qcow2"
            subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "16M"], check=True)
            self.images[name] = LocalImage(path=str(path), format="qcow2", properties={}, virtual_size_mb=16)

    def get(self, image_id: str) -> LocalImage:
        return self.images[image_id]


@pytest.fixture
def h(node_uri: str, tmp_path: Path) -> Any:
    env = HostEnv(uri=node_uri, data_dir=str(tmp_path), instances_dir=str(tmp_path / "instances"),
                  images=Images(tmp_path), network=Net(), domain_type="test", stop_timeout_s=1)
    hosted = KvmDriver.for_host(env)
    yield hosted
    hosted.close()


def instance(**kw: Any) -> InstanceSpec:
    args: dict[str, Any] = {
        "server_id": str(uuid.uuid4()), "name": "web", "vcpu": 1, "memory_mb": 128, "auto_start": True,
        "disks": (InstanceDisk(id=str(uuid.uuid4()), index=0, size_mb=16, image_id="cirros"),),
        "nics": (InstanceNic(index=0, mac="52:54:00:12:34:56", ip="10.0.0.5", mask=24),),
        "ssh_keys": ("ssh-ed25519 AAAAfirst first@key",),
    }
    return InstanceSpec(**(args | kw))


def data_disk(index: int = 1, **kw: Any) -> InstanceDisk:
    return InstanceDisk(**({"id": str(uuid.uuid4()), "index": index, "size_mb": 8} | kw))


def disks(h: Any, sid: str, *, live: bool) -> dict[str, str]:
    flags = 0 if live else libvirt.VIR_DOMAIN_XML_INACTIVE
    return {d.path: d.dev for d in parse_disks(h.driver.host.lookup(sid).XMLDesc(flags)) if d.device == "disk"}


def persisted(h: Any, sid: str) -> str:
    return (Path(h.env.instances_dir) / sid / "domain.xml").read_text()


def test_a_simulated_host_declares_cold_disk_verbs_but_no_hot_plug(h: Any) -> None:
    assert {Capability.ATTACH_DISK, Capability.ATTACH_DISK_HOT, Capability.REBUILD_ROOT} <= KvmDriver.capabilities
    assert {Capability.ATTACH_DISK, Capability.REBUILD_ROOT} <= h.capabilities
    assert Capability.ATTACH_DISK_HOT not in h.capabilities


def test_attach_to_a_stopped_guest_is_in_its_definition_and_redelivery_changes_nothing(h: Any) -> None:
    spec = instance(auto_start=False)
    h.deploy(spec)
    disk = data_disk(1)
    path, hot = h.attach_disk(spec.server_id, disk)
    assert not hot and os.path.exists(path)
    assert path.startswith(h.instance_dir(spec.server_id)) and disk.id[:8] in os.path.basename(path)
    assert subprocess.run(["qemu-img", "info", path], capture_output=True, text=True).stdout.count("qcow2")
    assert disks(h, spec.server_id, live=False)[path] == "vdb"  # index 1 is the second virtio disk
    assert path in persisted(h, spec.server_id)  # restore() would bring it back
    again = h.attach_disk(spec.server_id, disk)  # a redelivered work item
    assert again == (path, False)
    assert list(disks(h, spec.server_id, live=False)).count(path) == 1
    assert len(disks(h, spec.server_id, live=False)) == 2
    # the next boot has it
    h.driver.start_guest(spec.server_id)
    assert disks(h, spec.server_id, live=True)[path] == "vdb"


def test_attach_to_a_running_guest_of_a_simulated_host_applies_at_the_next_boot(h: Any) -> None:
    spec = instance()
    h.deploy(spec)
    path, hot = h.attach_disk(spec.server_id, data_disk(3))
    assert hot is False  # test:/// cannot hot-plug; it says so instead of pretending
    assert h.driver.get_guest(spec.server_id).status is GuestStatus.RUNNING
    assert disks(h, spec.server_id, live=False)[path] == "vdd"
    assert path not in disks(h, spec.server_id, live=True)
    h.driver.stop_guest(spec.server_id, timeout=0)
    h.driver.start_guest(spec.server_id)
    assert disks(h, spec.server_id, live=True)[path] == "vdd"


def test_a_taken_target_device_moves_the_new_disk_to_the_next_free_one(h: Any) -> None:
    spec = instance(auto_start=False)
    h.deploy(spec)
    first, _ = h.attach_disk(spec.server_id, data_disk(1))
    second, _ = h.attach_disk(spec.server_id, data_disk(1))  # another disk, index 1 again
    got = disks(h, spec.server_id, live=False)
    assert first != second and got[first] == "vdb" and got[second] == "vdc"


def test_detach_from_a_stopped_guest_keeps_the_file_unless_told_and_is_idempotent(h: Any) -> None:
    spec = instance(auto_start=False)
    h.deploy(spec)
    kept, _ = h.attach_disk(spec.server_id, data_disk(1))
    disk2 = data_disk(2)
    gone, _ = h.attach_disk(spec.server_id, disk2)
    kept_disk = InstanceDisk(id="x", index=1, size_mb=8, access_path=kept)
    assert h.detach_disk(spec.server_id, kept_disk) is False
    assert kept not in disks(h, spec.server_id, live=False) and os.path.exists(kept)
    assert kept not in persisted(h, spec.server_id)
    assert h.detach_disk(spec.server_id, kept_disk) is False  # redelivered: already detached
    # no access path recorded: found where attach_disk made it; keep=False removes the file
    assert h.detach_disk(spec.server_id, disk2, keep=False) is False
    assert not os.path.exists(gone) and gone not in disks(h, spec.server_id, live=False)
    # re-attached later (the region sends the path it recorded): the same file, its data kept
    path, _ = h.attach_disk(spec.server_id, kept_disk)
    assert path == kept and kept in disks(h, spec.server_id, live=False)


def test_a_disk_whose_file_is_gone_is_not_replaced_by_a_blank_one(h: Any, tmp_path: Path) -> None:
    spec = instance(auto_start=False)
    h.deploy(spec)
    lost = str(tmp_path / "instances" / "elsewhere" / "disk1-gone.qcow2")
    with pytest.raises(HypervisorError, match="missing"):
        h.attach_disk(spec.server_id, data_disk(1, access_path=lost))
    assert not os.path.exists(lost) and len(disks(h, spec.server_id, live=False)) == 1


def test_detach_from_a_running_guest_of_a_simulated_host_changes_its_definition(h: Any) -> None:
    spec = instance(auto_start=False)
    h.deploy(spec)
    path, _ = h.attach_disk(spec.server_id, data_disk(1))
    h.driver.start_guest(spec.server_id)
    assert path in disks(h, spec.server_id, live=True)
    assert h.detach_disk(spec.server_id, InstanceDisk(id="d", index=1, size_mb=8, access_path=path)) is False
    assert path not in disks(h, spec.server_id, live=False)
    assert h.driver.get_guest(spec.server_id).status is GuestStatus.RUNNING


def test_the_root_disk_is_never_detached(h: Any) -> None:
    spec = instance()
    out = h.deploy(spec)
    root = dict(out.disks)[spec.disks[0].id]
    with pytest.raises(HypervisorError, match="root disk"):
        h.detach_disk(spec.server_id, InstanceDisk(id=spec.disks[0].id, index=0, size_mb=16, access_path=root))
    with pytest.raises(HypervisorError, match="root disk"):  # by its file, whatever index is claimed
        h.detach_disk(spec.server_id, InstanceDisk(id="other", index=4, size_mb=16, access_path=root))
    with pytest.raises(HypervisorError, match="root disk"):
        h.attach_disk(spec.server_id, data_disk(0))
    assert root in disks(h, spec.server_id, live=False) and os.path.exists(root)


def test_rebuild_root_gives_a_fresh_root_on_another_image_and_keeps_the_data_disk(h: Any) -> None:
    spec = instance()
    out = h.deploy(spec)
    root_id = spec.disks[0].id
    root = dict(out.disks)[root_id]
    data = data_disk(1)
    data_path, _ = h.attach_disk(spec.server_id, data)
    with open(root, "ab") as f:  # the old system disk has seen writes
        f.write(b"old-root-writes")
    data_inode = os.stat(data_path).st_ino
    iso = Path(h.instance_dir(spec.server_id)) / "config.iso"
    assert b"AAAAfirst" in iso.read_bytes()

    new = dataclass_replace(spec, disks=(
        InstanceDisk(id=root_id, index=0, size_mb=16, image_id="debian", access_path=root),
        InstanceDisk(id=data.id, index=1, size_mb=8, access_path=data_path)),
        ssh_keys=("ssh-ed25519 AAAAsecond second@key",))
    res = h.rebuild_root(new)  # the guest was running: stopped first, started again (auto_start)
    assert res.status is GuestStatus.RUNNING and dict(res.disks) == {root_id: root, data.id: data_path}
    assert b"old-root-writes" not in Path(root).read_bytes()
    info = subprocess.run(["qemu-img", "info", "-U", root], capture_output=True, text=True, check=True).stdout
    assert h.env.images.get("debian").path in info  # the new overlay is on the other image
    assert os.stat(data_path).st_ino == data_inode  # the data disk is the same file
    assert set(disks(h, spec.server_id, live=True)) == {root, data_path}
    assert b"AAAAsecond" in iso.read_bytes() and b"AAAAfirst" not in iso.read_bytes()
    assert not [p for p in os.listdir(h.instance_dir(spec.server_id)) if p.endswith(".rebuild")]

    # redelivered, and this time the region wants it stopped afterwards
    res = h.rebuild_root(dataclass_replace(new, auto_start=False))
    assert res.status is GuestStatus.STOPPED
    assert set(disks(h, spec.server_id, live=False)) == {root, data_path}
    assert data_path in persisted(h, spec.server_id)


def test_rebuild_root_refuses_a_spec_without_an_image_root(h: Any) -> None:
    spec = instance(auto_start=False)
    h.deploy(spec)
    with pytest.raises(HypervisorError, match="no root disk"):
        h.rebuild_root(dataclass_replace(spec, disks=(data_disk(1),)))


def dataclass_replace(spec: InstanceSpec, **kw: Any) -> InstanceSpec:
    import dataclasses

    return dataclasses.replace(spec, **kw)
