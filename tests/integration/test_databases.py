"""PostgreSQL 15 and MariaDB 10.11 from day one: migrations and a controller on each (full tier)."""
from __future__ import annotations

import json
import os

import pytest
from sqlalchemy import text

from core.db.backup import drop_all_tables
from core.db.engine import Database
from core.db.migrate import downgrade, schema_state, upgrade
from tests.support.controller import Controller
from tests.support.peers import need

DIALECTS = [("postgresql", "CLOUDPODS_TEST_PG_URL"), ("mariadb", "CLOUDPODS_TEST_MYSQL_URL")]


def _reset(db: Database) -> None:
    """Start from an empty database: MariaDB DDL is not transactional, so a failed run leaves debris."""
    drop_all_tables(db)


def _url(env: str) -> str:
    url = os.environ.get(env, "")
    need(bool(url), f"{env} is not set (run scripts/setup-db.sh as root; .ci/run does)")
    return url


@pytest.mark.full
@pytest.mark.parametrize("name,env", DIALECTS)
def test_migrations_round_trip(name: str, env: str) -> None:
    db = Database(_url(env))
    try:
        _reset(db)
        assert schema_state(db.engine).state == "empty"
        assert upgrade(db.engine).state == "current"
        with db.engine.begin() as c:
            c.execute(text("INSERT INTO db_leases (name, holder, expires_at) VALUES ('t', 'me', '2030-01-01')"))
        downgrade(db.engine, "base")
        assert upgrade(db.engine).state == "current"
    finally:
        db.dispose()


@pytest.mark.full
@pytest.mark.parametrize("name,env", DIALECTS)
def test_controller_on_external_database(tmp_path, name: str, env: str) -> None:  # type: ignore[no-untyped-def]
    url = _url(env)
    db = Database(url)
    try:
        _reset(db)
    finally:
        db.dispose()
    ctl = Controller.start(tmp_path, "--db-url", url)
    try:
        assert not (ctl.data_dir / "cloudpods.db").exists()
        r = ctl.climc("endpoint-list", "-o", "json")
        assert r.returncode == 0, r.stderr
        eps = json.loads(r.stdout)["data"]
        assert {e["service_type"] for e in eps} >= {"identity", "compute_v2", "image", "scheduler"}
        r = ctl.ocadm("status", "--data-dir", str(ctl.data_dir))
        assert r.returncode == 0, r.stdout + r.stderr
        assert "cpone:***@" in r.stdout  # the password never shows
    finally:
        ctl.stop()
