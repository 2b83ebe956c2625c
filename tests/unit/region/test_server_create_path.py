"""What a server create writes, and how: every row built first and flushed once (no read of the new
server's group memberships, no flush per server), the Default group found by one statement, and the
quota taken by one UPDATE — the answer, the groups and their order as before (issue 22: create ≥ 300/s)."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from tests.support.inproc import admin_token, call, controller_app

B = "/api/s/compute_v2"


@pytest.fixture
def app(tmp_path: Path) -> Iterator[FastAPI]:
    app = controller_app(tmp_path)
    h = {"X-Auth-Token": admin_token(app)}
    for path, body in ((f"{B}/zones", {"zone": {"name": "cz"}}), (f"{B}/wires", {"wire": {"name": "cw", "zone": "cz"}}),
                       (f"{B}/networks", {"network": {"name": "cn", "wire": "cw", "guest_ip_prefix": "10.9.0.0/24"}})):
        r = call(app, "POST", path, json=body, headers=h)
        assert r.status_code == 200, r.text
    app.state.test_headers = h
    yield app


def _create(app: FastAPI, name: str, **extra: Any) -> Any:
    body = {"server": {"name": name, "vcpu_count": 1, "vmem_size": 64, "disks": ["1g"], "nets": ["cn"], **extra}}
    r = call(app, "POST", f"{B}/servers", json=body, headers=app.state.test_headers)
    assert r.status_code == 200, r.text
    return r.json()


class _Watch:
    """The SQL statements and the flushes (that wrote something) of the app's sessions meanwhile."""

    def __init__(self, app: FastAPI) -> None:
        self.engine = app.state.db.engine
        self.sql: list[str] = []
        self.flushes = 0

    def _stmt(self, conn: object, cur: object, sql: str, *_: object) -> None:
        self.sql.append(sql)

    def _flush(self, session: Session, ctx: object, instances: object) -> None:
        self.flushes += bool(session.new or session.dirty or session.deleted)

    def __enter__(self) -> _Watch:
        event.listen(self.engine, "before_cursor_execute", self._stmt)
        event.listen(Session, "before_flush", self._flush)
        return self

    def __exit__(self, *exc: object) -> None:
        event.remove(self.engine, "before_cursor_execute", self._stmt)
        event.remove(Session, "before_flush", self._flush)


def test_a_create_builds_its_rows_and_flushes_them_once(app: FastAPI) -> None:
    _create(app, "first-of-project")  # makes the project's Default group (its own flushes)
    with _Watch(app) as w:
        out = _create(app, "second")["server"]
    assert w.flushes == 1, w.flushes
    inserts = [s.split()[2] for s in w.sql if s.startswith("INSERT")]
    assert sorted(inserts) == ["actions", "guestsecgroups", "servers", "tasks"], inserts
    # nothing read back of what this create wrote before the answer's details
    assert not [s for s in w.sql if s.startswith("SELECT guestsecgroups.id")], w.sql
    assert [g["name"] for g in out["secgroups"]] == ["Default"] and out["secgroup"] == "Default"
    assert out["secgroup_id"] == out["secgroups"][0]["id"] and out["active_task_id"]


