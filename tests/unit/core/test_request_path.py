"""What every request pays, kept cheap without changing an answer (issue 22's per-request costs):
token validation from the cache opens no database session, a session nobody used commits nothing,
a credential is tagged with its request id without re-running its constructor, and replies built
with ``json_response`` are the bytes and headers a JSONResponse would send."""
from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.responses import JSONResponse
from sqlalchemy import event, text

from core.db.engine import Database, committed
from core.keystone.auth import KeystoneCredential
from tests.support.inproc import admin_token, call, controller_app, run_with_fresh_app
from tests.support.unitdb import migrated_db


@pytest.fixture
def app(tmp_path: Path) -> Iterator[FastAPI]:
    yield controller_app(tmp_path)


def test_cached_token_validation_opens_no_session_and_answers_the_same(
        app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("core.keystone.auth.REVISION_POLL_S", 3600.0)  # the cache stays trusted in this test
    tok = admin_token(app)
    path = "/api/s/identity/v3/auth/tokens?nocatalog"
    headers = {"X-Auth-Token": tok, "X-Subject-Token": tok}
    first = call(app, "GET", path, headers=headers)  # validates (and caches) through the database
    assert first.status_code == 200, first.text

    def no_session() -> None:
        raise AssertionError("a cached token's validation opened a database session")

    monkeypatch.setattr(app.state.db, "sessionmaker", no_session)
    again = call(app, "GET", path, headers=headers)
    assert again.status_code == 200, again.text
    assert again.content == first.content and again.headers["x-subject-token"] == tok
    # the bytes Starlette's JSONResponse rendered before
    assert again.content == json.dumps(again.json(), ensure_ascii=False, separators=(",", ":")).encode()
    assert again.headers["content-type"] == "application/json"
    assert re.fullmatch(r"[0-9a-f]{16}", again.headers["x-request-id"])  # one made for the request
    monkeypatch.undo()
    # a subject token it does not know goes to the database, and is still a 404
    bad = call(app, "GET", path, headers={"X-Auth-Token": tok, "X-Subject-Token": tok[:-4] + "AAAA"})
    assert bad.status_code == 404, bad.text


def test_a_session_nobody_used_begins_nothing_and_one_used_commits(tmp_path: Path) -> None:
    with migrated_db(tmp_path / "x.db") as db:
        begins: list[int] = []
        event.listen(db.engine, "begin", lambda conn: begins.append(1))
        with committed(db.sessionmaker()) as s:
            pass
        assert begins == [] and not s.in_transaction()
        with committed(db.sessionmaker()) as s:
            s.execute(text("CREATE TABLE t_committed (x INTEGER)"))
            s.execute(text("INSERT INTO t_committed VALUES (1)"))
        assert begins == [1]
        other = Database(str(db.engine.url))
        try:
            with other.session() as s2:
                assert s2.scalar(text("SELECT count(*) FROM t_committed")) == 1
        finally:
            other.dispose()


def test_for_request_is_replace_without_touching_the_cached_credential() -> None:
    cred = KeystoneCredential(token="t", user_id="u", user_name="n", user_domain_id="d", user_domain_name="D",
                              scope="project", roles=("admin",), role_ids=("r",), project_id="p",
                              issued_at=datetime.now(UTC), is_admin_project=True, app_cred_id="ac",
                              access_rules=(("i", "s", "/p", "GET"),))
    tagged = cred.for_request("rid-1")
    assert type(tagged) is KeystoneCredential
    assert dataclasses.asdict(tagged) == dataclasses.asdict(dataclasses.replace(cred, request_id="rid-1"))
    assert cred.request_id == "" and tagged.request_id == "rid-1"
    assert tagged.for_request("rid-1") is tagged
    with pytest.raises(dataclasses.FrozenInstanceError):
        tagged.request_id = "x"  # type: ignore[misc]


@pytest.mark.parametrize("data", [
    {"token": {"user": {"name": "ünïcode ☃", "id": "x"}, "roles": [], "n": 2**40, "ok": True, "none": None}},
    {"k": [1, 2.5, "a\"b\\c\n"], "big": 2**70},  # past 64 bits: the standard encoder's path
])
def test_json_response_sends_what_jsonresponse_sent(data: dict[str, Any]) -> None:
    from core.api.jsonio import json_response

    ours = json_response(data, headers={"X-Subject-Token": "abc"})
    theirs = JSONResponse(data, headers={"X-Subject-Token": "abc"})
    assert ours.body == theirs.body
    assert ours.raw_headers == theirs.raw_headers
    assert ours.status_code == theirs.status_code


@pytest.mark.parametrize("dt", [
    datetime(2026, 12, 7, 21, 28, 34, 123456, tzinfo=UTC), datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
    datetime(999, 1, 1, tzinfo=UTC), datetime.now(UTC),
    datetime(2026, 12, 7, 21, 28, 34, 5, tzinfo=timezone(timedelta(0))),  # UTC, another tzinfo object
    datetime(2026, 12, 7, 21, 28, 34, tzinfo=timezone(timedelta(hours=8))),
])
def test_iso_is_the_one_format_on_every_path(dt: datetime) -> None:
    from core.db.base import iso

    assert iso(dt) == dt.isoformat(timespec="microseconds").replace("+00:00", "Z")
    assert iso(None) is None


def test_plain_rows_flushes_pending_changes_first(tmp_path: Path) -> None:
    from sqlalchemy import select

    from core.db.engine import plain_rows
    from core.keystone.models import Domain

    with migrated_db(tmp_path / "x.db") as db, db.session() as s:
        s.add(Domain(id="dom-plain-rows", name="dom-plain-rows", description="", enabled=True))
        st = select(Domain.name).where(Domain.id == "dom-plain-rows")
        assert plain_rows(s, st).scalars().all() == ["dom-plain-rows"]
        with s.no_autoflush:
            s.add(Domain(id="dom-plain-rows2", name="dom-plain-rows2", description="", enabled=True))
            assert plain_rows(s, select(Domain.id).where(Domain.id == "dom-plain-rows2")).all() == []


def test_a_list_request_takes_one_thread_pool_hop(app: FastAPI, monkeypatch: pytest.MonkeyPatch) -> None:
    """Parsing a list's query is pure CPU: its dependency runs on the event loop, so a list (with a
    cached token) hops to the thread pool once, for the route's database work."""
    from anyio._backends._asyncio import AsyncIOBackend

    monkeypatch.setattr("core.keystone.auth.REVISION_POLL_S", 3600.0)
    tok = admin_token(app)
    path = "/api/s/compute_v2/servers?limit=20&details=false"
    assert call(app, "GET", path, headers={"X-Auth-Token": tok}).status_code == 200  # the token cached
    hops: list[str] = []
    real = AsyncIOBackend.run_sync_in_worker_thread

    async def counted(func: Any, *a: Any, **kw: Any) -> Any:
        hops.append(getattr(func, "__name__", repr(func)))
        return await real(func, *a, **kw)

    monkeypatch.setattr(AsyncIOBackend, "run_sync_in_worker_thread", counted)
    r = call(app, "GET", path, headers={"X-Auth-Token": tok})
    assert r.status_code == 200 and r.json()["servers"] == [], r.text
    assert len(hops) == 1, hops
    bad = call(app, "GET", "/api/s/compute_v2/servers?limit=x", headers={"X-Auth-Token": tok})
    assert bad.status_code == 400 and "limit" in bad.text


def test_ping_and_version_are_answered_without_a_worker_thread(tmp_path: Path) -> None:
    # the most frequent probes, and the first request `ocadm serve` answers: no thread hop (the hop's
    # first use imports anyio's worker-thread backend). A fresh interpreter: other tests import it.
    run_with_fresh_app(tmp_path, """
        import asyncio
        sent = []
        async def call(path):
            scope = {"type": "http", "method": "GET", "path": path, "raw_path": path.encode(), "query_string": b"",
                     "headers": [], "http_version": "1.1", "scheme": "http", "server": ("t", 80), "client": ("c", 1),
                     "root_path": ""}
            async def receive():
                return {"type": "http.request", "body": b"", "more_body": False}
            async def send(m):
                sent.append(m)
            await app(scope, receive, send)
        for path in ("/ping", "/api/s/compute_v2/ping", "/version"):
            asyncio.run(call(path))
        assert [m["status"] for m in sent if m["type"] == "http.response.start"] == [204, 204, 200], sent
        assert "anyio._backends._asyncio" not in sys.modules, "a probe went through a worker thread"
        """)
