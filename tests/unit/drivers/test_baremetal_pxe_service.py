"""The bare-metal boot network's HTTP side (core/agent/pxe.py) on the loopback: a staged machine's
one-time token gives its iPXE script, kernel, ramdisk and image (the image once); its report ends
the job; a wrong read-back checksum, a failure report or silence is an error naming what happened;
a closed job's token is gone."""
from __future__ import annotations

import hashlib
import threading
import time
import zlib
from pathlib import Path

import httpx
import pytest

from core.agent.pxe import PxeConfigError, PxeService, PxeSettings
from drivers.base import HypervisorError, InvalidSpec, LocalImage
from tests.support.bmc import free_port

MAC = "52:54:00:aa:bb:01"


@pytest.fixture()
def svc(tmp_path: Path) -> PxeService:
    (tmp_path / "k").write_bytes(b"K" * 1000)
    (tmp_path / "r").write_bytes(b"R" * 2000)
    s = PxeService(PxeSettings(interface="lo", kernel=str(tmp_path / "k"), ramdisk=str(tmp_path / "r"),
                               ip_range="127.0.0.100-127.0.0.101", dhcp_port=free_port()), tmp_path / "raw")
    s.start()
    yield s
    s.stop()


def image(tmp_path: Path, data: bytes) -> LocalImage:
    p = tmp_path / "img.raw"
    p.write_bytes(data)
    return LocalImage(path=str(p), format="raw", properties={}, virtual_size_mb=1)


def test_a_staged_machine_gets_script_files_and_its_image_once_then_reports(svc: PxeService, tmp_path: Path) -> None:
    data = bytes(range(256)) * 4096
    job = svc.stage(MAC, "deploy", image(tmp_path, data))
    url = f"{svc.base_url}/pxe/{job.token}"
    script = httpx.get(f"{url}/boot.ipxe").text
    assert script.startswith("#!ipxe") and f"cp.url={url}" in script and "cp.action=deploy" in script
    assert f"cp.ip={job.ip}/8" in script and f"cp.mac={MAC}" in script and job.ip == "127.0.0.100"
    assert httpx.get(f"{url}/kernel").content == b"K" * 1000
    assert httpx.get(f"{url}/initrd").content == b"R" * 2000
    assert httpx.get(f"{url}/size").text == str(len(data))
    assert httpx.get(f"{url}/image").content == data
    assert httpx.get(f"{url}/image").status_code == 410  # one download per token
    assert httpx.get(f"{svc.base_url}/pxe/not-a-token/image").status_code == 404
    # a second machine gets the next address; the same machine cannot be staged twice
    other = svc.stage("52:54:00:aa:bb:02", "wipe")
    assert other.ip == "127.0.0.101"
    with pytest.raises(HypervisorError, match="already"):
        svc.stage(MAC, "wipe")
    with pytest.raises(HypervisorError, match="no free deploy address"):
        svc.stage("52:54:00:aa:bb:03", "wipe")
    other.close()
    threading.Timer(0.2, lambda: httpx.post(f"{url}/report", data={
        "status": "ok", "message": "wrote", "crc32": f"{zlib.crc32(data):08x}",
        "chunk": str(16 << 20)})).start()
    assert job.wait(10)["status"] == "ok"
    assert httpx.post(f"{url}/report", data={"status": "ok"}).status_code == 404  # reported once
    job.close()
    assert httpx.get(f"{url}/boot.ipxe").status_code == 404


def test_a_bad_checksum_a_failure_or_silence_is_an_error_with_the_reason(svc: PxeService, tmp_path: Path) -> None:
    job = svc.stage(MAC, "deploy", image(tmp_path, b"x" * 4096))
    url = f"{svc.base_url}/pxe/{job.token}"
    httpx.post(f"{url}/report", data={"status": "ok", "md5": "0" * 32})  # a ramdisk built before CRC-32
    with pytest.raises(HypervisorError, match="reads back as md5"):
        job.wait(5)
    job.close()
    job = svc.stage(MAC, "deploy", image(tmp_path, b"x" * 4096))
    httpx.post(f"{svc.base_url}/pxe/{job.token}/report",
               data={"status": "ok", "crc32": "0badc0de", "chunk": str(16 << 20)})
    with pytest.raises(HypervisorError, match="reads back as crc32 '0badc0de'"):
        job.wait(5)
    job.close()
    job = svc.stage(MAC, "deploy", image(tmp_path, b"y" * 4096))
    httpx.post(f"{svc.base_url}/pxe/{job.token}/report",
               data={"status": "ok", "md5": hashlib.md5(b"y" * 4096).hexdigest()})
    assert job.wait(5)["status"] == "ok"  # an older ramdisk's md5 is still checked
    job.close()
    job = svc.stage(MAC, "wipe")
    httpx.post(f"{svc.base_url}/pxe/{job.token}/report", data={"status": "fail", "message": "no disk found"})
    with pytest.raises(HypervisorError, match="no disk found"):
        job.wait(5)
    job.close()
    job = svc.stage(MAC, "wipe")
    httpx.get(f"{svc.base_url}/pxe/{job.token}/boot.ipxe")
    t0 = time.monotonic()
    with pytest.raises(HypervisorError, match=r"did not report its wipe within 0.3 s \(seen: boot.ipxe@"):
        job.wait(0.3)
    assert time.monotonic() - t0 < 5
    job.close()


