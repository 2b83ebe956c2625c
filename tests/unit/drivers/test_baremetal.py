"""The bare-metal driver without a BMC: config validation (never contacting the BMC), the missing
SDK, and the bounded call discipline."""
from __future__ import annotations

import sys
import threading
import time

import pytest

from drivers.baremetal.common import BmcConfig, Bounded, parse_config
from drivers.baremetal.driver import BaremetalDriver
from drivers.base import BmcError, Capability, DriverUnavailable, InvalidSpec, Probing
from drivers.registry import get_driver

IPMI = {"ipmi_ip": "10.0.0.5", "ipmi_username": "admin", "ipmi_password": "pw"}


def test_registry_knows_baremetal_and_its_capabilities() -> None:
    cls = get_driver("baremetal")
    assert cls is BaremetalDriver
    assert {Capability.BMC_POWER, Capability.BOOT_DEVICE, Capability.SENSORS} <= cls.capabilities


@pytest.mark.parametrize("cfg, field", [
    ({**IPMI, "ipmi_ip": ""}, "ipmi_ip"),
    ({**IPMI, "ipmi_ip": "bad host!"}, "ipmi_ip"),
    ({**IPMI, "ipmi_username": ""}, "ipmi_username"),
    ({**IPMI, "ipmi_password": ""}, "ipmi_password"),
    ({**IPMI, "ipmi_password": "x" * 21}, "ipmi_password"),
    ({**IPMI, "ipmi_port": 70000}, "ipmi_port"),
    ({**IPMI, "timeout_s": "soon"}, "timeout_s"),
    ({**IPMI, "protocol": "snmp"}, "protocol"),
    ({"redfish_url": "ftp://x", "ipmi_username": "a", "ipmi_password": "b"}, "redfish_url"),
])
def test_bad_config_is_refused_naming_the_field(cfg: dict, field: str) -> None:
    with pytest.raises(InvalidSpec, match=field):
        BaremetalDriver(cfg).validate()


def test_validate_does_not_contact_the_bmc(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    def no_network(*a: object, **k: object) -> None:
        raise AssertionError("validate() opened a socket")

    # (not a time bound: this 2-core box under load took 1.6 s once just to import)
    monkeypatch.setattr(socket, "socket", no_network)
    d = BaremetalDriver({**IPMI, "ipmi_ip": "192.0.2.1"})  # TEST-NET-1: nothing answers there
    d.validate()
    monkeypatch.undo()
    assert isinstance(d, Probing)
    r = BaremetalDriver({"redfish_url": "https://192.0.2.1:8443/", "ipmi_username": "a", "ipmi_password": "b"})
    r.validate()
    assert r.bmc.info() == {"protocol": "redfish", "ip": "192.0.2.1", "port": 8443, "username": "a",
                            "url": "https://192.0.2.1:8443", "system": ""}
    assert "b" not in r.bmc.info().values()


def test_missing_pyghmi_is_a_clear_driver_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyghmi", None)  # import pyghmi now raises ModuleNotFoundError
    with pytest.raises(DriverUnavailable, match="baremetal needs pyghmi"):
        BaremetalDriver(IPMI).validate()


def test_a_call_past_its_deadline_fails_fast_and_others_are_not_held() -> None:
    cfg = BmcConfig("ipmi", host="192.0.2.9", port=623, username="a", password="b", timeout_s=0.5, retries=1)
    lost = []
    b = Bounded(cfg, lambda: lost.append(1))
    gate = threading.Event()
    t0 = time.monotonic()
    with pytest.raises(BmcError, match="did not answer") as ei:
        b.call("a power status read", lambda: gate.wait(5))
    took = time.monotonic() - t0
    gate.set()
    assert ei.value.status == "unreachable" and 0.9 < took < 3.0 and lost
    other = Bounded(parse_config({**IPMI, "ipmi_ip": "192.0.2.10"}), lambda: None)
    assert other.call("x", lambda: 42) == 42


def test_an_auth_failure_is_not_retried() -> None:
    cfg = parse_config(IPMI)
    calls = []

    def refuse() -> None:
        calls.append(1)
        raise BmcError("refused", "auth_failed")

    with pytest.raises(BmcError):
        Bounded(cfg, lambda: None).call("x", refuse)
    assert len(calls) == 1


def test_the_console_relay_outwaits_an_sol_activation() -> None:
    # The relay waits for the agent's end of a session, which arrives only after the console has been
    # opened: a wait shorter than an SOL activation's own deadline turned a slow activation into
    # "the host agent did not connect" (the deadline-equal-to-the-inner-wait class of CI flake)
    from core.console import relay
    from drivers.baremetal.common import SLOW

    assert SLOW * BmcConfig("ipmi").timeout_s + 10 < relay.AGENT_WAIT_S
