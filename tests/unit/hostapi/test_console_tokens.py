"""Console tokens against a migrated database: what is stored, what redemption refuses, the purge."""
from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from core.api.context import Credential
from core.console import tokens
from core.console.models import ConsoleSession
from core.db.base import utcnow
from core.db.engine import Database
from core.errors import ForbiddenError, UnauthorizedError, UnsupportedOperationError


def _cred(uid: str) -> Credential:
    return Credential(token="", user_id=uid, user_name=uid, user_domain_id="default", user_domain_name="Default",
                      scope="project", roles=("member",), project_id="p1")


@pytest.fixture
def host_and_server(db: Database) -> SimpleNamespace:
    from core.region.models import Host, Zone

    with db.session() as s:
        zone = s.scalars(select(Zone)).first()
        h = Host(name="h1", zone_id=zone.id, host_status="online", capabilities=["vnc"], driver="kvm")
        s.add(h)
        s.commit()
        return SimpleNamespace(id="11111111-1111-4111-8111-111111111111", name="web", host_id=h.id,
                               status="running", tenant_id="p1")


def test_a_token_is_stored_hashed_and_spent_by_its_first_use(db: Database, host_and_server: SimpleNamespace) -> None:
    srv = host_and_server
    with db.session() as s:
        tok, row = tokens.issue(s, _cred("u1"), srv, "vnc")
        s.commit()
        assert row.token_sha256 == tokens.digest(tok) and tok not in row.token_sha256
        assert (row.expires_at - utcnow()).total_seconds() == pytest.approx(tokens.TTL_S, abs=5)
    with db.session() as s:
        got = tokens.redeem(s, tok, server_id=srv.id, protocol="vnc", user=_cred("u1"))
        assert got.status == "connecting" and got.used_at is not None
        s.commit()
    with db.session() as s, pytest.raises(UnauthorizedError, match="already used"):
        tokens.redeem(s, tok, server_id=srv.id, protocol="vnc", user=None)


def test_refusals(db: Database, host_and_server: SimpleNamespace) -> None:
    srv = host_and_server
    with db.session() as s:
        with pytest.raises(UnsupportedOperationError, match="serial_console"):
            tokens.issue(s, _cred("u1"), srv, "serial")  # the host declares vnc only
        toks = [tokens.issue(s, _cred("u1"), srv, "vnc")[0] for _ in range(3)]
        s.commit()
    with db.session() as s, pytest.raises(ForbiddenError, match="another server"):
        tokens.redeem(s, toks[0], server_id="other", protocol="vnc", user=None)
    with db.session() as s, pytest.raises(ForbiddenError, match="another user"):
        tokens.redeem(s, toks[1], server_id=srv.id, protocol="vnc", user=_cred("u2"))
    with db.session() as s:
        s.get(ConsoleSession, s.scalar(select(ConsoleSession.id).where(
            ConsoleSession.token_sha256 == tokens.digest(toks[2])))).expires_at = utcnow() - timedelta(seconds=1)
        s.commit()
    with db.session() as s, pytest.raises(UnauthorizedError, match="expired"):
        tokens.redeem(s, toks[2], server_id=srv.id, protocol="vnc", user=None)


def test_purge_drops_old_rows_but_not_a_live_session(db: Database, host_and_server: SimpleNamespace) -> None:
    srv = host_and_server
    with db.session() as s:
        for status, age_h in (("closed", 25), ("issued", 30), ("open", 30), ("closed", 1), ("open", 200)):
            _tok, row = tokens.issue(s, _cred("u1"), srv, "vnc")
            row.status, row.created_at = status, utcnow() - timedelta(hours=age_h)
        s.commit()
    with db.session() as s:
        assert tokens.purge(s) == 3
        left = sorted((r.status, round((utcnow() - r.created_at).total_seconds() / 3600))
                      for r in s.scalars(select(ConsoleSession)))
    assert left == [("closed", 1), ("open", 30)]
