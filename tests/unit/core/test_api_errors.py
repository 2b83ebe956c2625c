"""core.api.errors: a database integrity violation is a 409 in the caller's error shape, never a 500."""
from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.exc import IntegrityError

from core.api import errors
from core.api.deps import SessionDep


def _app() -> FastAPI:
    app = FastAPI()
    errors.install(app)

    def boom() -> None:
        raise IntegrityError("INSERT INTO x", {}, Exception("UNIQUE constraint failed: x.name"))

    app.add_api_route("/api/s/compute_v2/things", boom, methods=["POST"])
    app.add_api_route("/api/s/identity/v3/things", boom, methods=["POST"])
    return app


def test_integrity_error_is_a_409_in_each_shape() -> None:
    c = TestClient(_app(), raise_server_exceptions=False)
    r = c.post("/api/s/compute_v2/things")
    assert r.status_code == 409 and r.json()["class"] == "ConflictError", r.text
    assert "UNIQUE" not in r.text  # the database's words stay in the log
    r = c.post("/api/s/identity/v3/things")
    assert r.status_code == 409 and r.json()["error"]["title"] == "Conflict", r.text


def test_a_closing_commit_that_fails_is_the_answer_not_a_dropped_connection() -> None:
    # The database went away between a GET's read and the session's closing COMMIT (seen in the database
    # restart test): that must be the 503, not an error raised after the 200 went out (which made uvicorn
    # drop the keep-alive connection the answer used)
    from types import SimpleNamespace

    from sqlalchemy.exc import OperationalError

    class _Session:
        def in_transaction(self) -> bool:
            return True  # the GET read: its transaction is open

        def commit(self) -> None:
            raise OperationalError("COMMIT", {}, Exception("server closed the connection unexpectedly"))

        def rollback(self) -> None:
            pass

        def close(self) -> None:
            pass

    app = FastAPI()
    errors.install(app)
    app.state.db = SimpleNamespace(sessionmaker=_Session)

    def read(session: SessionDep) -> dict[str, str]:
        return {"ok": "read"}

    app.add_api_route("/api/s/compute_v2/things", read, methods=["GET"])
    r = TestClient(app, raise_server_exceptions=False).get("/api/s/compute_v2/things")
    assert r.status_code == 503 and r.json()["class"] == "ServiceUnavailableError", r.text
