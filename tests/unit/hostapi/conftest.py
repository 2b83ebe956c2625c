"""A migrated, bootstrapped SQLite database (identity + region defaults, as `ocadm init` leaves it)."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import core.db.models  # noqa: F401  (every table mapped)
from core.db.engine import Database
from core.keystone.auth import Authenticator
from core.keystone.keys import KeyRepository
from core.keystone.tokens import TokenCodec
from tests.support.unitdb import migrated_db


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    with migrated_db(tmp_path / "enrol.db", bootstrapped=True, defaults=True) as d:
        yield d


@pytest.fixture
def auth(tmp_path: Path) -> Authenticator:
    repo = KeyRepository(tmp_path / "keys")
    repo.create()
    return Authenticator(TokenCodec(repo), lifetime_s=600, lockout_failures=3, lockout_seconds=60)
