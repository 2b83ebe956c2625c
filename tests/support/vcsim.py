"""govmomi's vSphere simulator as a test peer (PEERS.md "VMware").

No package ships ``vcsim`` and nothing on PyPI simulates vSphere, but Debian's
``golang-github-vmware-govmomi-dev`` carries govmomi's ``simulator`` library: ``main.go`` next to
this file is a small program on it. ``binary()`` builds it once (offline, ~20 s) into a cache
outside the repository, keyed by the source and the toolchain; ``Vcsim`` starts it on a free
loopback port and stops it by its pid::

    with Vcsim(username="admin", password="secret") as sim:     # vCenter model: DC0, DC0_C0, 4 VMs
        SmartConnect(host=sim.host, port=sim.port, user=sim.username, pwd=sim.password, ...)

``scripts/setup-peers.d/esxi.sh`` installs the two Debian packages and builds it for CI.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.support import ports
from tests.support.procs import stop_process

SOURCE = Path(__file__).with_name("vcsim") / "main.go"
GOPATH = "/usr/share/gocode"
GOVMOMI = Path(GOPATH) / "src/github.com/vmware/govmomi/simulator"
PACKAGES = "golang-go golang-github-vmware-govmomi-dev"


def cache_root() -> Path:
    """Where builds are kept: $CLOUDPODS_VCSIM_CACHE, /var/cache/cloudpods-ci when writable, else ~/.cache."""
    env = os.environ.get("CLOUDPODS_VCSIM_CACHE")
    if env:
        return Path(env)
    ci = Path("/var/cache/cloudpods-ci")
    try:
        ci.mkdir(parents=True, exist_ok=True)
        if os.access(ci, os.W_OK):
            return ci / "vcsim"
    except OSError:
        pass
    return Path.home() / ".cache" / "cloudpods-one" / "vcsim"


def _toolchain() -> str | None:
    go = shutil.which("go")
    if go is None or not GOVMOMI.is_dir():
        return None
    try:
        version = subprocess.run([go, "version"], capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    stamp = GOVMOMI / "simulator.go"
    mtime = int(stamp.stat().st_mtime) if stamp.exists() else 0
    return f"{version}|{mtime}"


def available() -> str:
    """'' when the simulator can be built here, else why not (naming the packages to install)."""
    if _toolchain() is None:
        return f"needs the VMware simulator's build inputs (apt install {PACKAGES})"
    return ""


def binary() -> Path:
    """The built simulator, building it first if this source/toolchain was never built (locked)."""
    tool = _toolchain()
    if tool is None:
        raise RuntimeError(f"cannot build vcsim: apt install {PACKAGES}")
    key = hashlib.sha256(SOURCE.read_bytes() + tool.encode()).hexdigest()[:16]
    root = cache_root()
    out = root / key / "vcsim-lite"
    if out.exists():
        return out
    (root / key).mkdir(parents=True, exist_ok=True)
    with open(root / key / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if out.exists():  # another process built it while we waited
            return out
        with tempfile.TemporaryDirectory(prefix="vcsim-build-") as tmp:
            shutil.copy(SOURCE, Path(tmp) / "main.go")
            env = {**os.environ, "GO111MODULE": "off", "GOPATH": GOPATH, "GOPROXY": "off",
                   "GOFLAGS": "", "GOCACHE": str(root / "gocache")}
            r = subprocess.run(["go", "build", "-o", str(out) + ".tmp", "."], cwd=tmp, env=env,
                               capture_output=True, text=True, timeout=900)
            if r.returncode != 0:
                raise RuntimeError(f"go build of vcsim failed: {r.stderr.strip()[-2000:]}")
        os.replace(str(out) + ".tmp", out)
    return out


def need_vcsim() -> Path:
    """The simulator binary, or skip (fail under CLOUDPODS_TEST_FULL=1) naming what is missing."""
    from tests.support.peers import need

    why = available()
    need(not why, why)
    return binary()


def free_port() -> int:
    return ports.free_port()


class Vcsim:
    """One simulator process on 127.0.0.1; a context manager (stopped by pid on exit)."""

    def __init__(self, *, username: str = "admin", password: str = "secret", esx: bool = False, dc: int = 1,
                 cluster: int = 1, cluster_host: int = 3, standalone_host: int = 1, vm: int = 2,
                 inaccessible_vm: str = "") -> None:
        self.username, self.password = username, password
        self.args = [f"-esx={'true' if esx else 'false'}", f"-dc={dc}", f"-cluster={cluster}",
                     f"-cluster-host={cluster_host}", f"-standalone-host={standalone_host}", f"-vm={vm}"]
        if inaccessible_vm:
            self.args.append(f"-inaccessible-vm={inaccessible_vm}")
        self.host = "127.0.0.1"
        self.port = 0
        self.proc: subprocess.Popen[str] | None = None

    def start(self, timeout: float = 60.0) -> Vcsim:
        exe = need_vcsim()
        for _attempt in range(3):  # a free port may be taken between probing and binding
            self.port = free_port()
            self.proc = subprocess.Popen(
                [str(exe), "-l", f"{self.host}:{self.port}", "-username", self.username, "-password",
                 self.password, *self.args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                start_new_session=True)
            end = time.monotonic() + timeout
            while time.monotonic() < end and self.proc.poll() is None:
                try:
                    with socket.create_connection((self.host, self.port), timeout=1):
                        return self
                except OSError:
                    time.sleep(0.05)
            err = self.stop()
            if "address already in use" not in err:
                raise RuntimeError(f"vcsim did not start: {err[-1000:]}")
        raise RuntimeError("vcsim did not start: no free port")

    def stop(self) -> str:
        """Stop the process (SIGTERM, then SIGKILL); its stderr."""
        p, self.proc = self.proc, None
        if p is None:
            return ""
        stop_process(p, 15, kill_wait=15)
        try:
            return p.stderr.read() if p.stderr else ""
        except (OSError, ValueError):
            return ""

    def config(self, **extra: Any) -> dict[str, Any]:
        """A driver config for this simulator (its self-signed certificate is not verified)."""
        return {"host": self.host, "port": self.port, "username": self.username, "password": self.password,
                "insecure": True, **extra}

    def __enter__(self) -> Vcsim:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
