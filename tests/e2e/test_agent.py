"""Host agents end to end (fast tier): a controller, three real `ocadm agent` processes on libvirt's
test:/// driver, climc for the whole server lifecycle; join tokens; agent credentials confined to
their own host; an agent killed mid-create; a host going offline and its guests turning unknown
(with the reason), then running again when the agent is back."""
from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_agent_support import AgentProc, B, agent_cloud, libvirt_or_skip, server, upload_tiny_image, wait_for
from tests.support.controller import Controller


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Controller, list[AgentProc]]]:
    libvirt_or_skip()
    with agent_cloud(tmp_path_factory.mktemp("agents"), 3, "node") as cloud:
        yield cloud


def _usage(ctl: Controller) -> dict[str, Any]:
    net = ctl.api.get(f"{B}/networks/default").json()["network"]
    quota = ctl.api.get(f"{B}/quotas").json()
    storages = ctl.api.get(f"{B}/storages", params={"limit": 1000}).json()["storages"]
    return {"ports_used": net["ports_used"], "quota": quota,
            "storage_used": sum(int(x["used_capacity"]) for x in storages)}


def test_lifecycle_through_climc_across_three_agents(cloud: tuple[Controller, list[AgentProc]]) -> None:
    ctl, agents = cloud
    by_host = {a.host_id: a for a in agents}
    before = _usage(ctl)
    r = ctl.climc("server-create", "web", "--disk", "tiny", "--net", "default", "--count", "6", "--auto-start",
                  "-o", "json")
    assert r.returncode == 0, r.stderr
    ids = [s["id"] for s in json.loads(r.stdout)["data"]]
    rows = [wait_for(lambda i=i: (s := server(ctl, i))["status"] == "running" and s, 60, f"server {i} running")
            for i in ids]
    # the scheduler spread them over all three agents; each guest exists on the host the region says
    assert {s["host_id"] for s in rows} == set(by_host), [s["host"] for s in rows]
    for s in rows:
        assert s["id"] in by_host[s["host_id"]].instance_dirs()
        assert s["ips"].startswith("10.199.0.") and s["power_status"] == "on"
        assert all(d["status"] == "ready" for d in s["disks_info"])
    lst = ctl.climc("server-list", "--search", "web", "-o", "json")
    assert lst.returncode == 0 and {x["name"] for x in json.loads(lst.stdout)["data"]} >= {s["name"] for s in rows}
    show = ctl.climc("server-show", rows[0]["name"], "-o", "json")
    assert show.returncode == 0 and json.loads(show.stdout)["host"] in {a.cfg["host_name"] for a in agents}

    name = rows[0]["name"]
    assert ctl.climc("server-stop", name).returncode == 0
    wait_for(lambda: (s := server(ctl, name))["status"] == "ready" and not s["active_task_id"], 60, "stopped")
    assert server(ctl, name)["power_status"] == "off"
    assert ctl.climc("server-start", name).returncode == 0
    wait_for(lambda: server(ctl, name)["status"] == "running", 60, "started")
    assert ctl.climc("server-syncstatus", name).returncode == 0
    wait_for(lambda: (s := server(ctl, name))["status"] == "running" and not s["active_task_id"], 60, "synced")

    # delete (skipping the recycle bin) releases addresses, quota and storage, and removes the guest
    r = ctl.climc("server-delete", "-f", *[s["name"] for s in rows])
    assert r.returncode == 0, r.stderr
    wait_for(lambda: all(ctl.api.get(f"{B}/servers/{i}").status_code == 404 for i in ids), 60, "servers gone")
    for s in rows:
        assert s["id"] not in by_host[s["host_id"]].instance_dirs()
    assert _usage(ctl) == before
    disks = ctl.api.get(f"{B}/disks", params={"limit": 1000}).json()["disks"]
    assert not [d for d in disks if d.get("server_id") in ids]


