"""A migrated SQLite database per test (the real schema, no app)."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.db.engine import Database
from tests.support.unitdb import migrated_db


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    with migrated_db(tmp_path / "region.db") as d:
        yield d
