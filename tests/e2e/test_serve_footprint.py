"""What an idle `ocadm serve` has imported once its background threads run (issue 22: idle RSS ≤ 100 MB).

Drivers, SDKs and libraries used only by some requests or jobs load at their first use; this locks in
that they are not paid for at start. A module in FORBIDDEN that a change needs at start is a memory
regression to measure (bench/controller.py) before it is allowed here."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.controller import Controller
from tests.support.procs import stop_process

# numpy: the scheduler's engine (~10 MB); alembic: `ocadm init/upgrade` only; apscheduler: replaced by
# core.loops; h11: uvicorn parses with httptools (core/api/http400.py); the drivers' SDKs: loaded when a
# host of theirs is used; pydantic.v1: FastAPI's check of route types (core/api/routing.py spares it);
# core.glance.api: the image service's routes are built at its first request (LAZY_SERVICES).
FORBIDDEN = ("numpy", "alembic", "apscheduler", "tzlocal", "h11", "libvirt", "pyVmomi", "pyghmi", "boto3", "botocore",
             "pyroute2", "pycdlib", "tftpy", "rich", "prompt_toolkit", "yaml", "pydantic.v1", "core.glance.api")

# `ocadm serve` with a SIGUSR1 handler that writes the imported modules and the threads to argv[1]
PROBE = """
import json, runpy, signal, sys, threading
out = sys.argv.pop(1)
def dump(*_):
    with open(out + ".tmp", "w") as f:
        json.dump({"modules": sorted(sys.modules), "threads": [t.name for t in threading.enumerate()]}, f)
    import os
    os.replace(out + ".tmp", out)
signal.signal(signal.SIGUSR1, dump)
sys.argv[0] = "ocadm"
runpy.run_module("ocadm", run_name="__main__")
"""


def _wait(cond, what: str, timeout: float = 90.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_idle_controller_imports_no_driver_sdk_scheduler_engine_or_migrations(tmp_path: Path) -> None:
    ctl = Controller.init(tmp_path)
    out = tmp_path / "modules.json"
    with open(tmp_path / "serve.log", "wb") as log:  # the child keeps its own copy of the descriptor
        proc = subprocess.Popen([sys.executable, "-c", PROBE, str(out), "serve", "--data-dir", str(ctl.data_dir)],
                                env=ctl.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def ready() -> bool:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-2000:]
            try:
                return httpx.get(ctl.url + "/ping", timeout=2).status_code == 204
            except httpx.HTTPError:
                return False

        _wait(ready, "the controller to answer")
        # the background threads start once it listens; the periodic jobs' is the last one
        deadline = time.monotonic() + 90
        while True:
            out.unlink(missing_ok=True)
            proc.send_signal(signal.SIGUSR1)
            _wait(out.exists, "the module list")
            seen = json.loads(out.read_text())
            if "periodic" in seen["threads"]:
                break
            assert time.monotonic() < deadline, f"no periodic jobs' thread: {seen['threads']}"
            time.sleep(0.2)
        modules = set(seen["modules"])
    finally:
        stop_process(proc, group=True)
    assert "core.api.app" in modules and "uvicorn" in modules  # the probe saw a serving controller
    bad = sorted(m for m in modules if any(m == f or m.startswith(f + ".") for f in FORBIDDEN))
    assert not bad, f"an idle `ocadm serve` imported {bad}"
