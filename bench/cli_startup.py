"""CLI start-up: `climc --version`, `climc --help`, `ocadm --help` (median of N runs, wall clock).

    .venv/bin/python bench/cli_startup.py [--runs 30]

Compares with `python -c pass` and, when installed, `openstack --version`. Machine noise: the
figures move ±20 % between runs on a shared 2-core box; compare medians within one run.
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def median_ms(cmd: list[str], runs: int) -> float:
    subprocess.run(cmd, capture_output=True)  # warm the page cache
    xs = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, capture_output=True)
        xs.append((time.perf_counter() - t0) * 1000)
    return statistics.median(xs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    a = ap.parse_args()
    rows = [
        ("python -c pass", [sys.executable, "-c", "pass"]),
        ("python -c 'import click'", [sys.executable, "-c", "import click"]),
        ("climc --version", [str(BIN / "climc"), "--version"]),
        ("climc --help", [str(BIN / "climc"), "--help"]),
        ("ocadm --help", [str(BIN / "ocadm"), "--help"]),
    ]
    osc = shutil.which("openstack", path=str(BIN)) or shutil.which("openstack")
    if osc:
        rows.append(("openstack --version", [osc, "--version"]))
    for name, cmd in rows:
        print(f"{name:28s} median {median_ms(cmd, a.runs):7.1f} ms  ({a.runs} runs)")


if __name__ == "__main__":
    main()
