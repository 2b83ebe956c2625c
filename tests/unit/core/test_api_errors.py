"""core.api.errors: a database integrity violation is a 409 in the caller's error shape, never a 500."""
from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.exc import IntegrityError

from core.api import errors


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