def test_groups_in_the_order_given_and_default_made_once(app: FastAPI) -> None:
    from core.audit import Action
    from core.region.models import GuestSecgroup, Secgroup, Server

    h = app.state.test_headers
    ids = {}
    for n in ("g-one", "g-two"):
        r = call(app, "POST", f"{B}/secgroups", json={"secgroup": {"name": n}}, headers=h)
        assert r.status_code == 200, r.text
        ids[n] = r.json()["secgroup"]["id"]
    r = call(app, "POST", f"{B}/servers", headers=h, json={"count": 2, "server": {
        "name": "grouped", "vcpu_count": 1, "vmem_size": 64, "disks": ["1g"], "secgroups": ["g-two", "g-one"]}})
    assert r.status_code == 200, r.text
    made = [x["body"] for x in r.json()["servers"]]
    assert len(made) == 2 and len({m["active_task_id"] for m in made}) == 1
    for m in made:
        assert [g["id"] for g in m["secgroups"]] == [ids["g-two"], ids["g-one"]]
        assert m["secgroup_id"] == ids["g-two"] and m["secgroup"] == "g-two,g-one"
    _create(app, "plain-1")
    _create(app, "plain-2")
    with app.state.db.session() as s:
        defaults = list(s.scalars(select(Secgroup.id).where(Secgroup.name == "Default")))
        assert len(defaults) == 1
        assert len(list(s.scalars(select(Action.id).where(Action.obj_type == "secgroup",
                                                          Action.obj_id == defaults[0])))) == 1
        for srv in s.scalars(select(Server)):
            got = list(s.scalars(select(GuestSecgroup.secgroup_id).where(GuestSecgroup.guest_id == srv.id)
                                 .order_by(GuestSecgroup.created_at, GuestSecgroup.id)))
            want = [ids["g-two"], ids["g-one"]] if srv.name.startswith("grouped") else defaults
            assert got == want and srv.secgroup_id == want[0], srv.name
            assert srv.create_spec["create_task_id"] == srv.active_task_id
            assert srv.held == {"quota": {"cpu": 1, "memory": 64, "storage": 1024, "servers": 1,
                                          "ips": 0 if srv.name.startswith("grouped") else 1}}


def test_the_quota_is_taken_after_the_rows_are_written(app: FastAPI) -> None:
    """The project's quota row is locked from its UPDATE to the commit and every create of the project
    queues on it: the UPDATE comes after every write of the create, so only the answer's reads and the
    commit follow it."""
    _create(app, "quota-first-of-project")
    with _Watch(app) as w:
        _create(app, "quota-second")
    writes = [i for i, s in enumerate(w.sql) if s.startswith(("INSERT", "UPDATE", "DELETE"))
              and "db_leases" not in s]  # the write lock's no-op statement comes first
    quota = [i for i in writes if w.sql[i].startswith("UPDATE quotas")]
    assert len(quota) == 1, [w.sql[i] for i in writes]
    assert writes[-1] == quota[0], [w.sql[i].split("(")[0][:60] for i in writes]


def test_over_quota_a_create_leaves_nothing(app: FastAPI) -> None:
    h = app.state.test_headers
    me = call(app, "GET", "/api/s/identity/v3/auth/tokens", headers={**h, "X-Subject-Token": h["X-Auth-Token"]})
    project = me.json()["token"]["project"]["id"]
    r = call(app, "POST", f"{B}/quotas", json={"quota": {"tenant": project, "servers": 1}}, headers=h)
    assert r.status_code < 300, r.text
    _create(app, "quota-only-one")
    body = {"server": {"name": "quota-too-many", "vcpu_count": 1, "vmem_size": 64, "disks": ["1g"], "nets": ["cn"]}}
    r = call(app, "POST", f"{B}/servers", json=body, headers=h)
    assert r.status_code == 400 and r.json()["class"] == "OutOfQuotaError", r.text
    names = [s["name"] for s in call(app, "GET", f"{B}/servers?scope=system", headers=h).json()["servers"]]
    assert "quota-too-many" not in names and "quota-only-one" in names


def test_set_secgroup_keeps_the_order_given(app: FastAPI) -> None:
    """``server-set-secgroup c,a,b`` on a server in a, b, c: its groups read back c, a, b (the kept
    memberships move to their new places; before, kept rows kept their old times and order)."""
    h = app.state.test_headers
    ids = {}
    for n in ("ord-a", "ord-b", "ord-c"):
        r = call(app, "POST", f"{B}/secgroups", json={"secgroup": {"name": n}}, headers=h)
        assert r.status_code == 200, r.text
        ids[n] = r.json()["secgroup"]["id"]
    sid = _create(app, "ordered", secgroups=["ord-a", "ord-b", "ord-c"])["server"]["id"]
    want = [ids["ord-c"], ids["ord-a"], ids["ord-b"]]
    r = call(app, "POST", f"{B}/servers/{sid}/set-secgroup", json={"secgroup_ids": want}, headers=h)
    assert r.status_code == 200, r.text
    shown = call(app, "GET", f"{B}/servers/{sid}", headers=h).json()["server"]
    assert [g["id"] for g in shown["secgroups"]] == want and shown["secgroup_id"] == want[0]
    assert shown["secgroup"] == "ord-c,ord-a,ord-b"
