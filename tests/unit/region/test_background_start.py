"""The region's background threads start once the server listens (ocadm serve sets
``app.state.listening``), and a stop before then starts none of them."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from core.region import background


@pytest.fixture
def steps(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The sync part stubbed (no database, no drivers); each background thread kind a recorder."""
    from core.region import hosted, migration_staging

    log: list[str] = []
    monkeypatch.setattr(hosted, "configure", lambda *a, **k: SimpleNamespace(drivers=SimpleNamespace(pxe=None)))
    monkeypatch.setattr(hosted, "unconfigure", lambda: log.append("unconfigure"))
    monkeypatch.setattr(migration_staging, "configure", lambda *a: None)
    monkeypatch.setattr(migration_staging, "unconfigure", lambda: None)

    def fake_threads(settings: Any, db: Any) -> list[Callable[[], Callable[[], None]]]:
        def step(name: str) -> Callable[[], Callable[[], None]]:
            def start() -> Callable[[], None]:
                log.append(f"start {name}")
                return lambda: log.append(f"stop {name}")
            return start
        return [step("worker"), step("periodic")]

    monkeypatch.setattr(background, "_threads", fake_threads)
    return log


def _app(listening: threading.Event | None) -> Any:
    return SimpleNamespace(state=SimpleNamespace(settings=SimpleNamespace(data_dir="/nonexistent"), db=object(),
                                                 listening=listening))


def _wait_for(cond: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 60
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_threads_start_once_the_server_listens(steps: list[str]) -> None:
    listening = threading.Event()
    stop = background.start(_app(listening))
    try:
        time.sleep(0.2)  # a negative check: nothing may start while the event is clear
        assert steps == []
        listening.set()
        _wait_for(lambda: "start periodic" in steps)
    finally:
        stop()
    assert steps == ["start worker", "start periodic", "stop periodic", "stop worker", "unconfigure"]


def test_stop_before_listening_starts_nothing(steps: list[str]) -> None:
    stop = background.start(_app(threading.Event()))
    stop()
    assert steps == ["unconfigure"]


def test_without_a_server_they_start_at_once(steps: list[str]) -> None:
    stop = background.start(_app(None))
    try:
        _wait_for(lambda: "start periodic" in steps)
    finally:
        stop()
    assert steps[-1] == "unconfigure"


def test_a_failed_start_tells_the_server_which_stops(steps: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    # a controller without task workers would accept creates it never runs: ocadm serve stops with the reason
    def broken(settings: Any, db: Any) -> list[Callable[[], Callable[[], None]]]:
        def start() -> Callable[[], None]:
            raise RuntimeError("database is locked")
        return [start]

    monkeypatch.setattr(background, "_threads", broken)
    told: list[BaseException] = []
    app = _app(None)
    app.state.background_failed = told.append
    stop = background.start(app)
    try:
        _wait_for(lambda: bool(told))
    finally:
        stop()
    assert str(told[0]) == "database is locked"
