"""Live migration on real qemu (full tier, root): two hypervisor hosts on this one machine — the
system libvirtd and a second libvirtd in its own mount namespace (tests/support/libvirtd2.py) —
each with its own `ocadm agent`; `climc server-live-migrate` moves a running guest from the first to
the second without a reboot (its disk's blocks copied, memory live), the region follows it, and the
moved server stays operable there."""
from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from drivers.kvm.xml import parse_disks
from tests.e2e.test_agent_support import AgentProc, B, server, wait_for
from tests.integration.test_agent_real import _qemu_ready, _upload, upload_tiny_guest
from tests.integration.test_day2_real import _make_iso
from tests.support.controller import Controller
from tests.support.guests import destroy_domains
from tests.support.libvirtd2 import second_libvirtd
from tests.support.peers import need_binary

pytestmark = pytest.mark.full


def _join(ctl: Controller, root: Path, name: str, uri: str) -> AgentProc:
    tok = ctl.ocadm("token", "create", "--data-dir", str(ctl.data_dir)).stdout.strip()
    data = root / name
    r = ctl.ocadm("join", "--controller", ctl.url, "--token", tok, "--name", name, "--data-dir", str(data),
                  "--libvirt-uri", uri, "--domain-type", "qemu", "--network-mode", "none",
                  "--migrate-uri", uri, "--migrate-address", "tcp://127.0.0.1", "--storage-capacity-mb", "100000")
    assert r.returncode == 0 and "Registered:" in r.stdout, r.stdout + r.stderr
    cfg = json.loads((data / "agent.json").read_text())
    cfg.update({"ping_interval_s": 2.0, "sync_interval_s": 5.0})
    (data / "agent.json").write_text(json.dumps(cfg))
    agent = AgentProc(ctl, data, cfg, root / f"{name}.log")
    agent.start()
    return agent


@pytest.fixture
def two_hosts(tmp_path: Path) -> Iterator[tuple[Controller, AgentProc, AgentProc]]:
    _qemu_ready()
    need_binary("unshare", "util-linux")
    with second_libvirtd(tmp_path / "lv2") as uri2:
        ctl = Controller.start(tmp_path / "ctl")
        agents: list[AgentProc] = []
        try:
            agents.append(_join(ctl, tmp_path, "lm-a", "qemu+unix:///system?socket=/run/libvirt/libvirt-sock"))
            agents.append(_join(ctl, tmp_path, "lm-b", uri2))
            yield ctl, agents[0], agents[1]
        finally:
            for a in agents:
                a.stop()
            ctl.stop()
            _destroy_guests_of(agents)


def _destroy_guests_of(agents: list[AgentProc]) -> None:
    """A failed test leaves its guest running on the system libvirtd: end the guests of these agents."""
    for a in agents:
        inst = a.data / "instances"
        destroy_domains(a.cfg["libvirt_uri"], [p.name for p in inst.iterdir()] if inst.exists() else [])


def _domain(uri: str, sid: str) -> object | None:
    import libvirt

    conn = libvirt.open(uri)
    try:
        dom = conn.lookupByUUIDString(sid)
        return {"active": bool(dom.isActive()), "xml": dom.XMLDesc(0)}
    except libvirt.libvirtError:
        return None
    finally:
        conn.close()


def test_a_running_guest_moves_live_to_the_other_host_and_stays_operable(
        two_hosts: tuple[Controller, AgentProc, AgentProc], tmp_path: Path) -> None:
    ctl, a, b = two_hosts
    for h in (a, b):
        assert "live_migrate" in ctl.api.get(f"{B}/hosts/{h.host_id}").json()["host"]["capabilities"]
    upload_tiny_guest(ctl, tmp_path, "cm-tiny", "console=ttyS0 panic=-1 cm.stay")
    r = ctl.climc("server-create", "livevm", "--disk", "cm-tiny", "--disk", "32", "--ncpu", "1",
                  "--mem-spec", "256m", "--host", "lm-a", "--auto-start", "-o", "json")
    assert r.returncode == 0, r.stderr
    sid = json.loads(r.stdout)["id"]
    s = wait_for(lambda: (x := server(ctl, sid))["status"] in ("running", "deploy_fail") and x, 120, "deployed")
    assert s["status"] == "running" and s["host_id"] == a.host_id, a.log_path.read_text()[-3000:]
    serial_a = a.data / "instances" / sid / "serial.log"
    wait_for(lambda: serial_a.exists() and "staying up" in serial_a.read_text(errors="replace"), 90, "guest up")
    # an installer ISO in the running guest's drive goes along: the target fetches it into its own cache
    _make_iso(tmp_path / "lm.iso")
    iso_id = _upload(ctl, "lm-iso", tmp_path / "lm.iso", "iso")
    assert ctl.climc("server-insert-iso", "livevm", "lm-iso").returncode == 0
    wait_for(lambda: not server(ctl, sid)["active_task_id"], 60, "ISO inserted")
    assert server(ctl, sid)["cdrom"] == "lm-iso", server(ctl, sid)["status_reason"]

    r = ctl.climc("server-live-migrate", "livevm", "--prefer-host", "lm-b")
    assert r.returncode == 0, r.stderr
    s = wait_for(lambda: (x := server(ctl, sid))["status"] in ("running",) and not x["active_task_id"] and x,
                 120, "live-migrated")
    assert s["host_id"] == b.host_id, (s["status_reason"], b.log_path.read_text()[-3000:])
    assert s["status_reason"] == "" and s["power_status"] == "on"
    dom_b = _domain(b.cfg["libvirt_uri"], sid)
    assert dom_b is not None and dom_b["active"], "the guest runs on the second hypervisor"  # type: ignore[index]
    assert _domain(a.cfg["libvirt_uri"], sid) is None, "and is gone from the first"
    assert not (a.data / "instances" / sid).exists()  # the source forgot its copy
    inst_b = b.data / "instances" / sid
    assert str(inst_b) in dom_b["xml"]  # type: ignore[index]  # it runs from the target's files
    isos = [x.path for x in parse_disks(dom_b["xml"]) if x.device == "cdrom" and iso_id in x.path]  # type: ignore[index]
    assert len(isos) == 1 and isos[0].startswith(str(b.data)), dom_b["xml"]  # type: ignore[index]
    assert server(ctl, sid)["cdrom"] == "lm-iso"
    # no reboot: the guest kept running, so the new serial log never saw it boot
    serial_b = inst_b / "serial.log"
    assert "guest userspace up" not in (serial_b.read_text(errors="replace") if serial_b.exists() else "")
    wait_for(lambda: (inst_b / "domain.xml").exists(), 60, "the target kept the guest's description")
    paths = [ctl.api.get(f"{B}/disks/{d['id']}").json()["disk"]["access_path"] for d in s["disks_info"]]
    assert len(paths) == 2 and all(p.startswith(str(inst_b)) and Path(p).exists() for p in paths), paths

    # operable on its new host: stop, start, delete
    assert ctl.climc("server-stop", "livevm").returncode == 0
    wait_for(lambda: (x := server(ctl, sid))["status"] == "ready" and not x["active_task_id"], 90, "stopped")
    assert ctl.climc("server-delete", "-f", "livevm").returncode == 0
    wait_for(lambda: ctl.api.get(f"{B}/servers/{sid}").status_code == 404, 60, "deleted")
    assert _domain(b.cfg["libvirt_uri"], sid) is None and not inst_b.exists()
