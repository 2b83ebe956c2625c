"""A real controller for tests: `ocadm init` in a temp dir, `ocadm serve` on a free port.

    ctl = Controller.start(tmp_path)          # or use the `controller` fixture (one per session)
    r = ctl.climc("server-list", "-o", "json")
    assert r.returncode == 0, r.stderr
    ctl.api.get("/api/s/compute_v2/servers")  # httpx.Client with the admin token

Commands run as ``python -m climc`` / ``python -m ocadm`` from this checkout, so they work from any
worktree without reinstalling.
"""
from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def parse_rc(path: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line.startswith("export "):
            k, _, v = line[7:].partition("=")
            env[k] = shlex.split(v)[0] if v else ""
    return env


def base_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "CLOUDPODS_", "CLIMC_"))}
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["XDG_CACHE_HOME"] = str(home / "cache")  # token cache per test controller
    return env


@dataclass
class Controller:
    data_dir: Path
    port: int
    proc: subprocess.Popen[bytes] | None
    env: dict[str, str]
    log_path: Path
    _api: httpx.Client | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def init(cls, root: Path, *extra: str, port: int | None = None) -> Controller:
        root.mkdir(parents=True, exist_ok=True)
        port = port or free_port()
        data = root / "data"
        env = base_env(root)
        r = subprocess.run([sys.executable, "-m", "ocadm", "init", "--data-dir", str(data), "--port", str(port),
                            *extra], env=env, capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise RuntimeError(f"ocadm init failed: {r.stderr}")
        env.update(parse_rc(data / "rc_admin"))
        return cls(data, port, None, env, root / "serve.log")

    @classmethod
    def start(cls, root: Path, *init_args: str, serve_args: tuple[str, ...] = ()) -> Controller:
        ctl = cls.init(root, *init_args)
        ctl.serve(*serve_args)
        return ctl

    def serve(self, *args: str, timeout: float = 30.0) -> None:
        with open(self.log_path, "ab") as log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen([sys.executable, "-m", "ocadm", "serve", "--data-dir", str(self.data_dir),
                                          *args], env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ocadm serve exited {self.proc.returncode}: {self.log_path.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/ping", timeout=1).status_code == 204:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"controller not ready after {timeout}s: {self.log_path.read_text()[-2000:]}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self._api is not None:
            self._api.close()
            self._api = None
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self.proc = None

    def run(self, prog: str, *args: str, env: dict[str, str] | None = None, input: str | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        e = dict(self.env if env is None else env)
        return subprocess.run([sys.executable, "-m", prog, *args], env=e, capture_output=True, text=True,
                              input=input, timeout=timeout)

    def climc(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.run("climc", *args, **kw)

    def ocadm(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.run("ocadm", *args, **kw)

    def token(self, username: str | None = None, password: str | None = None, project: str | None = "system",
              domain: str = "Default", scope: dict[str, Any] | None = None) -> str:
        body: dict[str, Any] = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": username or self.env["OS_USERNAME"], "password": password or self.env["OS_PASSWORD"],
            "domain": {"name": domain}}}}}}
        if scope is not None:
            body["auth"]["scope"] = scope
        elif project:
            body["auth"]["scope"] = {"project": {"name": project, "domain": {"name": domain}}}
        r = httpx.post(self.url + "/api/s/identity/v3/auth/tokens", json=body, timeout=30)
        r.raise_for_status()
        return r.headers["x-subject-token"]

    @property
    def api(self) -> httpx.Client:
        """An httpx client against the controller root, carrying an admin (system project) token."""
        if self._api is None:
            self._api = httpx.Client(base_url=self.url, headers={"X-Auth-Token": self.token()}, timeout=60)
        return self._api
