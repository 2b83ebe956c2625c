"""No password hash (scrypt, tens of ms) runs while its thread holds SQLite's write lock: under the
one writer it held back every other write of the controller (issue 22: users created with passwords
did not scale past one thread). Users create and update, the self-service password change (new and
original) and password logins, each through the real app; refusals still audited."""
from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from core.db import engine as db_engine
from tests.support.inproc import admin_token, call, controller_app

IDENTITY = "/api/s/identity/v3"


def test_no_password_hash_under_the_write_lock(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = controller_app(tmp_path)
    h = {"X-Auth-Token": admin_token(app)}
    hashed: list[bool] = []  # per hash: did its thread hold the write lock?
    real = hashlib.scrypt

    def watched(*a: Any, **kw: Any) -> bytes:
        me = threading.get_ident()
        hashed.append(any(g._owner == me for g in list(db_engine._GATES.values())))
        return real(*a, **kw)

    monkeypatch.setattr(hashlib, "scrypt", watched)
    r = call(app, "POST", f"{IDENTITY}/users", headers=h, json={"user": {
        "name": "kdf-user", "password": "First-passw0rd-1", "domain_id": "default"}})
    assert r.status_code == 201, r.text
    uid = r.json()["user"]["id"]
    r = call(app, "PATCH", f"{IDENTITY}/users/{uid}", headers=h, json={"user": {"password": "Second-passw0rd-2"}})
    assert r.status_code == 200, r.text
    wrong = call(app, "POST", f"{IDENTITY}/users/{uid}/password",
                 json={"user": {"original_password": "Not-the-passw0rd-9", "password": "Third-passw0rd-3"}})
    assert wrong.status_code == 401, wrong.text
    ok = call(app, "POST", f"{IDENTITY}/users/{uid}/password",
              json={"user": {"original_password": "Second-passw0rd-2", "password": "Third-passw0rd-3"}})
    assert ok.status_code == 204, ok.text
    stale = call(app, "POST", f"{IDENTITY}/users/{uid}/password",  # the original it had: refused
                 json={"user": {"original_password": "Second-passw0rd-2", "password": "Fourth-passw0rd-4"}})
    assert stale.status_code == 401, stale.text

    def login(pw: str) -> int:
        user = {"name": "kdf-user", "password": pw, "domain": {"id": "default"}}
        body = {"auth": {"identity": {"methods": ["password"], "password": {"user": user}}}}
        return call(app, "POST", f"{IDENTITY}/auth/tokens", json=body).status_code

    assert login("Third-passw0rd-3") == 201
    assert login("Wrong-passw0rd-8") == 401
    assert len(hashed) >= 9, hashed
    assert not any(hashed), hashed
    from core.audit import Action

    with app.state.db.session() as s:
        got = [(a.success) for a in s.scalars(select(Action).where(Action.action == "change-password",
                                                                   Action.obj_id == uid).order_by(Action.start_time))]
    assert got == [False, True, False]
