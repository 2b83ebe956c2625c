"""A real SQLite identity database, bootstrapped as `ocadm init` does, for the keystone unit tests."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.db.engine import Database
from core.db.migrate import upgrade
from core.keystone.auth import Authenticator
from core.keystone.bootstrap import bootstrap
from core.keystone.keys import KeyRepository
from core.keystone.tokens import TokenCodec

ADMIN_PW = "admin-Pw-1"


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    d = Database(f"sqlite:///{tmp_path / 'ks.db'}")
    upgrade(d.engine)
    with d.session() as s:
        bootstrap(s, admin_password=ADMIN_PW, public_url="http://127.0.0.1:1", region_id="region0")
    yield d
    d.dispose()


@pytest.fixture
def keys(tmp_path: Path) -> KeyRepository:
    repo = KeyRepository(tmp_path / "keys")
    repo.create()
    return repo


@pytest.fixture
def auth(keys: KeyRepository) -> Authenticator:
    return Authenticator(TokenCodec(keys), lifetime_s=600, lockout_failures=3, lockout_seconds=60)
