"""Provisioning latency: API call → ``running`` on the test hypervisor, through real agents.

    .venv/bin/python bench/provision.py [--single 20] [--batch 50] [--agents 5]

A real controller (`ocadm init` + `ocadm serve`) and N real `ocadm agent` processes, each on its
own libvirt test:/// host, joined with one-time tokens. The image is cached on every agent
before timing (a warm-up server per agent). Prints:

* single: p50/p90/max of POST /servers (auto_start) → GET shows running, one at a time;
* batch: one POST with count=N → all N running; and where the time went (task stages from the
  region's task log, the agents' handler times from their logs).
"""
from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.e2e.test_agent_support import AgentProc, B, upload_tiny_image
from tests.support.controller import Controller


def _running(ctl: Controller, ids: list[str], timeout: float) -> float:
    """Seconds until every server in ``ids`` is running (polling every 10 ms)."""
    t0 = time.monotonic()
    left = set(ids)
    while left:
        if time.monotonic() - t0 > timeout:
            raise SystemExit(f"timeout: {len(left)} server(s) not running after {timeout} s")
        page = ctl.api.get(f"{B}/servers", params={"limit": 2048, "status": "running", "details": "false"}).json()
        left -= {s["id"] for s in page["servers"]}
        failed = ctl.api.get(f"{B}/servers", params={"limit": 2048, "status": "deploy_fail"}).json()["servers"]
        if any(s["id"] in left for s in failed):
            raise SystemExit("a server failed to deploy: see the agents' logs")
        if left:
            time.sleep(0.01)
    return time.monotonic() - t0


def _create(ctl: Controller, name: str, count: int = 1) -> tuple[list[str], float]:
    body: dict[str, Any] = {"server": {"name": name, "vcpu_count": 1, "vmem_size": 512, "disks": ["tiny"],
                                       "nets": ["default"], "auto_start": True}}
    if count > 1:
        body["count"] = count
    t0 = time.monotonic()
    r = ctl.api.post(f"{B}/servers", json=body)
    accepted = time.monotonic() - t0
    r.raise_for_status()
    data = r.json()
    ids = [x["body"]["id"] for x in data["servers"]] if count > 1 else [data["server"]["id"]]
    return ids, accepted


def _delete(ctl: Controller, ids: list[str]) -> None:
    for i in ids:
        ctl.api.delete(f"{B}/servers/{i}", params={"override_pending_delete": "true"})
    end = time.monotonic() + 120
    while time.monotonic() < end:
        left = ctl.api.get(f"{B}/servers", params={"limit": 2048, "details": "false"}).json()["servers"]
        if not left:
            return
        time.sleep(0.05)


def _stage_profile(ctl: Controller, ids: list[str]) -> dict[str, float]:
    """Median seconds between the create task's stages (its stage log), over ``ids``."""
    from datetime import datetime

    gaps: dict[str, list[float]] = {}
    for sid in ids:
        tasks = ctl.api.get(f"{B}/tasks", params={"obj_id": sid, "task_name": "ServerCreateTask"}).json()["tasks"]
        if not tasks:
            continue
        t = tasks[0]
        marks = [(s["stage"], datetime.fromisoformat(s["at"])) for s in t["stages"]]
        if t.get("finished_at"):
            marks.append(("finished", datetime.fromisoformat(t["finished_at"].replace("Z", "+00:00"))))
        created = datetime.fromisoformat(t["created_at"].replace("Z", "+00:00"))
        prev_name, prev_at = "created", created
        for name, at in marks:
            gaps.setdefault(f"{prev_name}→{name}", []).append((at - prev_at).total_seconds())
            prev_name, prev_at = name, at
    return {k: statistics.median(v) for k, v in gaps.items()}


def _agent_ms(agents: list[AgentProc]) -> list[float]:
    out = []
    for a in agents:
        out += [float(m) for m in re.findall(r"guest-deploy for task \S+: done in (\d+) ms", a.log_path.read_text())]
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--single", type=int, default=20, help="sequential single creates to time")
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--agents", type=int, default=5)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-provision-") as tmp:
        root = Path(tmp)
        ctl = Controller.start(root / "ctl")
        agents: list[AgentProc] = []
        try:
            for i in range(a.agents):
                ag = AgentProc.join(ctl, root / f"a{i}", f"bench-{i}", cpus=32, memory_mb=131072,
                                    settings={"ping_interval_s": 30.0, "sync_interval_s": 60.0, "workers": 8})
                ag.start()
                agents.append(ag)
            upload_tiny_image(ctl)
            # warm-up: the image into every agent's cache
            warm = []
            for i in range(len(agents)):  # spread: one per agent
                ids, _ = _create(ctl, f"warm-{i}")
                warm += ids
            _running(ctl, warm, 60)
            _delete(ctl, warm)
            for ag in agents:
                ag.log_path.write_text("")

            single, accepted, single_ids = [], [], []
            for i in range(a.single):
                ids, acc = _create(ctl, f"one-{i}")
                single.append(acc + _running(ctl, ids, 60))
                accepted.append(acc)
                single_ids += ids
                _delete(ctl, ids)
            q = statistics.quantiles(single, n=10)
            print(f"single server, API call → running (cached image, {a.single} runs): "
                  f"p50 {statistics.median(single):.3f} s  p90 {q[8]:.3f} s  max {max(single):.3f} s  "
                  f"(create accepted: p50 {statistics.median(accepted) * 1000:.0f} ms)")
            ms = _agent_ms(agents)
            if ms:
                print(f"  agent guest-deploy handler: p50 {statistics.median(ms):.0f} ms")
            print("  create task stage gaps (median s):")
            for k, v in _stage_profile(ctl, single_ids).items():
                print(f"    {k:45s} {v:.3f}")
            for ag in agents:
                ag.log_path.write_text("")

            ids, acc = _create(ctl, "batch", a.batch)
            total = acc + _running(ctl, ids, 300)
            hosts = {s["host_id"] for s in ctl.api.get(f"{B}/servers", params={"limit": 2048}).json()["servers"]}
            print(f"batch of {a.batch} across {a.agents} agents: all running in {total:.2f} s "
                  f"(create accepted in {acc * 1000:.0f} ms; {len(hosts)} hosts used)")
            ms = _agent_ms(agents)
            if ms:
                print(f"  agent guest-deploy handler: p50 {statistics.median(ms):.0f} ms, max {max(ms):.0f} ms "
                      f"({len(ms)} deploys)")
            print("  create task stage gaps (median s):")
            for k, v in _stage_profile(ctl, ids).items():
                print(f"    {k:45s} {v:.3f}")
            _delete(ctl, ids)
        finally:
            for ag in agents:
                ag.stop()
            ctl.stop()
    print("(2 shared cores, other engineers' jobs running: treat as rough figures)")


if __name__ == "__main__":
    main()
