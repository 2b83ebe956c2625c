"""A migrated database per test (the real schema, no app): SQLite, or a fresh one on the PostgreSQL or
MariaDB server when CLOUDPODS_TEST_DB=pg|mysql (with its CLOUDPODS_TEST_PG_URL / _MYSQL_URL)."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.db.engine import Database
from core.db.migrate import upgrade
from tests.support.controller import drop_test_databases, fresh_database, test_db_kind


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    kind = test_db_kind()
    d = Database(f"sqlite:///{tmp_path / 'region.db'}" if kind == "sqlite" else fresh_database(kind))
    upgrade(d.engine)
    yield d
    d.dispose()
    drop_test_databases()
