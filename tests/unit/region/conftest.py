"""A migrated SQLite database per test (the real schema, no app)."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.db.engine import Database
from core.db.migrate import upgrade


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    d = Database(f"sqlite:///{tmp_path / 'region.db'}")
    upgrade(d.engine)
    yield d
    d.dispose()
