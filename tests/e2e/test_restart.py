"""Restart and reconcile on the embedded default (`ocadm serve --with-agent`, libvirt test:///).

The simulated hypervisor keeps its guests in the controller's memory: a restart loses all of them.
The agent re-defines them from the descriptions it kept (instances/<id>/domain.xml), asks the
region what each one was (GET /agent/hosts/<id>/guests-expected) and starts those that ran; a
guest whose files are gone is named as lost on the server (``status_reason``), not a silent unknown.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.e2e.test_agent_support import B, libvirt_or_skip, server, upload_tiny_image, wait_for
from tests.support.controller import Controller


def _create(ctl: Controller, name: str, *extra: str) -> str:
    r = ctl.climc("server-create", name, "--disk", "tiny", "--net", "default", *extra, "-o", "json")
    assert r.returncode == 0, r.stderr
    return str(json.loads(r.stdout)["id"])


def _settled(ctl: Controller, sid: str, status: str, what: str, timeout: float = 30) -> dict:
    return wait_for(lambda: (s := server(ctl, sid))["status"] == status and not s["active_task_id"] and s,
                    timeout, what)


def _restart(ctl: Controller) -> None:
    ctl.stop()
    ctl.serve("--with-agent")
    wait_for(lambda: any(h["host_status"] == "online" for h in ctl.api.get(f"{B}/hosts").json()["hosts"]),
             60, "the in-process agent's host after the restart")


@pytest.fixture
def embedded(tmp_path: Path):  # type: ignore[no-untyped-def]
    libvirt_or_skip()
    ctl = Controller.start(tmp_path, serve_args=("--with-agent",))
    try:
        wait_for(lambda: any(h["host_status"] == "online" for h in ctl.api.get(f"{B}/hosts").json()["hosts"]),
                 60, "the in-process agent's host")
        upload_tiny_image(ctl)
        yield ctl
    finally:
        ctl.stop()


def test_servers_stay_operable_across_a_controller_restart(embedded: Controller) -> None:
    ctl = embedded
    on = _create(ctl, "keeps-running", "--auto-start")
    off = _create(ctl, "keeps-stopped")
    _settled(ctl, on, "running", "auto-started server")
    _settled(ctl, off, "ready", "stopped server")
    _restart(ctl)
    # the running one runs again, the stopped one stays stopped: what the region recorded
    _settled(ctl, on, "running", "running server after the restart")
    s = _settled(ctl, off, "ready", "stopped server after the restart")
    assert s["status_reason"] == ""
    # and every verb works on them (the bug: unknown, then stop_fail "guest ... not found")
    r = ctl.climc("server-stop", "keeps-running")
    assert r.returncode == 0, r.stderr
    _settled(ctl, on, "ready", "stopped after the restart")
    r = ctl.climc("server-start", "keeps-stopped")
    assert r.returncode == 0, r.stderr
    _settled(ctl, off, "running", "started after the restart")
    # a second restart keeps what the verbs did (stop/start change no definition, power comes from the region)
    _restart(ctl)
    _settled(ctl, on, "ready", "stopped server after the second restart")
    _settled(ctl, off, "running", "running server after the second restart")
    for name in ("keeps-running", "keeps-stopped"):
        assert ctl.climc("server-delete", "-f", name).returncode == 0
    wait_for(lambda: not ctl.api.get(f"{B}/servers").json()["servers"], 60, "both deleted")
    assert not any((ctl.data_dir / "agent" / "instances").iterdir())


def test_a_guest_whose_files_are_gone_says_why(embedded: Controller) -> None:
    ctl = embedded
    sid = _create(ctl, "vanishing", "--auto-start")
    diskless = _create(ctl, "diskless")
    kept = _create(ctl, "kept", "--auto-start")
    for i, st in ((sid, "running"), (diskless, "ready"), (kept, "running")):
        _settled(ctl, i, st, st)
    ctl.stop()
    inst = ctl.data_dir / "agent" / "instances"
    shutil.rmtree(inst / sid)  # its disks and description with it
    (inst / diskless / "disk0.qcow2").unlink()
    ctl.serve("--with-agent")
    s = wait_for(lambda: (x := server(ctl, sid))["status"] == "unknown" and x["status_reason"] and x, 60,
                 "a lost guest with a reason")
    assert s["status_reason"].startswith("guest lost on host ") and "kept nothing" in s["status_reason"], s
    d = wait_for(lambda: (x := server(ctl, diskless))["status"] == "unknown" and x["status_reason"] and x, 60,
                 "a guest without its disk, with a reason")
    assert "disk0.qcow2 is missing" in d["status_reason"], d["status_reason"]
    _settled(ctl, kept, "running", "the intact guest runs again")
    r = ctl.climc("server-show", "vanishing")
    assert r.returncode == 0 and "status_reason" in r.stdout and "guest lost" in r.stdout, r.stdout
    # the periodic syncs (absent, no reason) leave the reason alone; stop says it failed and why; delete works
    r = ctl.climc("server-stop", "diskless")
    assert r.returncode == 0, r.stderr
    f = _settled(ctl, diskless, "stop_fail", "a stop of a lost guest fails")
    assert f["status_reason"].startswith("stop failed: "), f["status_reason"]
    for name in ("vanishing", "diskless", "kept"):
        assert ctl.climc("server-delete", "-f", name).returncode == 0
    wait_for(lambda: not ctl.api.get(f"{B}/servers").json()["servers"], 60, "all deleted")
