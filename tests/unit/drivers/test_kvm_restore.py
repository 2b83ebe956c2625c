"""KVM instances survive the hypervisor forgetting them: ``persist`` keeps domain.xml, ``restore`` re-defines.

libvirt's test driver on a node file starts every new connection from that file, so closing the
hosted driver and opening another one is exactly a hypervisor that lost its guests (as test:///
does when the agent restarts, or a host whose libvirtd lost its definitions).
"""
from __future__ import annotations

import os
import stat
import uuid
from pathlib import Path
from typing import Any

import pytest

from drivers.base import GuestNotFound, GuestStatus, HostEnv, InstanceDisk, InstanceNic, InstanceSpec

pytest.importorskip("libvirt", reason="libvirt-python not installed (pip install '.[kvm]')")
from drivers.kvm.driver import KvmDriver


class Net:
    def __init__(self) -> None:
        self.plugged: list[str] = []

    def plug(self, nic: InstanceNic, hostname: str | None = None) -> str:
        self.plugged.append(nic.mac)
        return "br-sim"

    def unplug(self, mac: str) -> None:
        pass


class NoImages:
    def get(self, image_id: str) -> Any:
        raise AssertionError("no image expected")


def hosted(uri: str, tmp_path: Path, net: Net | None = None) -> Any:
    env = HostEnv(uri=uri, data_dir=str(tmp_path), instances_dir=str(tmp_path / "instances"), images=NoImages(),
                  network=net or Net(), domain_type="test")
    return KvmDriver.for_host(env)


def instance(**kw: Any) -> InstanceSpec:
    sid = str(uuid.uuid4())
    args: dict[str, Any] = {
        "server_id": sid, "name": "web", "vcpu": 1, "memory_mb": 128, "auto_start": True,
        "disks": (InstanceDisk(id=str(uuid.uuid4()), index=0, size_mb=1),),
        "nics": (InstanceNic(index=0, mac="52:54:00:12:34:56", ip="10.0.0.5", mask=24),),
        "password": "s3cret-pass", "user_data": "#cloud-config\n",
    }
    return InstanceSpec(**(args | kw))


def test_deploy_keeps_a_private_description_without_secrets(node_uri: str, tmp_path: Path) -> None:
    h = hosted(node_uri, tmp_path)
    try:
        spec = instance()
        h.deploy(spec)
        path = tmp_path / "instances" / spec.server_id / "domain.xml"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        xml = path.read_text()
        assert spec.server_id in xml and "s3cret-pass" not in xml and "passwd" not in xml
    finally:
        h.close()


def test_restore_redefines_lost_guests_stopped_and_replugs_their_nics(node_uri: str, tmp_path: Path) -> None:
    h = hosted(node_uri, tmp_path)
    spec = instance()
    stopped = instance(auto_start=False, nics=())
    h.deploy(spec)
    h.deploy(stopped)
    h.reconfigure(stopped.server_id, vcpu=2, memory_mb=256)  # a change after deploy is kept too
    h.close()
    net = Net()
    h = hosted(node_uri, tmp_path, net)  # a fresh hypervisor: both guests are gone
    try:
        with pytest.raises(GuestNotFound):
            h.driver.get_guest(spec.server_id)
        assert h.restore() == []
        assert h.driver.get_guest(spec.server_id).status is GuestStatus.STOPPED  # the region decides power
        assert h.driver.get_guest(stopped.server_id).status is GuestStatus.STOPPED
        assert net.plugged == ["52:54:00:12:34:56"]
        dom = h.driver.host.lookup(stopped.server_id)
        assert dom.info()[3] == 2 and dom.maxMemory() == 256 * 1024
        h.driver.start_guest(spec.server_id)
        assert h.restore() == []  # guests the hypervisor has are left alone
        assert h.driver.get_guest(spec.server_id).status is GuestStatus.RUNNING
    finally:
        h.close()


def test_restore_names_what_it_cannot_bring_back(node_uri: str, tmp_path: Path) -> None:
    h = hosted(node_uri, tmp_path)
    no_disk, no_desc, fine = instance(), instance(), instance()
    for s in (no_disk, no_desc, fine):
        h.deploy(s)
    h.close()
    inst = tmp_path / "instances"
    os.unlink(inst / no_disk.server_id / "disk0.qcow2")
    os.unlink(inst / no_desc.server_id / "domain.xml")
    (inst / "not-a-server").mkdir()  # stray dirs are not guests
    h = hosted(node_uri, tmp_path)
    try:
        problems = dict(h.restore())
        assert set(problems) == {no_disk.server_id, no_desc.server_id}, problems
        assert "disk0.qcow2 is missing" in problems[no_disk.server_id]
        assert "kept no description" in problems[no_desc.server_id]
        assert h.driver.get_guest(fine.server_id).status is GuestStatus.STOPPED
        with pytest.raises(GuestNotFound):
            h.driver.get_guest(no_disk.server_id)
        # remove() still cleans up what is left of a lost guest
        assert h.remove(no_disk.server_id) is False and not (inst / no_disk.server_id).exists()
    finally:
        h.close()


def test_restore_records_guests_deployed_before_descriptions_were_kept(node_uri: str, tmp_path: Path) -> None:
    h = hosted(node_uri, tmp_path)
    try:
        spec = instance()
        h.deploy(spec)
        desc = tmp_path / "instances" / spec.server_id / "domain.xml"
        desc.unlink()
        assert h.restore() == [] and desc.exists()
        h.persist(str(uuid.uuid4()))  # no such instance: nothing to keep, no error
    finally:
        h.close()
