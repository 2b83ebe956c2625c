"""A real SQLite identity database, bootstrapped as `ocadm init` does, for the keystone unit tests."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.db.engine import Database
from core.keystone.auth import Authenticator
from core.keystone.keys import KeyRepository
from core.keystone.tokens import TokenCodec
from tests.support.unitdb import ADMIN_PW, migrated_db

__all__ = ["ADMIN_PW"]  # the tests log the bootstrapped admin in with it


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    with migrated_db(tmp_path / "ks.db", bootstrapped=True) as d:
        yield d


@pytest.fixture
def keys(tmp_path: Path) -> KeyRepository:
    repo = KeyRepository(tmp_path / "keys")
    repo.create()
    return repo


@pytest.fixture
def auth(keys: KeyRepository) -> Authenticator:
    return Authenticator(TokenCodec(keys), lifetime_s=600, lockout_failures=3, lockout_seconds=60)
