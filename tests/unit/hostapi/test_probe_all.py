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


def machine(db: Any, name: str, config: str, sys_info: dict[str, Any]) -> str:
    """A bare-metal host row (online, its driver config ``config``) in the first zone; its id."""
    from sqlalchemy import select

    from core.region.models import Host, Zone

    with db.session() as s:
        zone = s.scalars(select(Zone)).first()
        h = Host(name=name, zone_id=zone.id, host_type="baremetal", target="executor", driver="baremetal",
                 driver_config=config, host_status="online", sys_info=sys_info)
        s.add(h)
        s.flush()
        return str(h.id)


def bmc(db: Any, host_id: str, key: str) -> str:
    """What the host row records of its BMC under ``key``."""
    from core.region.models import Host

    with db.session() as s:
        return str(s.get(Host, host_id).sys_info["bmc"][key])


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


def test_a_probe_with_settings_changed_meanwhile_records_nothing(db: Any) -> None:
    # the heartbeat probed with the old password; a host-update saved the right one (and recorded "ok")
    # before that probe ended: its auth_failed is about settings the host no longer has (seen under load:
    # the host showed auth_failed right after a successful host-update)
    hid = machine(db, "bm-probe", "settings-new", {"bmc": {"ipmi_status": "ok", "ipmi_reason": ""}})

    def status() -> str:
        return bmc(db, hid, "ipmi_status")

    class Refused(FakeMachine):
        def probe(self) -> dict[str, Any]:
            raise BmcError("BMC 192.0.2.1:623 refused user 'admin'", "auth_failed")

    refused = Refused(0)
    probe_all(db, [(hid, "bm-probe", refused)], configs={hid: "settings-old"})
    assert status() == "ok"  # dropped: probed with the old settings
    probe_all(db, [(hid, "bm-probe", refused)], configs={hid: "settings-new"})
    assert status() == "auth_failed"  # the settings it has now: recorded


def test_a_probe_that_began_before_a_power_action_was_recorded_records_nothing(db: Any) -> None:
    # CI: the heartbeat probe read "on" while a soft power-off was still being applied, and ended after the
    # power-off had recorded "off": the host showed "on" for a machine that was off
    from core.region.host_bmc import record

    hid = machine(db, "bm-late", "cfg", {})

    def power() -> str:
        return bmc(db, hid, "power_status")

    gate, probing = threading.Event(), threading.Event()

    class ReadsOnThenWaits(FakeMachine):
        def probe(self) -> dict[str, Any]:
            probing.set()
            gate.wait(10)  # the power action is recorded while this read is in flight
            return {"ipmi_status": "ok", "power_status": "on", "health": "ok", "ipmi_reason": ""}

    t = threading.Thread(target=probe_all, args=(db, [(hid, "bm-late", ReadsOnThenWaits(0))]),
                         kwargs={"configs": {hid: "cfg"}})
    t.start()
    assert probing.wait(10)
    record(db, hid, {"ipmi_status": "ok", "ipmi_reason": "", "power_status": "off"})  # the power-off's outcome
    gate.set()
    t.join(10)
    assert power() == "off"
    probe_all(db, [(hid, "bm-late", FakeMachine(0))], configs={hid: "cfg"})  # a probe begun after it: recorded
    assert power() == "on"
