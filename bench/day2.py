"""Day-2 disk verbs: how long a snapshot of a running guest's 10 GiB qcow2 and a save-image of a 1 GiB
system disk take, through the whole path (climc → API → task → work item → agent → qemu-img / glance).

    PYTHONPATH=. .venv/bin/python bench/day2.py [--data-gb 4] [--root-mb 1024] [--runs 3]

A controller and one real `ocadm agent` on libvirt's test:/// driver (qemu-img makes and snapshots the
real qcow2 files, as on a host whose guest is stopped; a running qemu guest is snapshotted through
QMP instead, see tests/integration/test_day2_real.py). The 10 GiB data disk holds ``--data-gb`` of
data (a snapshot's cost grows with the allocated clusters, not the virtual size); the
system disk of the saved server holds ``--root-mb`` written in its overlay.
Targets (issue 19): snapshot <= 1 s; save-image of 1 GiB <= 15 s including glance's intake.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.procs import cpu_seconds  # noqa: E402


def _fill(path: str, mb: int, kind: str = "pattern") -> None:
    """``mb`` MiB written through qcow2 (qemu-io, 64 MiB pieces): allocated clusters. ``pattern``: each
    piece one repeated byte (compresses to nothing); ``mixed``: every other 32 MiB random, so the disk
    compresses about 2:1 as an OS disk does (the random half is where compression cannot help)."""
    cmds = []
    with tempfile.NamedTemporaryFile(prefix="bench-day2-rnd-") as rnd:
        rnd.write(os.urandom(32 << 20))
        rnd.flush()
        for off in range(0, mb, 32):
            n = min(32, mb - off)
            src = f"-s {rnd.name}" if kind == "mixed" and (off // 32) % 2 else f"-P {(off // 32) % 250 + 1}"
            cmds += ["-c", f"write {src} {off}M {n}M"]
        subprocess.run(["qemu-io", "-f", "qcow2", *cmds, path], check=True, capture_output=True)




def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-gb", type=int, default=4)
    ap.add_argument("--root-mb", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--fill", choices=("pattern", "mixed"), default="mixed",
                    help="what the saved disk holds: a byte pattern, or half random data (about 2:1 compressible)")
    a = ap.parse_args()
    from tests.e2e.test_agent_support import B, agent_cloud, server, wait_for

    with tempfile.TemporaryDirectory(prefix="bench-day2-") as tmp, agent_cloud(Path(tmp), 1, "bd2") as (ctl, ags):
        assert ctl.proc is not None and ags[0].proc is not None
        pids = {"controller": ctl.proc.pid, "agent": ags[0].proc.pid}

        def run(*args: str) -> dict:
            r = ctl.climc(*args, "-o", "json", timeout=600)
            assert r.returncode == 0, r.stderr
            return json.loads(r.stdout)

        def settled(name: str, status: str) -> dict:
            return wait_for(lambda: (s := server(ctl, name))["status"] == status and not s["active_task_id"] and s,
                            600, status)

        run("server-create", "bench-snap", "--disk", "tiny", "--disk", "10g", "--net", "default", "--auto-start")
        srv = settled("bench-snap", "running")
        data = next(d for d in srv["disks_info"] if d["index"] == 1)
        path = ctl.api.get(f"{B}/disks/{data['id']}").json()["disk"]["access_path"]
        _fill(path, a.data_gb * 1024)
        snaps = []
        for i in range(a.runs):
            t0 = time.monotonic()
            s = run("disk-create-snapshot", data["id"], f"bench-{i}")
            wait_for(lambda s=s: ctl.api.get(f"{B}/snapshots/{s['id']}").json()["snapshot"]["status"] == "ready",
                     120, "snapshot")
            snaps.append(time.monotonic() - t0)
        print(f"snapshot of a running guest's 10 GiB qcow2 ({a.data_gb} GiB allocated), climc -> ready: "
              f"median {statistics.median(snaps):.2f} s, runs {[round(x, 2) for x in snaps]} (target <= 1 s)")

        run("server-create", "bench-save", "--disk", "tiny:2g", "--net", "default")
        srv = settled("bench-save", "ready")
        root = ctl.api.get(f"{B}/disks/{srv['disks_info'][0]['id']}").json()["disk"]["access_path"]
        _fill(root, a.root_mb, a.fill)
        saves = []
        cpu: dict[str, list[float]] = {k: [] for k in pids}
        for i in range(a.runs):
            c0 = {k: cpu_seconds(p, children=True) for k, p in pids.items()}
            t0 = time.monotonic()
            # climc's own --wait (polls every 0.3 s, as a user would): a 10 Hz poll of the bench's would
            # cost the controller ~2 s of CPU per save on this 2-core machine, inflating both figures
            run("server-save-image", "bench-save", f"bench-img-{i}", "--wait")
            settled("bench-save", "ready")
            img = ctl.api.get(f"/api/s/image/v1/images/bench-img-{i}").json()["image"]
            assert img["status"] == "active", img
            saves.append(time.monotonic() - t0)
            for k, p in pids.items():
                cpu[k].append(cpu_seconds(p, children=True) - c0[k])
        print(f"save-image of a system disk with {a.root_mb} MiB written ({a.fill}; {img['size'] >> 20} MiB image), "
              f"climc -> image active: median {statistics.median(saves):.2f} s, runs "
              f"{[round(x, 2) for x in saves]} (target <= 15 s); CPU s per save (median): "
              + ", ".join(f"{k} {statistics.median(v):.1f}" for k, v in cpu.items()))


if __name__ == "__main__":
    main()
