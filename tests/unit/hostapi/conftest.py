"""A migrated, bootstrapped SQLite database (identity + region defaults, as `ocadm init` leaves it)."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import core.db.models  # noqa: F401  (every table mapped)
from core.db.engine import Database
from core.db.migrate import upgrade
from core.keystone.auth import Authenticator
from core.keystone.bootstrap import bootstrap
from core.keystone.keys import KeyRepository
from core.keystone.tokens import TokenCodec
from core.region.defaults import create_defaults

ADMIN_PW = "admin-Pw-1"


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    d = Database(f"sqlite:///{tmp_path / 'enrol.db'}")
    upgrade(d.engine)
    with d.session() as s:
        bootstrap(s, admin_password=ADMIN_PW, public_url="http://127.0.0.1:1", region_id="region0")
    with d.session() as s:
        create_defaults(s)
    yield d
    d.dispose()


@pytest.fixture
def auth(tmp_path: Path) -> Authenticator:
    repo = KeyRepository(tmp_path / "keys")
    repo.create()
    return Authenticator(TokenCodec(repo), lifetime_s=600, lockout_failures=3, lockout_seconds=60)
