"""The one binary: bundle size and start-up time, side by side with `openstack --version`.

    make binary && .venv/bin/python bench/binary.py [--bundle dist/cloudpods-one] [--runs 30]

Runs the commands round-robin (so load from other work on the machine hits each one alike) and
prints medians and the targets: climc --version <= 100 ms, climc --help <= 150 ms, and
climc --version / openstack --version <= 0.15. Machine noise: a shared 2-core box moves the wall
figures by 20 % or more between runs (the load average is printed); the CPU column (user+system
time of the child) hardly moves with load. Compare medians within one run.
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent


def tree_size(path: Path) -> tuple[int, int]:
    total = files = 0
    for root, _dirs, names in os.walk(path):
        for n in names:
            p = Path(root) / n
            if not p.is_symlink():
                total += p.stat().st_size
                files += 1
    return total, files


def _children_cpu_ms() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (r.ru_utime + r.ru_stime) * 1000


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall ms, CPU ms): CPU time hardly moves with other load on the machine, wall time does."""
    c0, t0 = _children_cpu_ms(), time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, env=env)
    took = (time.perf_counter() - t0) * 1000
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {r.stderr.decode()[-500:]}")
    return took, _children_cpu_ms() - c0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bundle", type=Path, default=REPO / "dist" / "cloudpods-one")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--onefile", action="store_true",
                    help="also time the one-file artifact (it unpacks itself on every call: seconds each)")
    a = ap.parse_args()
    b = a.bundle.resolve()
    if not (b / "cloudpods-one").exists():
        raise SystemExit(f"no bundle in {b}: run `make binary` (or scripts/build-binary.sh) first")
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    size, files = tree_size(b)
    print(f"bundle {b}: {size / 2**20:.1f} MiB in {files} files "
          f"(executable {(b / 'cloudpods-one').stat().st_size / 2**20:.1f} MiB)")
    onefile = b.parent / "cloudpods-one-onefile"
    if onefile.exists():
        print(f"one-file {onefile}: {onefile.stat().st_size / 2**20:.1f} MiB")
    env = {"PATH": f"{b}:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp"), "LANG": "C.UTF-8"}
    rows: list[tuple[str, list[str], dict[str, str]]] = [
        ("climc --version (binary)", [str(b / "climc"), "--version"], env),
        ("climc --help (binary)", [str(b / "climc"), "--help"], env),
        ("ocadm --help (binary)", [str(b / "ocadm"), "--help"], env),
        ("climc --version (venv)", [str(VENV_BIN / "climc"), "--version"], dict(os.environ)),
    ]
    if onefile.exists() and a.onefile:
        rows.append(("climc --version (one-file)", [str(onefile), "climc", "--version"], env))
    osc = shutil.which("openstack", path=str(VENV_BIN)) or shutil.which("openstack")
    if osc:
        rows.append(("openstack --version", [osc, "--version"], dict(os.environ)))
    else:
        print("openstack not installed (pip install python-openstackclient): no side-by-side figure")
    samples: dict[str, list[float]] = {name: [] for name, _c, _e in rows}
    cpu: dict[str, list[float]] = {name: [] for name, _c, _e in rows}
    for _name, cmd, e in rows:
        timed(cmd, e)  # warm the page cache
    for _ in range(a.runs):
        for name, cmd, e in rows:
            wall, used = timed(cmd, e)
            samples[name].append(wall)
            cpu[name].append(used)
    med = {name: statistics.median(xs) for name, xs in samples.items()}
    for name, xs in samples.items():
        q = statistics.quantiles(xs, n=10)
        print(f"{name:28s} median {med[name]:7.1f} ms   p10 {q[0]:7.1f}   p90 {q[-1]:7.1f}   "
              f"CPU median {statistics.median(cpu[name]):6.1f} ms  ({a.runs} runs)")
    targets = [("climc --version (binary)", 100.0), ("climc --help (binary)", 150.0)]
    for name, limit in targets:
        print(f"target {name} <= {limit:.0f} ms: {'met' if med[name] <= limit else 'MISSED'}")
    if "openstack --version" in med:
        ratio = med["climc --version (binary)"] / med["openstack --version"]
        print(f"ratio climc --version (binary) / openstack --version = {ratio:.3f} "
              f"(target <= 0.15: {'met' if ratio <= 0.15 else 'MISSED'})")


if __name__ == "__main__":
    main()