def test_bad_input_and_settings_are_refused(svc: PxeService, tmp_path: Path) -> None:
    with pytest.raises(InvalidSpec, match="action"):
        svc.stage(MAC, "format")
    with pytest.raises(InvalidSpec, match="needs an image"):
        svc.stage(MAC, "deploy")
    bad = PxeService(PxeSettings(interface="lo", kernel=str(tmp_path / "missing"), ramdisk=""), tmp_path)
    with pytest.raises(PxeConfigError, match="baremetal_deploy_kernel"):
        bad.start()
    bad = PxeService(PxeSettings(interface="lo", kernel=str(tmp_path / "k"), ramdisk=str(tmp_path / "r"),
                                 ip_range="10.0.0.1-10.0.0.9", dhcp_port=free_port()), tmp_path)
    with pytest.raises(PxeConfigError, match="baremetal_pxe_range"):
        bad.start()


def test_an_unknown_machine_pxe_booting_is_reported_once_and_other_clients_are_not(svc: PxeService) -> None:
    from core.agent.dhcp import DhcpPacket

    told: list[str] = []
    seen = threading.Event()
    svc.on_discover = lambda mac: (told.append(mac), seen.set())

    def discover(mac: bytes, vendor: bytes) -> None:
        pkt = DhcpPacket(op=1, xid=7, chaddr=mac, options={53: bytes([1]), 60: vendor})
        assert svc._dhcp is not None and svc._dhcp.responder.handle(pkt) is None  # unknown MACs get no answer

    discover(b"\x52\x54\x00\xaa\xbb\x09", b"udhcp 1.36")  # an ordinary DHCP client: not a machine to enrol
    discover(b"\x52\x54\x00\xaa\xbb\x07", b"PXEClient:Arch:00000:UNDI:002001")
    discover(b"\x52\x54\x00\xaa\xbb\x07", b"PXEClient:Arch:00000:UNDI:002001")  # its retry
    assert seen.wait(5)
    time.sleep(0.2)
    assert told == ["52:54:00:aa:bb:07"] and list(svc.discovered) == ["52:54:00:aa:bb:07"]


class _CrashingMachine:
    """A BMC whose machine powers on, then goes off by itself (a deploy kernel that panicked)."""

    def __init__(self) -> None:
        self.on_at = 0.0
        self.calls: list[str] = []

    def get_power_state(self) -> object:
        from drivers.base import PowerState

        on = self.on_at and time.monotonic() - self.on_at < 0.3
        return PowerState.ON if on else PowerState.OFF

    def set_power_state(self, action: str) -> None:
        self.calls.append(action)
        self.on_at = time.monotonic() if action == "on" else 0.0

    def set_boot_device(self, device: object, *, persistent: bool = False) -> None:
        self.calls.append(f"boot {device}")


def test_a_machine_that_powers_off_before_its_ramdisk_reports_fails_the_deploy_at_once(
        svc: PxeService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import types

    from drivers.baremetal import driver as bm

    monkeypatch.setattr(bm, "POWER_CHECK_S", 0.1)
    drv = bm.BaremetalDriver({"ipmi_ip": "127.0.0.1", "ipmi_username": "u", "ipmi_password": "p",
                              "access_mac": MAC, "deploy_timeout_s": 60},
                             types.SimpleNamespace(pxe=svc, data_dir=str(tmp_path)))  # type: ignore[arg-type]
    machine = _CrashingMachine()
    drv._bmc = machine  # type: ignore[assignment]
    t0 = time.monotonic()
    with pytest.raises(HypervisorError, match="powered off before its deploy ramdisk reported"):
        drv._pxe_boot("wipe")
    assert time.monotonic() - t0 < 30  # not the 60 s deploy timeout
    assert machine.calls[-1] == "off" and "on" in machine.calls
    assert svc.job("x") is None and svc.stage(MAC, "wipe")  # its turn was closed: the MAC can be staged again
