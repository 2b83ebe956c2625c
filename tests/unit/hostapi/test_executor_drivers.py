"""The executor's cache of hosted drivers (core/region/hosted.py): the heartbeat closes the drivers of
hosts gone from its list, never one built after it read that list (a host created meanwhile, its
driver in use)."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from core.region import hosted


class FakeHosted:
    def __init__(self) -> None:
        self.closed = False

    def restore(self) -> list[tuple[str, str]]:
        return []

    def close(self) -> None:
        self.closed = True


def test_a_driver_built_after_the_heartbeat_read_its_hosts_is_not_closed(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hosted, "build", lambda *a, **kw: FakeHosted())
    monkeypatch.setattr(hosted, "decrypt_config", lambda blob: {})
    drivers = hosted.Drivers(tmp_path, db=None)
    monkeypatch.setattr(drivers, "images", lambda: None)
    old: Any = drivers.get("h-old", "fake", "cfg")
    listed_at = time.monotonic()  # the heartbeat reads its hosts: neither h-old (deleted) nor h-new (not yet)
    new: Any = drivers.get("h-new", "fake", "cfg")  # a host created meanwhile: a user action builds its driver
    drivers.forget(set(), listed_at)
    assert old.closed and not new.closed
    assert drivers.get("h-new", "fake", "cfg") is new  # still the one in use
    drivers.forget(set(), time.monotonic())  # the next heartbeat's list lacks it too: gone
    assert new.closed
