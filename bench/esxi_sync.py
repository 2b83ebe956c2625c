"""Sync of a simulated vCenter: 2 datacenters, 20 hosts, 1,000 VMs (issue 14's figure).

    .venv/bin/python bench/esxi_sync.py [--vms-per-pool 250] [--runs 3]

Starts govmomi's simulator (tests/support/vcsim.py; built once from Debian's package) with
2 datacenters x (1 cluster of 9 hosts + 1 standalone host), 250 VMs per resource pool (1,000), and
times ``read_inventory`` (the property-collector reads a sync does) cold and then warm (device
lists re-read only for VMs whose configuration moved: none). With ``--controller`` it also runs
the whole thing through a controller: ``climc cloud-account-create-vmware`` then two syncs,
printing each sync's seconds and changed-row count (the second must write nothing).

Machine noise: the simulator and pyvmomi share the box's 2 cores with everything else; the figures
move by 20 % or more with load (the load average is printed). pyvmomi's XML parsing dominates.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from drivers.esxi.inventory import read_inventory
from drivers.esxi.session import EsxiConfig, Session
from tests.support.vcsim import Vcsim


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vms-per-pool", type=int, default=250)
    ap.add_argument("--runs", type=int, default=3, help="warm reads after the cold one")
    ap.add_argument("--controller", action="store_true", help="also sync through a controller (climc)")
    args = ap.parse_args()
    t0 = time.monotonic()
    with Vcsim(dc=2, cluster=1, cluster_host=9, standalone_host=1, vm=args.vms_per_pool) as sim:
        print(f"simulator up in {time.monotonic() - t0:.1f} s (load {os.getloadavg()[0]:.2f})")
        with Session(EsxiConfig.parse(sim.config())) as s:
            t = time.monotonic()
            inv = read_inventory(s)
            cold = time.monotonic() - t
            counts = inv.counts()
            print(f"inventory: {counts}")
            print(f"cold read: {cold:.2f} s")
            warm = []
            for _ in range(args.runs):
                t = time.monotonic()
                read_inventory(s)
                warm.append(time.monotonic() - t)
            print("warm reads: " + ", ".join(f"{w:.2f} s" for w in warm))
        if args.controller:
            controller_sync(sim)
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    return 0


def controller_sync(sim: Vcsim) -> None:
    """Account create + two syncs through climc against a fresh controller."""
    import json
    import tempfile

    from tests.support.controller import Controller

    with tempfile.TemporaryDirectory(prefix="bench-esxi-") as tmp:
        ctl = Controller.init(Path(tmp))
        ctl.env["CLOUDPODS_CLOUD_SECRET"] = sim.password
        ctl.serve()
        try:
            r = ctl.climc("cloud-account-create-vmware", "bench-vc", "--host", sim.host, "--port", str(sim.port),
                          "--username", sim.username, "--insecure", "--no-sync", "-o", "json")
            if r.returncode != 0:
                print(f"account create failed: {r.stderr.strip()}")
                return
            for i in (1, 2):
                t = time.monotonic()
                r = ctl.climc("cloud-account-sync", "bench-vc", "--wait", "-o", "json", timeout=600)
                wall = time.monotonic() - t
                out = json.loads(r.stdout) if r.stdout.strip().startswith("{") else {}
                status = out.get("status") or r.stderr.strip()
                print(f"sync {i}: {wall:.2f} s wall (climc --wait), {out.get('seconds')} s in the controller, "
                      f"{out.get('changed')} change(s), status {status}")
        finally:
            ctl.stop()


if __name__ == "__main__":
    raise SystemExit(main())
