"""The declared transition table: actions only from their states, progress events only along it."""
from __future__ import annotations

from types import SimpleNamespace

import pytest

from core.errors import InvalidStatusError, ResourceBusyError
from core.region import statemachine as sm


def srv(status: str, task: str | None = None) -> SimpleNamespace:
    return SimpleNamespace(name="vm", status=status, active_task_id=task)


def test_start_stop_paths() -> None:
    s = srv("ready")
    assert sm.apply(s, "start") == "start_start"
    assert sm.apply(s, "starting") == "starting"
    assert sm.apply(s, "started") == "running"
    assert sm.apply(s, "stop") == "start_stop"
    assert sm.apply(s, "stopping") == "stopping"
    assert sm.apply(s, "stopped") == "ready"


@pytest.mark.parametrize(("status", "action"), [("running", "start"), ("ready", "stop"), ("ready", "suspend"),
                                                ("running", "change-config"), ("schedule", "start"),
                                                ("deploying", "migrate")])
def test_wrong_state_is_invalid_status(status: str, action: str) -> None:
    with pytest.raises(InvalidStatusError, match=f"in status {status}"):
        sm.check(srv(status), action)


def test_busy_is_409() -> None:
    with pytest.raises(ResourceBusyError):
        sm.guard_busy(srv("ready", task="t1"))


def test_every_target_is_a_known_status() -> None:
    sources = {f for f, _ in sm.TRANSITIONS}
    for (_f, ev), to in sm.TRANSITIONS.items():
        # every status we move to can be left again (by an event or by delete)
        assert to in sources or to == "deleting" and ev == "delete", (to, ev)


def test_progress_events_do_not_jump() -> None:
    s = srv("ready")
    assert sm.apply_if(s, "deployed") is False and s.status == "ready"


def test_a_reason_lasts_until_the_status_moves() -> None:
    s = SimpleNamespace(name="vm", status="running", active_task_id=None, status_reason="")
    assert sm.apply_if(s, "observed:unknown")
    sm.set_reason(s, "guest lost on host h1: disk0.qcow2 is missing")
    assert sm.apply_if(s, "observed:unknown") and s.status_reason.startswith("guest lost")  # same status: kept
    assert sm.apply(s, "stop") == "start_stop" and s.status_reason == ""
    sm.set_reason(srv("ready"), "rows without the column are left alone")
