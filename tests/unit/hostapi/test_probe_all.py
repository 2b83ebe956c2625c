"""The controller's BMC probe round: every machine at once, so one that never answers costs its own
deadline only (bench/ipmi.py measures it against 20 ipmi_sim BMCs)."""
from __future__ import annotations

import threading
import time
from typing import Any

from core.region.host_bmc import probe_all
from drivers.base import BmcError


class FakeMachine:
    """A Probing hosted driver: answers after ``delay`` s, or fails like a BMC that never answers."""

    bmc: Any = None

    def __init__(self, delay: float, dead: bool = False) -> None:
        self.delay, self.dead = delay, dead

    def probe(self) -> dict[str, Any]:
        time.sleep(self.delay)
        if self.dead:
            raise BmcError("BMC 192.0.2.1:623 did not answer", "unreachable")
        return {"ipmi_status": "ok", "power_status": "on", "health": "ok", "ipmi_reason": ""}


def test_a_dead_bmc_does_not_delay_the_others() -> None:
    done: dict[str, float] = {}
    lock = threading.Lock()
    t0 = time.monotonic()

    def sink(hid: str, seen: dict[str, Any]) -> None:
        with lock:
            done[hid] = time.monotonic() - t0

    targets = [("dead", "dead", FakeMachine(3.0, dead=True))] + [(f"m{i}", f"m{i}", FakeMachine(0.05))
                                                                  for i in range(19)]
    out = probe_all(None, targets, sink=sink)
    assert out["dead"]["ipmi_status"] == "unreachable" and "did not answer" in out["dead"]["ipmi_reason"]
    assert all(out[f"m{i}"]["ipmi_status"] == "ok" for i in range(19))
    assert max(v for k, v in done.items() if k != "dead") < 2.0 < done["dead"]


def test_hosts_without_a_bmc_are_not_probed() -> None:
    assert probe_all(None, [("h", "h", object())]) == {}
