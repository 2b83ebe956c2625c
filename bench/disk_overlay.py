"""How long a qcow2 overlay takes to create on a small and on a large (sparse) base image.

Shows the create is O(1) in the base's size (target <= 20 ms). Prints figures; asserts nothing.

    .venv/bin/python bench/disk_overlay.py [--runs 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from drivers.kvm.disks import create_data_disk, create_overlay, delete_disk


def measure(base: str, fmt: str, workdir: str, runs: int, *, bare: bool) -> list[float]:
    """ms per overlay: bare = the `qemu-img create` alone; else create_overlay() (create + info)."""
    times = []
    for i in range(runs):
        path = os.path.join(workdir, f"overlay-{i}.qcow2")
        t0 = time.perf_counter()
        if bare:
            subprocess.run(
                ["qemu-img", "create", "-q", "-f", "qcow2", "-F", fmt, "-b", base, path], check=True
            )
        else:
            create_overlay(base, path, backing_format=fmt)
        times.append((time.perf_counter() - t0) * 1000)
        delete_disk(path)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-overlay-") as d:
        bases = [
            ("64 MiB qcow2", create_data_disk(os.path.join(d, "small.qcow2"), 64).path, "qcow2"),
            ("20 GiB qcow2", create_data_disk(os.path.join(d, "large.qcow2"), 20 * 1024).path, "qcow2"),
            (
                "20 GiB raw (sparse)",
                create_data_disk(os.path.join(d, "large.raw"), 20 * 1024, fmt="raw").path,
                "raw",
            ),
        ]
        print(f"{'base image':<22} {'what':<24} {'runs':>4} {'p50 ms':>8} {'p90 ms':>8} {'max ms':>8}")
        for label, base, fmt in bases:
            for what, bare in (("qemu-img create", True), ("create_overlay()+info", False)):
                t = sorted(measure(base, fmt, d, args.runs, bare=bare))
                p90 = t[min(len(t) - 1, int(len(t) * 0.9))]
                print(
                    f"{label:<22} {what:<24} {len(t):>4} {statistics.median(t):>8.1f} {p90:>8.1f} {t[-1]:>8.1f}"
                )
        print("(each figure includes process start-up; shared 2-core machine, expect noise)")


if __name__ == "__main__":
    main()
