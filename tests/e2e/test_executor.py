"""The in-controller executor (core/hostapi/executor.py) end to end through climc: a host whose
work items the controller runs, with the real KVM driver on libvirt's test:///default."""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from core.db.engine import Database
from tests.e2e.test_agent_support import libvirt_or_skip, upload_tiny_image
from tests.support.controller import Controller

B = "/api/s/compute_v2"


@pytest.fixture(scope="module")
def ctl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Controller]:
    libvirt_or_skip()
    with Controller.serving(tmp_path_factory.mktemp("exec"), {"CLOUDPODS_EXECUTOR_HEARTBEAT_S": "1"}) as c:
        upload_tiny_image(c)
        yield c


def status_of(ctl: Controller, name: str, want: str, timeout: float = 60) -> str:
    end = time.monotonic() + timeout
    st = ""
    while time.monotonic() < end:
        r = ctl.api.get(f"{B}/servers/{name}")
        if r.status_code == 404 and want == "gone":
            return "gone"
        st = r.json()["server"]["status"] if r.status_code == 200 else str(r.status_code)
        if st == want:
            return st
        time.sleep(0.2)
    return st


def test_executor_host_runs_a_server_create_stop_start_delete(ctl: Controller) -> None:
    r = ctl.climc("host-create", "exec-kvm", "--zone", "zone0", "--driver", "kvm", "--config",
                  "uri=test:///default", "--config", "password=s3cret", "--wire", "default", "-o", "json")
    assert r.returncode == 0, r.stderr
    host = json.loads(r.stdout)
    assert host["target"] == "executor" and host["driver"] == "kvm" and host["host_status"] == "online"
    assert "start" in host["capabilities"] or host["capabilities"], host["capabilities"]
    assert host["driver_config"] == {"password": "******", "uri": "test:///default"}
    # at rest: encrypted, the secret nowhere in the database file
    # (through the controller's own database URL: CI runs this suite on SQLite, PostgreSQL and MariaDB)
    db = Database(ctl.db_url)
    try:
        with db.engine.connect() as c:
            blob = c.execute(text("SELECT driver_config FROM hosts WHERE id = :i"), {"i": host["id"]}).scalar_one()
    finally:
        db.dispose()
    blob = blob.decode() if isinstance(blob, bytes) else str(blob)
    assert blob and "s3cret" not in blob and "test:///default" not in blob
    if ctl.db_url.startswith("sqlite"):
        assert b"s3cret" not in Path(ctl.data_dir / "cloudpods.db").read_bytes()

    r = ctl.climc("server-create", "ex-vm", "--ncpu", "1", "--mem-spec", "256m", "--disk", "tiny", "--net", "default",
                  "--host", "exec-kvm", "--auto-start")
    assert r.returncode == 0, r.stderr
    assert status_of(ctl, "ex-vm", "running") == "running"
    srv = ctl.api.get(f"{B}/servers/ex-vm").json()["server"]
    assert srv["host"] == "exec-kvm"
    assert ctl.climc("server-stop", "ex-vm").returncode == 0
    assert status_of(ctl, "ex-vm", "ready") == "ready"
    assert ctl.climc("server-start", "ex-vm").returncode == 0
    assert status_of(ctl, "ex-vm", "running") == "running"
    assert ctl.climc("server-delete", "-f", "ex-vm").returncode == 0
    assert status_of(ctl, "ex-vm", "gone") == "gone"
    # the agent protocol is not a way into an executor host's work
    r = ctl.api.get(f"{B}/agent/hosts/{host['id']}/work-items")
    assert r.status_code == 403, r.text
    # every change audited
    acts = ctl.climc("action-list", "-o", "json", "--limit", "200")
    assert acts.returncode == 0 and "exec-kvm" in acts.stdout


def test_unknown_driver_is_refused_and_nothing_is_created(ctl: Controller) -> None:
    r = ctl.climc("host-create", "exec-bad", "--zone", "zone0", "--driver", "nosuch")
    assert r.returncode != 0 and "nosuch" in r.stderr
    assert ctl.api.get(f"{B}/hosts/exec-bad").status_code == 404


def test_non_admin_cannot_see_or_create_executor_hosts(ctl: Controller) -> None:
    from tests.e2e.test_agent_support import outsider_token

    tok = outsider_token(ctl, "admin")  # even a project's admin is no cloud admin
    import httpx

    with httpx.Client(base_url=ctl.url, headers={"X-Auth-Token": tok}, timeout=30) as c:
        if ctl.api.get(f"{B}/hosts/exec-kvm").status_code != 200:
            ctl.climc("host-create", "exec-kvm", "--zone", "zone0", "--driver", "kvm", "--config",
                      "uri=test:///default", "--wire", "default")
        names = [h["name"] for h in c.get(f"{B}/hosts", params={"limit": 100}).json()["hosts"]]
        assert "exec-kvm" not in names
        assert c.get(f"{B}/hosts/exec-kvm").status_code == 404
        r = c.post(f"{B}/hosts", json={"host": {"name": "exec-mine", "zone": "zone0", "target": "executor",
                                                "driver": "kvm", "driver_config": {"uri": "test:///default"}}})
        assert r.status_code == 403, r.text
