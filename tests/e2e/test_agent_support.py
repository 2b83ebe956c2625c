"""Real host agents for tests: `ocadm token create` + `ocadm join` + `ocadm agent` subprocesses.

    agent = AgentProc.join(ctl, tmp_path / "a1", "node-a")   # libvirt test:///<its node.xml>
    agent.start(); ...; agent.kill()                          # SIGKILL, like a crash
    with agent_cloud(tmp_path, 2, "node") as (ctl, agents): ...  # a controller and N started agents
    with agent_host(tmp_path, "day2-node") as (ctl, agent): ...  # a controller and one started agent
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.support.controller import Controller
from tests.support.procs import stop_process
from tests.support.waiting import wait_for

B = "/api/s/compute_v2"
NODE_XML = """<node>
  <cpu><mhz>2400</mhz><model>x86_64</model><active>{cpus}</active>
       <nodes>1</nodes><sockets>1</sockets><cores>{cpus}</cores><threads>1</threads></cpu>
  <memory>{kib}</memory>
</node>
"""


def libvirt_or_skip() -> None:
    from tests.support.peers import need

    try:
        import libvirt  # noqa: F401
    except ImportError:
        need(False, "libvirt-python missing (pip install '.[kvm]')")


@dataclass
class AgentProc:
    ctl: Controller
    data: Path
    cfg: dict[str, Any]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def host_id(self) -> str:
        return str(self.cfg["host_id"])

    @classmethod
    def join(cls, ctl: Controller, root: Path, name: str, *, cpus: int = 8, memory_mb: int = 32768,
             settings: dict[str, Any] | None = None) -> AgentProc:
        root.mkdir(parents=True, exist_ok=True)
        node = root / "node.xml"
        node.write_text(NODE_XML.format(cpus=cpus, kib=memory_mb * 1024))
        tok = ctl.ocadm("token", "create", "--data-dir", str(ctl.data_dir), "--ttl", "10m")
        assert tok.returncode == 0, tok.stderr
        data = root / "agent"
        r = ctl.ocadm("join", "--controller", ctl.url, "--token", tok.stdout.strip(), "--name", name,
                      "--data-dir", str(data), "--libvirt-uri", f"test://{node}", "--wire", "default=br-sim",
                      "--storage-capacity-mb", "1000000")
        assert r.returncode == 0, r.stdout + r.stderr
        assert "Registered:" in r.stdout, r.stdout + r.stderr
        cfg = json.loads((data / "agent.json").read_text())
        cfg.update({"ping_interval_s": 1.0, "sync_interval_s": 2.0, "poll_wait_s": 30, **(settings or {})})
        (data / "agent.json").write_text(json.dumps(cfg))
        return cls(ctl, data, cfg, root / "agent.log")

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "ocadm", "agent", "--data-dir", str(self.data)],
                                         env=self.ctl.env, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        wait_for(lambda: self.ctl.api.get(f"{B}/hosts/{self.host_id}").json()["host"]["host_status"] == "online"
                 and b"registered as host" in self.log_path.read_bytes(), 90, f"agent {self.cfg['host_name']}")

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, sig)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        stop_process(self.proc, 15, group=True, kill_wait=10)
        self.proc = None

    def client(self) -> httpx.Client:
        """httpx with this agent's own token (its service user)."""
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": self.cfg["username"], "password": self.cfg["password"], "domain": {"name": "Default"}}}},
            "scope": {"project": {"name": self.cfg["project_name"], "domain": {"name": "Default"}}}}}
        r = httpx.post(self.ctl.url + "/api/s/identity/v3/auth/tokens", json=body, timeout=30)
        r.raise_for_status()
        return httpx.Client(base_url=self.ctl.url, headers={"X-Auth-Token": r.headers["x-subject-token"]},
                            timeout=30)

    def instance_dirs(self) -> set[str]:
        d = self.data / "instances"
        return set(os.listdir(d)) if d.exists() else set()


def upload_tiny_image(ctl: Controller, name: str = "tiny") -> dict[str, Any]:
    got = ctl.api.get(f"/api/s/image/v1/images/{name}")
    if got.status_code == 200:
        return dict(got.json()["image"])
    r = ctl.api.post("/api/s/image/v1/images", content=b"\0" * (1 << 20), headers={
        "Content-Type": "application/octet-stream", "X-Image-Meta-Name": name, "X-Image-Meta-Disk-Format": "raw",
        "X-Image-Meta-Is-Public": "true"})
    assert r.status_code in (200, 201), r.text
    return dict(r.json()["image"])


def server(ctl: Controller, ident: str) -> dict[str, Any]:
    r = ctl.api.get(f"{B}/servers/{ident}")
    assert r.status_code == 200, r.text
    return dict(r.json()["server"])


@contextmanager
def agent_cloud(root: Path, n: int, prefix: str, *, quick_offline: bool = True
                ) -> Iterator[tuple[Controller, list[AgentProc]]]:
    """A controller under ``root`` with ``n`` real agents (``<prefix>-0`` ...) started and the tiny
    image uploaded; everything stopped on exit. ``quick_offline``: hosts go offline 4 s after their
    last ping, checked every second (the defaults are 180 s / 30 s)."""
    with _cloud(root, [(root / f"{prefix}{i}", f"{prefix}-{i}") for i in range(n)], quick_offline) as cloud:
        yield cloud


@contextmanager
def agent_host(root: Path, name: str, *, images: tuple[str, ...] = ("tiny",)
               ) -> Iterator[tuple[Controller, AgentProc]]:
    """A controller under ``root`` with one real agent, host ``name``, started and ``images`` (tiny
    images of these names) uploaded; everything stopped on exit. Hosts go offline after the defaults."""
    with _cloud(root, [(root / "a", name)], False, images) as (ctl, agents):
        yield ctl, agents[0]


@contextmanager
def _cloud(root: Path, hosts: list[tuple[Path, str]], quick_offline: bool, images: tuple[str, ...] = ("tiny",)
           ) -> Iterator[tuple[Controller, list[AgentProc]]]:
    ctl = Controller.init(root / "ctl")
    if quick_offline:
        ctl.env.update({"CLOUDPODS_HOST_OFFLINE_S": "4", "CLOUDPODS_JOB_HOSTS_OFFLINE_INTERVAL_S": "1"})
    agents: list[AgentProc] = []
    try:
        ctl.serve()
        agents += [AgentProc.join(ctl, data, name) for data, name in hosts]
        for a in agents:
            a.start()
        for image in images:
            upload_tiny_image(ctl, image)
        yield ctl, agents
    finally:
        for a in agents:
            a.stop()
        ctl.stop()


def outsider_token(ctl: Controller, role: str = "member") -> str:
    """A token of a new user with ``role`` (member, admin) in a fresh project: another tenant, for
    cross-tenant checks (a project's admin is no cloud admin either)."""
    from tests.e2e.test_identity_support import admin, project_user

    return project_user(ctl, admin(ctl), role=role)[2]
