"""Shared test settings. Full-tier peers: see tests/support/peers.py."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.controller import Controller, drop_test_databases


@pytest.fixture(scope="session", autouse=True)
def _test_databases() -> Iterator[None]:
    """Drop the per-controller PostgreSQL/MariaDB databases (CLOUDPODS_TEST_DB) after the session."""
    yield
    drop_test_databases()


@pytest.fixture(scope="session")
def controller(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Controller]:
    """One running controller for the whole session (tests must not depend on each other's data)."""
    ctl = Controller.start(tmp_path_factory.mktemp("ctl"))
    yield ctl
    ctl.stop()


@pytest.fixture(scope="session")
def cirros_image(controller: Controller) -> dict[str, object]:
    """A small public raw image named `cirros`, uploaded once through glance's v1 API."""
    existing = controller.api.get("/api/s/image/v1/images/cirros")
    if existing.status_code == 200:
        return dict(existing.json()["image"])
    data = b"\0" * (1 << 20)
    r = controller.api.post("/api/s/image/v1/images", content=data, headers={
        "Content-Type": "application/octet-stream", "X-Image-Meta-Name": "cirros",
        "X-Image-Meta-Disk-Format": "raw", "X-Image-Meta-Is-Public": "true",
        "X-Image-Meta-Property-Os_type": "Linux"})
    assert r.status_code in (200, 201), r.text
    return dict(r.json()["image"])


@pytest.fixture
def fresh_controller(tmp_path: Path) -> Iterator[Controller]:
    """A controller of one's own, for tests that break or restart it."""
    ctl = Controller.start(tmp_path)
    yield ctl
    ctl.stop()