def test_join_tokens_are_one_time_and_expire(cloud: tuple[Controller, list[AgentProc]]) -> None:
    import httpx
    from sqlalchemy import update

    from core.db.base import utcnow
    from core.db.engine import Database
    from core.region.models.agents import JoinToken

    ctl, _ = cloud
    url = ctl.url + f"{B}/agent/join"
    tok = ctl.ocadm("token", "create", "--data-dir", str(ctl.data_dir), "--ttl", "5m")
    assert tok.returncode == 0 and "ocadm join --controller" in tok.stderr, tok.stderr
    assert "One-time join token" in tok.stderr, tok.stderr  # --uses 1 by default
    plain = tok.stdout.strip()
    first = httpx.post(url, json={"token": plain, "host_name": "spare-1"}, timeout=30)
    assert first.status_code == 200 and first.json()["username"].startswith("host-agent-"), first.text
    again = httpx.post(url, json={"token": plain, "host_name": "spare-2"}, timeout=30)
    assert again.status_code == 401 and "used up (1 of 1 uses)" in again.json()["details"], again.text
    bogus = httpx.post(url, json={"token": "cpj1.nope", "host_name": "spare-3"}, timeout=30)
    assert bogus.status_code == 401
    late = ctl.ocadm("token", "create", "--data-dir", str(ctl.data_dir), "--ttl", "2m").stdout.strip()
    db = Database(ctl.db_url)
    try:
        with db.session() as s:
            s.execute(update(JoinToken).where(JoinToken.created_by.like("ocadm:%"), JoinToken.used_at.is_(None))
                      .values(expires_at=utcnow()))
    finally:
        db.dispose()
    time.sleep(0.1)
    expired = httpx.post(url, json={"token": late, "host_name": "spare-4"}, timeout=30)
    assert expired.status_code == 401 and "expired" in expired.json()["details"]
    for bad_args, named in ((("--ttl", "forever"), "--ttl"), (("--ttl", "10y"), "--ttl"), (("--ttl", "8d"), "--ttl"),
                            (("--uses", "0"), "--uses"), (("--uses", "1001"), "--uses"),
                            (("--uses", "lots"), "--uses")):
        bad = ctl.ocadm("token", "create", "--data-dir", str(ctl.data_dir), *bad_args)
        assert bad.returncode != 0 and "Traceback" not in bad.stderr and named in bad.stderr, (bad_args, bad.stderr)
        assert len(bad.stderr.strip().splitlines()) == 1, bad.stderr


def test_a_token_with_uses_enrols_that_many_hosts_and_host_delete_removes_the_agent_user(
        cloud: tuple[Controller, list[AgentProc]], tmp_path: Path) -> None:
    import httpx

    from tests.e2e.test_agent_support import NODE_XML

    ctl, _ = cloud
    tok = ctl.ocadm("token", "create", "--data-dir", str(ctl.data_dir), "--uses", "2", "--ttl", "10m",
                    "--description", "daemonset")
    assert tok.returncode == 0 and "up to 2 hosts" in tok.stderr, tok.stderr
    plain = tok.stdout.strip()

    def join(name: str) -> subprocess.CompletedProcess[str]:
        (tmp_path / name).mkdir()
        node = tmp_path / name / "node.xml"
        node.write_text(NODE_XML.format(cpus=2, kib=4 * 1024 * 1024))
        return ctl.ocadm("join", "--controller", ctl.url, "--token", plain, "--name", name, "--data-dir",
                         str(tmp_path / name / "agent"), "--libvirt-uri", f"test://{node}", "--wire",
                         "default=br-sim", "--storage-capacity-mb", "1000")

    cfgs = []
    for name in ("ds-node-1", "ds-node-2"):
        r = join(name)
        assert r.returncode == 0 and "Registered:" in r.stdout, r.stdout + r.stderr
        cfgs.append(json.loads((tmp_path / name / "agent" / "agent.json").read_text()))
        # not schedulable (no agent runs for them here), and disabled is what host-delete needs
        assert ctl.climc("host-disable", name).returncode == 0
    third = join("ds-node-3")
    assert third.returncode != 0 and "Traceback" not in third.stderr, third.stderr
    assert "join token used up (2 of 2 uses): create another" in third.stderr, third.stderr
    assert ctl.api.get(f"{B}/hosts/ds-node-3").status_code == 404
    listed = ctl.ocadm("token", "list", "--data-dir", str(ctl.data_dir), "-o", "json")
    assert listed.returncode == 0, listed.stderr
    assert plain not in listed.stdout  # never the token itself after its creation
    (row,) = [t for t in json.loads(listed.stdout)["data"] if t["description"] == "daemonset"]
    assert (row["uses"], row["used"], row["state"]) == (2, 2, "used up") and row["expires_at"]

    def agent_login(cfg: dict[str, Any]) -> httpx.Response:
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": cfg["username"], "password": cfg["password"], "domain": {"name": "Default"}}}},
            "scope": {"project": {"name": cfg["project_name"], "domain": {"name": "Default"}}}}}
        return httpx.post(ctl.url + "/api/s/identity/v3/auth/tokens", json=body, timeout=30)

    gone, kept = cfgs
    r = agent_login(gone)
    assert r.status_code == 201, r.text
    old_token = r.headers["x-subject-token"]
    ping = f"{B}/agent/hosts/{gone['host_id']}/ping"
    assert httpx.post(ctl.url + ping, headers={"X-Auth-Token": old_token}, json={}, timeout=30).status_code == 200

    d = ctl.climc("host-delete", gone["host_name"])
    assert d.returncode == 0, d.stderr
    assert agent_login(gone).status_code == 401  # its password at once
    wait_for(lambda: httpx.post(ctl.url + ping, headers={"X-Auth-Token": old_token}, json={},
                                timeout=30).status_code == 401, 60, "the deleted agent's token refused")
    users = ctl.climc("user-list", "--limit", "0", "-o", "json")
    assert users.returncode == 0, users.stderr
    names = {u["name"] for u in json.loads(users.stdout)["data"]}
    assert gone["username"] not in names and kept["username"] in names
    assert agent_login(kept).status_code == 201  # the other host's agent is untouched
    audit = ctl.api.get("/api/s/identity/v3/actions", params={"obj_type": "user", "action": "delete", "limit": 0})
    assert audit.status_code == 200, audit.text
    rows = audit.json()["actions"]
    assert any(a["obj_type"] == "user" and a["action"] == "delete" and a["obj_name"] == gone["username"]
               and a["user"] == "admin" for a in rows), rows[:5]
    assert ctl.climc("host-delete", kept["host_name"]).returncode == 0
    assert agent_login(kept).status_code == 401


