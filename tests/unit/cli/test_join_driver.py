"""`ocadm join --driver`: the agent hosts the driver named there; an unknown one is refused before
the join token is spent (no controller is contacted, no config is written)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.controller import REPO, base_env


def test_unknown_driver_is_one_line_and_nothing_is_written(tmp_path: Path) -> None:
    d = tmp_path / "agent"
    r = subprocess.run([sys.executable, "-m", "ocadm", "join", "--controller", "http://127.0.0.1:9",
                        "--token", "cpj1.unused", "--driver", "nosuch", "--data-dir", str(d)],
                       capture_output=True, text=True, env=base_env(tmp_path), cwd=REPO, timeout=60)
    assert r.returncode == 1, r.stderr
    line = r.stderr.strip()
    assert "\n" not in line and line.startswith("Error: unknown driver 'nosuch'; known: "), r.stderr
    assert "kvm" in line.split("known: ", 1)[1].split(", "), r.stderr
    assert not (d / "agent.json").exists()


def test_bad_metrics_listen_is_refused_before_the_token_is_spent(tmp_path: Path) -> None:
    d = tmp_path / "agent"
    r = subprocess.run([sys.executable, "-m", "ocadm", "join", "--controller", "http://127.0.0.1:9",
                        "--token", "cpj1.unused", "--metrics-listen", "everywhere:9101", "--data-dir", str(d)],
                       capture_output=True, text=True, env=base_env(tmp_path), cwd=REPO, timeout=60)
    assert r.returncode == 1 and "metrics_listen: IP:PORT" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not (d / "agent.json").exists()
