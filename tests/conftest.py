"""Shared test settings. Full-tier peers: see tests/support/peers.py."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.controller import Controller


@pytest.fixture(scope="session")
def controller(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Controller]:
    """One running controller for the whole session (tests must not depend on each other's data)."""
    ctl = Controller.start(tmp_path_factory.mktemp("ctl"))
    yield ctl
    ctl.stop()


@pytest.fixture
def fresh_controller(tmp_path: Path) -> Iterator[Controller]:
    """A controller of one's own, for tests that break or restart it."""
    ctl = Controller.start(tmp_path)
    yield ctl
    ctl.stop()