def test_agent_credentials_reach_only_their_own_host(cloud: tuple[Controller, list[AgentProc]]) -> None:
    ctl, agents = cloud
    a, other = agents[0], agents[1]
    with a.client() as c:
        assert c.post(f"{B}/agent/hosts/{a.host_id}/ping", json={}).status_code == 200
        for method, path in (("GET", f"{B}/agent/hosts/{other.host_id}/work-items"),
                             ("POST", f"{B}/agent/hosts/{other.host_id}/ping"),
                             ("POST", f"{B}/agent/hosts/{other.host_id}/register"),
                             ("POST", f"{B}/agent/hosts/{other.host_id}/guests"),
                             ("POST", f"{B}/hosts/{other.host_id}/disable")):
            r = c.request(method, path, json={"guests": []} if method == "POST" else None)
            assert r.status_code == 403, (method, path, r.status_code, r.text)
        # an image no guest of its host uses is not its business
        img = upload_tiny_image(ctl)
        r = c.get(f"{B}/agent/hosts/{a.host_id}/images/{img['id']}")
        assert r.status_code == 403, r.text
        # and no tenant's servers are visible to it through the ordinary API
        assert c.get(f"{B}/servers").json()["servers"] == []


def _work_item_status(ctl: Controller, task_id: str) -> str | None:
    from sqlalchemy import select

    from core.db.engine import Database
    from core.tasks.models import WorkItem

    db = Database(ctl.db_url)
    try:
        with db.session() as s:
            return s.scalar(select(WorkItem.status).where(WorkItem.task_id == task_id))
    finally:
        db.dispose()


def test_agent_killed_mid_create_resumes_after_restart(cloud: tuple[Controller, list[AgentProc]],
                                                        tmp_path: Path) -> None:
    ctl, agents = cloud
    victim, bystander = agents[2], agents[0]
    # frozen in its long poll, the agent is handed the deploy (dispatched) and never answers: then killed
    victim.signal(signal.SIGSTOP)
    try:
        r = ctl.climc("server-create", "crashy", "--disk", "tiny", "--net", "default", "--host",
                      victim.cfg["host_name"], "--auto-start", "-o", "json")
        assert r.returncode == 0, r.stderr
        sid = json.loads(r.stdout)["id"]

        def deploy_task() -> str | None:
            tasks = ctl.api.get(f"{B}/tasks", params={"obj_id": sid, "task_name": "ServerCreateTask"}).json()
            return tasks["tasks"][0]["id"] if tasks.get("tasks") else None

        tid = wait_for(deploy_task, 60, "create task")
        wait_for(lambda: _work_item_status(ctl, tid) == "dispatched", 60, "deploy handed to the frozen agent")
        # another agent may not answer for it
        with bystander.client() as c:
            r = c.post(f"{B}/agent/tasks/{tid}", json={"__status__": "error", "__reason__": "not mine"})
            assert r.status_code == 403, r.text
    finally:
        victim.kill()
    assert server(ctl, sid)["status"] == "deploying"
    # leftovers of a half-done attempt must not stop the redelivered deploy
    half = victim.data / "instances" / sid
    half.mkdir(parents=True, exist_ok=True)
    (half / "disk0.qcow2").write_bytes(b"half-written")
    victim.start()
    s = wait_for(lambda: (x := server(ctl, sid))["status"] == "running" and x, 60, "redelivered deploy")
    assert s["host_id"] == victim.host_id and (victim.data / "instances" / sid / "config.iso").exists()
    assert (victim.data / "instances" / sid / "disk0.qcow2").read_bytes()[:4] == b"QFI\xfb"  # a real overlay now
    assert ctl.climc("server-delete", "-f", sid).returncode == 0
    wait_for(lambda: ctl.api.get(f"{B}/servers/{sid}").status_code == 404, 60, "deleted")


