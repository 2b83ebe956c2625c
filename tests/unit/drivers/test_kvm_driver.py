"""KvmDriver against libvirt's own test driver (real libvirt code, simulated host)."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import pytest

from drivers.base import (
    DiskSpec,
    GuestEvent,
    GuestNotFound,
    GuestSpec,
    GuestStatus,
    HypervisorError,
    InvalidSpec,
    NicSpec,
)

libvirt = pytest.importorskip("libvirt", reason="libvirt-python not installed (pip install '.[kvm]')")
from drivers.kvm.driver import KvmDriver  # noqa: E402  (after the skip: needs libvirt)


def spec(name: str = "vm1", **kw: object) -> GuestSpec:
    args: dict = {
        "name": name,
        "uuid": str(uuid.uuid4()),
        "vcpu": 2,
        "memory_mb": 256,
        "nics": (NicSpec(mac="52:54:00:00:00:01", bridge="br0", ifname="tap-vm1"),),
    }
    return GuestSpec(**(args | kw))


@pytest.fixture
def drv(node_uri: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    d = KvmDriver(node_uri, instances_dir=str(tmp_path / "instances"), storage_paths=(str(tmp_path),))
    yield d
    d.close()


def test_fresh_node_lists_its_guest(drv: KvmDriver) -> None:
    guests = drv.list_guests()
    assert [(g.id, g.name, g.status) for g in guests] == [
        ("aaaaaaaa-0000-0000-0000-000000000001", "preexisting", GuestStatus.RUNNING)
    ]
    assert guests[0].extra["vcpu"] == 2 and guests[0].extra["memory_mb"] == 512


def test_full_lifecycle(drv: KvmDriver) -> None:
    s = spec()
    g = drv.create_guest(s)
    assert (g.id, g.name, g.status) == (s.uuid, "vm1", GuestStatus.RUNNING)
    assert drv.get_guest("vm1") == drv.get_guest(s.uuid)  # by name or by uuid
    assert drv.guest_taps(g.id) == ("tap-vm1",)

    drv.suspend_guest(g.id)
    assert drv.get_guest(g.id).status is GuestStatus.PAUSED
    drv.suspend_guest(g.id)  # idempotent
    drv.resume_guest(g.id)
    assert drv.get_guest(g.id).status is GuestStatus.RUNNING
    drv.reboot_guest(g.id)
    drv.reset_guest(g.id)
    assert drv.get_guest(g.id).status is GuestStatus.RUNNING

    drv.stop_guest(g.id, timeout=5)
    assert drv.get_guest(g.id).status is GuestStatus.STOPPED
    drv.stop_guest(g.id, timeout=5)  # stopping a stopped guest is fine
    with pytest.raises(HypervisorError, match="cannot reboot .* it is stopped"):
        drv.reboot_guest(g.id)
    drv.start_guest(g.id)
    assert drv.get_guest(g.id).status is GuestStatus.RUNNING
    drv.start_guest(g.id)  # idempotent

    drv.delete_guest(g.id)
    with pytest.raises(GuestNotFound):
        drv.get_guest(g.id)
    assert [x.name for x in drv.list_guests()] == ["preexisting"]


def test_create_without_start_and_force_stop(drv: KvmDriver) -> None:
    g = drv.create_guest(spec("cold"), start=False)
    assert g.status is GuestStatus.STOPPED and g.extra["persistent"] is True
    drv.start_guest(g.id)
    drv.stop_guest(g.id, timeout=0)  # timeout 0: straight to destroy
    assert drv.get_guest(g.id).status is GuestStatus.STOPPED


def test_duplicate_and_missing_guests(drv: KvmDriver) -> None:
    s = spec()
    drv.create_guest(s)
    with pytest.raises(InvalidSpec, match="already uses vm1"):
        drv.create_guest(spec())
    with pytest.raises(InvalidSpec, match=f"already uses {s.uuid}"):
        drv.create_guest(spec("other", uuid=s.uuid))
    missing = str(uuid.uuid4())
    for op in (drv.get_guest, drv.start_guest, drv.delete_guest, drv.suspend_guest):
        with pytest.raises(GuestNotFound, match=missing):
            op(missing)


def test_delete_removes_only_files_under_instances_dir(drv: KvmDriver, tmp_path: Path) -> None:
    inst = tmp_path / "instances" / "vm1"
    inst.mkdir(parents=True)
    cache = tmp_path / "cache"
    cache.mkdir()
    root, cd, log, base = inst / "root.qcow2", inst / "config.iso", inst / "serial.log", cache / "base.qcow2"
    for f in (root, cd, log, base):
        f.write_bytes(b"x")
    g = drv.create_guest(
        spec(
            disks=(DiskSpec(path=str(root)), DiskSpec(path=str(base), readonly=True)),
            config_drive=str(cd),
            serial_log=str(log),
        )
    )
    drv.delete_guest(g.id)
    assert not root.exists() and not cd.exists() and not log.exists()
    assert base.exists()  # the image cache is not the guest's


def test_lifecycle_events_reach_the_callback(drv: KvmDriver) -> None:
    got: list[GuestEvent] = []
    seen = threading.Event()

    def on_event(ev: GuestEvent) -> None:
        got.append(ev)
        if ev.event == "undefined":
            seen.set()

    drv.watch_events(on_event)
    g = drv.create_guest(spec())
    drv.suspend_guest(g.id)
    drv.resume_guest(g.id)
    drv.stop_guest(g.id, timeout=5)
    drv.delete_guest(g.id)
    assert seen.wait(5), f"no undefined event; got {got}"
    assert [(e.event, e.status) for e in got] == [
        ("defined", GuestStatus.STOPPED),
        ("started", GuestStatus.RUNNING),
        ("suspended", GuestStatus.PAUSED),
        ("resumed", GuestStatus.RUNNING),
        ("stopped", GuestStatus.STOPPED),
        ("undefined", GuestStatus.STOPPED),
    ]
    assert {e.guest_id for e in got} == {g.id} and got[1].detail == "booted"


def test_a_failing_callback_does_not_stop_events(drv: KvmDriver) -> None:
    got: list[str] = []

    def bad(ev: GuestEvent) -> None:
        got.append(ev.event)
        raise RuntimeError("consumer bug")

    drv.watch_events(bad)
    g = drv.create_guest(spec())
    drv.stop_guest(g.id, timeout=1)
    deadline = time.monotonic() + 5
    while "stopped" not in got and time.monotonic() < deadline:
        time.sleep(0.02)
    assert got[:3] == ["defined", "started", "stopped"]


def test_host_facts(drv: KvmDriver, tmp_path: Path) -> None:
    f = drv.host_facts()
    assert (f.cpu_count, f.cpu_mhz, f.sockets, f.cores_per_socket, f.threads_per_core) == (8, 2400, 1, 4, 2)
    assert f.memory_mb == 16384
    assert f.hypervisor == "qemu"  # the test driver offers no kvm domain type: emulate
    assert isinstance(f.numa, tuple)  # a custom node file declares no NUMA cells
    assert [s.path for s in f.storage] == [str(tmp_path)] and f.storage[0].total_mb > 0
    assert all(n.name != "lo" for n in f.nics)


def test_numa_cells_from_capabilities() -> None:
    d = KvmDriver("test:///default")  # read-only here: the default node has two cells
    try:
        cells = d.host_facts().numa
    finally:
        d.close()
    assert [(c.id, c.memory_mb, len(c.cpus)) for c in cells] == [(0, 2048, 8), (1, 4096, 8)]


def test_host_facts_from_a_fake_sysfs(node_uri: str, tmp_path: Path) -> None:
    sysfs = tmp_path / "sys"
    nic = sysfs / "class/net/eth7"
    (nic / "device").mkdir(parents=True)
    (nic / "address").write_text("52:54:00:aa:bb:cc\n")
    (nic / "mtu").write_text("9000\n")
    (nic / "operstate").write_text("up\n")
    (nic / "speed").write_text("10000\n")
    br = sysfs / "class/net/br-w1"
    (br / "bridge").mkdir(parents=True)
    (br / "mtu").write_text("1500\n")
    gpu = sysfs / "bus/pci/devices/0000:3b:00.0"
    gpu.mkdir(parents=True)
    (gpu / "class").write_text("0x030200\n")
    (gpu / "vendor").write_text("0x10de\n")
    (gpu / "device").write_text("0x1eb8\n")
    other = sysfs / "bus/pci/devices/0000:00:1f.0"
    other.mkdir(parents=True)
    (other / "class").write_text("0x060100\n")
    d = KvmDriver(node_uri, sysfs_root=str(sysfs))
    f = d.host_facts()
    d.close()
    assert [(n.name, n.kind, n.mtu, n.up, n.speed_mbps) for n in f.nics] == [
        ("br-w1", "bridge", 1500, False, None),
        ("eth7", "physical", 9000, True, 10000),
    ]
    assert [(g.address, g.vendor_id, g.device_id) for g in f.gpus] == [("0000:3b:00.0", "10de", "1eb8")]


def test_bad_uri_is_a_clear_error() -> None:
    d = KvmDriver("test:///nonexistent/node.xml")
    with pytest.raises(HypervisorError, match="cannot connect to test:///nonexistent/node.xml"):
        d.list_guests()


def test_domain_type_can_be_pinned(node_uri: str) -> None:
    d = KvmDriver(node_uri, domain_type="kvm")
    assert '<domain type="kvm">' in d.domain_xml(spec()) or 'type="kvm"' in d.domain_xml(spec())
    with pytest.raises(InvalidSpec):
        KvmDriver(node_uri, domain_type="xen")
