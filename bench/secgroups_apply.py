"""Security groups on one host: a full apply (the agent's start or repair) and one-guest updates.

    sudo PYTHONPATH=. .venv/bin/python bench/secgroups_apply.py [--guests 500] [--rules 20] [--updates 10]

Full apply: the agent's own path, ``FirewallSync.sync_once(full=True)``: the host's HostSecgroups
validated from JSON as the long poll brings it, compiled, applied in one transaction (libnftables
in-process, as the agent does; ``--nft-command``: ``nft -f``). Two hosts: every guest with its own
``--rules`` rules (the worst case: no two guests alike), and guests sharing ``--shared`` rule sets
(the usual case: a host's guests are in a handful of security groups). 5 EIPs each.
Update: one guest's rule changed, one guest removed, one added; each compiled against the previous
plan and applied as one delta transaction, as a security-group change does.
Needs root and nft (a scratch network namespace ``cmnb...``); without them only compile times.
Target (issue 16): full apply of 500 guests x 20 rules <= 1 s. CPU time (ours, libnftables' and the
kernel's work in our syscalls) is what an idle host's wall time would be; on the shared 2-core box
the wall time mostly measures waiting for a core (the load average is printed with each figure).
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))


def names(sid: str, i: int) -> str:
    return f"cp{sid[:10]}{i}"


def full_apply(fw: Any, raw: dict[str, Any], label: str, runs: int = 3) -> None:
    """``runs`` full applies through FirewallSync as the agent makes them; prints the medians."""
    from core.agent.firewall import FirewallSync, NoFirewall
    from core.host_protocol import HostSecgroups

    spent = []
    validate = []

    def fetch() -> HostSecgroups:
        t = time.process_time()
        spec = HostSecgroups.model_validate(raw)  # what the agent does with the long poll's JSON
        validate.append(time.process_time() - t)
        return spec

    sync = FirewallSync(fw or NoFirewall("bench"), "cmn_bench", fetch, names)
    sync.qos.apply = lambda limits: None  # type: ignore[method-assign]  # tc is not what is measured
    for _ in range(runs):
        t0, c0 = time.perf_counter(), time.process_time()
        assert sync.sync_once(full=True), sync.error
        spent.append((time.perf_counter() - t0, time.process_time() - c0, sync.compile_ms, sync.apply_ms))
    wall, cpu, comp, nft = (statistics.median(x[i] for x in spent) for i in range(4))
    print(f"full apply, {label}: {wall * 1000:.0f} ms wall, {cpu * 1000:.0f} ms CPU "
          f"(validate {statistics.median(validate) * 1000:.0f} ms CPU, compile {comp:.0f} ms, "
          f"nft {nft:.0f} ms{'' if fw else ' (skipped: needs root and nft)'}; {sync.ports} ports, "
          f"{sync.plan.rules if sync.plan else 0} nft rules in guest chains; median of {runs}; "
          f"load {os.getloadavg()[0]:.1f})")


def with_eips(spec: Any) -> Any:
    from core.host_protocol import GuestEip

    spec.eips = [GuestEip(eip=f"203.0.113.{i + 10}", ip=p.ip, cidr=f"{p.ip.rsplit('.', 1)[0]}.0/24",
                          server_id=p.server_id) for i, p in enumerate(spec.ports[:5])]
    return spec


def full_applies(guests: int, rules: int, shared: int, nft_command: bool = False) -> Any:
    """The two hosts' full applies (worst and shared case) in a scratch namespace; returns the
    worst case's spec and the firewall (None: cannot apply here) still in that namespace's hands
    via ``cleanup`` (call it)."""
    from secgroup import spec as make_spec

    from core.agent.firewall import NftFirewall

    worst = with_eips(make_spec(guests, rules))
    usual = with_eips(make_spec(guests, rules, distinct=shared))
    ns = f"cmnb{uuid.uuid4().hex[:6]}"
    fw = None
    if os.geteuid() == 0 and shutil.which("nft"):
        subprocess.run(["ip", "netns", "add", ns], check=True)
        fw = NftFirewall("cmn_bench", ns, inprocess=not nft_command)

    def cleanup() -> None:
        if fw is not None:
            subprocess.run(["ip", "netns", "del", ns], check=False)

    try:
        how = "nft -f" if fw is not None and fw.lib is None else "libnftables"
        full_apply(fw, worst.model_dump(mode="json"), f"{guests} guests x {rules} rules, no two guests alike ({how})")
        full_apply(fw, usual.model_dump(mode="json"), f"{guests} guests x {rules} rules in {shared} distinct "
                   f"rule sets ({how})")
    except BaseException:
        cleanup()
        raise
    return worst, fw, cleanup


def main() -> None:
    from core.agent.firewall import build_plan, render_delta, render_full
    from core.host_protocol import SecRule

    ap = argparse.ArgumentParser()
    ap.add_argument("--guests", type=int, default=500)
    ap.add_argument("--rules", type=int, default=20)
    ap.add_argument("--shared", type=int, default=10, help="distinct rule sets in the shared case")
    ap.add_argument("--updates", type=int, default=10)
    ap.add_argument("--nft-command", action="store_true", help="apply with nft -f, not libnftables")
    a = ap.parse_args()
    spec, fw, cleanup = full_applies(a.guests, a.rules, a.shared, a.nft_command)
    try:
        plan = build_plan(spec, names)
        if fw is not None:
            fw.apply(render_full(plan, "cmn_bench"))
        kinds: dict[str, list[tuple[float, float, int, float]]] = {
            "rule change": [], "guest removed": [], "guest added": []}
        for n in range(a.updates):
            g = n % len(spec.ports)
            p = spec.ports[g]
            steps = [("rule change", spec.ports[:g] + [p.model_copy(update={"rules": [
                        *p.rules[:-1], SecRule(direction="in", action="allow", protocol="tcp", ports=str(30000 + n),
                                               priority=1)]})] + spec.ports[g + 1:]),
                     ("guest removed", spec.ports[:g] + spec.ports[g + 1:]),
                     ("guest added", spec.ports)]
            for kind, ports in steps:
                t0, p0 = time.perf_counter(), time.process_time()
                new = build_plan(spec.model_copy(update={"ports": ports}), names, plan.marks)
                delta = render_delta(plan, new, "cmn_bench")
                t1 = time.perf_counter()
                if fw is not None:
                    fw.apply(delta)
                kinds[kind].append((t1 - t0, time.perf_counter() - t0, len(delta.splitlines()),
                                    time.process_time() - p0))
                plan = new
        for kind, xs in kinds.items():
            print(f"one-guest update ({kind}): {statistics.median(x[1] for x in xs) * 1000:.0f} ms wall, "
                  f"{statistics.median(x[3] for x in xs) * 1000:.0f} ms CPU "
                  f"(compile+diff {statistics.median(x[0] for x in xs) * 1000:.0f} ms, "
                  f"{int(statistics.median(x[2] for x in xs))} lines, median of {len(xs)})")
    finally:
        cleanup()


if __name__ == "__main__":
    main()