def test_offline_host_guests_turn_unknown_and_actions_are_409(cloud: tuple[Controller, list[AgentProc]]) -> None:
    ctl, agents = cloud
    a = agents[1]
    r = ctl.climc("server-create", "lonely", "--disk", "tiny", "--net", "default", "--host", a.cfg["host_name"],
                  "--auto-start", "-o", "json")
    assert r.returncode == 0, r.stderr
    sid = json.loads(r.stdout)["id"]
    wait_for(lambda: server(ctl, sid)["status"] == "running", 60, "running")
    a.kill()
    host = wait_for(lambda: (h := ctl.api.get(f"{B}/hosts/{a.host_id}").json()["host"])["host_status"] == "offline"
                    and h, 60, "host offline")
    assert host["host_status"] == "offline"
    s = wait_for(lambda: (x := server(ctl, sid))["status"] == "unknown" and x, 60, "guest unknown")
    assert "went offline" in s["status_reason"] and a.cfg["host_name"] in s["status_reason"], s["status_reason"]
    r = ctl.api.post(f"{B}/servers/{sid}/stop", json={})
    assert r.status_code == 409 and "offline" in r.json()["details"] and a.cfg["host_name"] in r.json()["details"]
    out = ctl.climc("server-stop", "lonely")
    assert out.returncode != 0 and "offline" in out.stderr and "Traceback" not in out.stderr
    # the agent comes back online. Its simulated hypervisor (test:///, in the agent's memory) lost the
    # guest with the process; the agent re-defines it from its domain.xml and, as the region last had
    # it powered on, starts it again: running, and the offline reason is gone
    a.start()
    s = wait_for(lambda: (x := server(ctl, sid))["status"] == "running" and x, 60, "running again")
    assert s["status_reason"] == "" and s["power_status"] == "on"
    assert ctl.api.post(f"{B}/servers/{sid}/syncstatus", json={}).status_code == 200
    wait_for(lambda: (s := server(ctl, sid))["status"] == "running" and not s["active_task_id"], 60, "synced")
    assert ctl.climc("server-delete", "-f", sid).returncode == 0
    wait_for(lambda: ctl.api.get(f"{B}/servers/{sid}").status_code == 404, 60, "deleted")


def test_embedded_default_first_server_needs_no_setup(tmp_path: Path) -> None:
    """`ocadm init` + `ocadm serve --with-agent`: an image and one server-create, nothing else."""
    libvirt_or_skip()
    ctl = Controller.start(tmp_path, serve_args=("--with-agent",))
    try:
        wait_for(lambda: any(h["host_status"] == "online" for h in ctl.api.get(f"{B}/hosts").json()["hosts"]),
                 60, "the in-process agent's host")
        upload_tiny_image(ctl, "first")
        r = ctl.climc("server-create", "first-vm", "--disk", "first", "--net", "default", "--auto-start")
        assert r.returncode == 0, r.stderr
        s = wait_for(lambda: (x := server(ctl, "first-vm"))["status"] == "running" and x, 60, "running")
        assert s["ips"].startswith("10.199.0.") and s["zone"] == "zone0"
        inst = ctl.data_dir / "agent" / "instances" / s["id"]
        assert (inst / "disk0.qcow2").exists() and (inst / "config.iso").exists()
        assert ctl.climc("server-delete", "-f", "first-vm").returncode == 0
        wait_for(lambda: ctl.api.get(f"{B}/servers/first-vm").status_code == 404, 60, "deleted")
        assert not inst.exists()
    finally:
        ctl.stop()
