"""Shutting ``ocadm serve --with-agent`` down (issue 21): the in-process agent's long poll is in flight
when SIGTERM arrives; shutdown must answer it, stop the agent and log no traceback (it took the full
graceful-shutdown timeout and cancelled the poll, with a traceback). Here, not in e2e: ~30 s."""
from __future__ import annotations

import signal
import time
from typing import Any

from tests.e2e.test_identity_support import ok
from tests.support.controller import Controller

R = "/api/s/compute_v2"


def test_serve_with_agent_shuts_down_without_a_traceback(tmp_path: Any) -> None:
    ctl = Controller.start(tmp_path, serve_args=("--with-agent",))
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:  # the agent's long poll is in flight once it is online
            hosts = ok(ctl.api.get(f"{R}/hosts"))["hosts"]
            if hosts and hosts[0].get("host_status") == "online":
                break
            time.sleep(0.5)
        else:
            raise AssertionError(f"the in-process agent never came online: {ctl.log_path.read_text()[-2000:]}")
    finally:
        ctl.stop(signal.SIGTERM)
    log = ctl.log_path.read_text()
    assert "Traceback" not in log and "timeout graceful shutdown exceeded" not in log, log[-3000:]
    # and with the controller down, `ocadm status` says so with a non-zero exit (scripts rely on it)
    r = ctl.ocadm("status", "--data-dir", str(ctl.data_dir))
    assert r.returncode == 1 and "NOT healthy" in r.stderr and "Traceback" not in r.stderr, r
