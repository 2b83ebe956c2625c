"""CLI start-up: `climc --version`, `climc --help`, `ocadm --help` (median of N runs, wall clock),
and a `climc server-list` round trip against a fresh controller (cached token, as a user's 2nd call).

    .venv/bin/python bench/cli_startup.py [--runs 30] [--no-controller]

Targets (issue 23): `climc --version` <= 60 ms, `climc server-list` <= 150 ms on a quiet machine.

Compares with `python -c pass` and, when installed, `openstack --version`. Machine noise: the
figures move ±20 % between runs on a shared 2-core box; compare medians within one run. The CPU
column (user + sys of the child) is what to compare on a loaded machine: wall clock there is
mostly waiting for a core. The load average is printed before and after.

The "installed" rows run climc from a non-editable install of this tree (as `pip install
cloudpods-one` gives a user), its dependencies taken from this venv: a development venv's editable
install adds setuptools' import finder (pathlib, fnmatch, urllib.parse: ~10-30 ms) to every start.

The "floor" row is the same GET done by a program that only imports click and httpx (as
core.client imports it) and builds one httpx.Client: what any click + httpx client pays before
doing any work of its own. climc's round trip minus the floor is climc's own cost.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BIN = Path(sys.executable).parent


def median_ms(cmd: list[str], runs: int, env: dict[str, str] | None = None) -> tuple[float, float]:
    """Median wall clock and median CPU time (user + sys of the child) in ms. CPU time moves far
    less with the machine's load than wall clock does, so it is the figure to compare across runs
    on a busy box."""
    import resource

    subprocess.run(cmd, capture_output=True, env=env)  # warm the page cache (and log in once: token cached)
    wall, cpu = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(cmd, capture_output=True, env=env)
        wall.append((time.perf_counter() - t0) * 1000)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(1000 * (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime))
    return statistics.median(wall), statistics.median(cpu)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--no-controller", action="store_true", help="Skip the server-list round trip")
    ap.add_argument("--no-installed", action="store_true", help="Skip the rows of a non-editable install")
    a = ap.parse_args()
    print(f"load average {_load()} (2 cores: above ~1 the wall clock is mostly waiting)")
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
        wall, cpu = median_ms(cmd, a.runs)
        print(f"{name:28s} median {wall:7.1f} ms  (CPU {cpu:6.1f} ms; {a.runs} runs)")
    with tempfile.TemporaryDirectory(prefix="bench-cli-inst-") as tmp:
        installed = None if a.no_installed else install_copy(Path(tmp))
        if installed:
            wall, cpu = median_ms([str(installed), "--version"], a.runs)
            print(f"{'climc --version (installed)':28s} median {wall:7.1f} ms  (CPU {cpu:6.1f} ms; {a.runs} runs)")
        if not a.no_controller:
            round_trip(a.runs, installed)
    print(f"load average {_load()} (at the end)")


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


# the floor: click + httpx (its CLI module hidden, as core.client does) + one Client + the same GET
FLOOR = """
import os, sys
sys.modules["httpx._main"] = None
import click, httpx
r = httpx.Client(verify=False).get(os.environ["BENCH_URL"], headers={"X-Auth-Token": os.environ["BENCH_TOKEN"]})
sys.stdout.write(r.text)
"""


def install_copy(tmp: Path) -> Path | None:
    """A venv holding a regular (non-editable) install of this tree, its dependencies read from
    this venv's site-packages; returns its climc, or None (with the reason) when pip cannot build it."""
    import sysconfig

    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    purelib = "import sysconfig; print(sysconfig.get_path('purelib'))"
    site = Path(subprocess.run([str(venv / "bin" / "python"), "-c", purelib],
                               check=True, capture_output=True, text=True).stdout.strip())
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                        "--target", str(site), str(Path(__file__).resolve().parent.parent)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        print(f"(installed rows skipped: pip could not install this tree: {r.stderr.strip().splitlines()[-1:]})")
        return None
    (site / "bench-deps.pth").write_text(sysconfig.get_path("purelib") + "\n")  # click, httpx … from here
    climc = venv / "bin" / "climc"
    climc.write_text(f"#!{venv / 'bin' / 'python'}\nimport sys\nfrom climc.main import main\nsys.exit(main())\n")
    climc.chmod(0o755)
    return climc


def round_trip(runs: int, installed: Path | None = None) -> None:
    """``climc server-list`` (and ``-o json``) with the environment rc_admin gives, token cached."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests.support.controller import Controller

    with tempfile.TemporaryDirectory(prefix="bench-cli-") as d:
        ctl = Controller.start(Path(d))
        try:
            env = {**os.environ, **ctl.env}
            rows = [("climc server-list", [str(BIN / "climc"), "server-list"]),
                    ("climc server-list -o json", [str(BIN / "climc"), "server-list", "-o", "json"])]
            if installed:
                rows.append(("climc server-list (installed)", [str(installed), "server-list"]))
            for name, cmd in rows:
                # the installed copy must not see the tree through the controller's PYTHONPATH
                run_env = {k: v for k, v in env.items() if k != "PYTHONPATH"} if "installed" in name else env
                wall, cpu = median_ms(cmd, runs, run_env)
                # CPU: climc's own (the controller is a running child, so its time is not counted)
                print(f"{name:28s} median {wall:7.1f} ms  (CPU {cpu:6.1f} ms; {runs} runs, round trip)")
            floor_env = {**env, "BENCH_URL": f"{ctl.url}/api/s/compute_v2/servers", "BENCH_TOKEN": ctl.token()}
            wall, cpu = median_ms([sys.executable, "-c", FLOOR], runs, floor_env)
            print(f"{'floor: click+httpx GET':28s} median {wall:7.1f} ms  (CPU {cpu:6.1f} ms; {runs} runs, round trip)")
            # the shell (bare climc): one process, N lines; per line = (N+1 lines - 1 line) / N
            n = max(runs, 10)

            def shell(lines: int) -> float:
                t0 = time.perf_counter()
                subprocess.run([str(BIN / "climc")], input="server-list -o json\n" * lines, env=env,
                               capture_output=True, text=True)
                return time.perf_counter() - t0

            one = statistics.median(shell(1) for _ in range(3))
            many = statistics.median(shell(n + 1) for _ in range(3))
            print(f"{'climc shell: server-list':28s} {1000 * (many - one) / n:7.1f} ms per line (after the first)")
        finally:
            ctl.stop()


if __name__ == "__main__":
    main()
