"""Persona × route matrix for the identity API: allowed / 403 / 404, through the real controller.

World: domains D1 and D2; projects P1 (D1) and P2 (D2); personas
  sysadmin (system scope), admproj (admin on the admin project `system`), sysreader (system reader),
  domadmin / domreader (on D1), projadmin / projmember / projreader (on P1), other (admin on P2).
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.e2e.test_identity_support import admin, client, grant, login, mk_domain, mk_project, mk_user, ok, uniq
from tests.support.controller import Controller

PW = "pw-Matrix-1"


@dataclass
class World:
    ids: dict[str, str]
    clients: dict[str, httpx.Client]

    def path(self, template: str) -> str:
        return template.format(**self.ids)


@pytest.fixture(scope="module")
def world(controller: Controller) -> Iterator[World]:
    api = admin(controller)
    d1, d2 = mk_domain(api), mk_domain(api)
    p1, p2 = mk_project(api, d1["id"]), mk_project(api, d2["id"])
    ids: dict[str, str] = {"D1": d1["id"], "D2": d2["id"], "P1": p1["id"], "P2": p2["id"]}
    personas: dict[str, tuple[str, str, dict[str, Any]]] = {}  # name -> (domain, role target, scope)
    plan = {
        "sysreader": ("default", "system", "reader", {"system": {"all": True}}),
        "domadmin": (d1["id"], f"domains/{d1['id']}", "admin", {"domain": {"id": d1["id"]}}),
        "domreader": (d1["id"], f"domains/{d1['id']}", "reader", {"domain": {"id": d1["id"]}}),
        "projadmin": (d1["id"], f"projects/{p1['id']}", "admin", {"project": {"id": p1["id"]}}),
        "projmember": (d1["id"], f"projects/{p1['id']}", "member", {"project": {"id": p1["id"]}}),
        "projreader": (d1["id"], f"projects/{p1['id']}", "reader", {"project": {"id": p1["id"]}}),
        "other": (d2["id"], f"projects/{p2['id']}", "admin", {"project": {"id": p2["id"]}}),
    }
    clients = {"sysadmin": api,
               "admproj": client(controller, controller.token())}
    for name, (dom, target, role, scope) in plan.items():
        u = mk_user(api, PW, dom, name=uniq(name))
        grant(api, target, u["id"], role)
        ids[name] = u["id"]
        dname = "Default" if dom == "default" else (d1["name"] if dom == d1["id"] else d2["name"])
        clients[name] = client(controller, login(controller, u["name"], PW, scope, domain=dname))
        personas[name] = (dom, target, scope)
    ids["victim"] = mk_user(api, PW, d1["id"])["id"]
    ids["victim2"] = mk_user(api, PW, d2["id"])["id"]
    ids["G1"] = ok(api.post("/groups", json={"group": {"name": uniq("g"), "domain_id": d1["id"]}}), 201)["group"]["id"]
    ids["G2"] = ok(api.post("/groups", json={"group": {"name": uniq("g"), "domain_id": d2["id"]}}), 201)["group"]["id"]
    ids["auditor"] = ok(api.post("/roles", json={"role": {"name": uniq("auditor")}}), 201)["role"]["id"]
    cred = ok(clients["projmember"].post("/credentials", json={"credential": {"type": "ec2"}}), 201)
    ids["CREDM"] = cred["credential"]["id"]
    ids["SVC"] = ok(api.get("/services", params={"type": "identity"}))["services"][0]["id"]
    yield World(ids, clients)
    for c in clients.values():
        c.close()


ALL = ("sysadmin", "admproj", "sysreader", "domadmin", "domreader", "projadmin", "projmember", "projreader",
       "other")
SYS = ("sysadmin", "admproj")


def row(method: str, path: str, body: Any, expect: dict[str, int], default: int,
        only: tuple[str, ...] = ALL) -> list[tuple[Any, ...]]:
    return [(p, method, path, body, expect.get(p, default)) for p in only]


def _name_body(kind: str, **extra: Any) -> Any:
    return lambda: {kind: {"name": uniq(kind), **extra}}


MATRIX: list[tuple[Any, ...]] = [
    # domains: readers see their own; only system admins write
    *row("GET", "/domains/{D1}", None, {"other": 404}, 200),
    *row("GET", "/domains/{D2}", None, {p: 404 for p in ("domadmin", "domreader", "projadmin", "projmember",
                                                          "projreader")}, 200),
    *row("POST", "/domains", _name_body("domain"), {p: 201 for p in SYS}, 403),
    *row("PATCH", "/domains/{D2}", {"domain": {"description": "x"}}, {"sysadmin": 200, "admproj": 200}, 403),
    # projects
    *row("GET", "/projects/{P1}", None, {"other": 404}, 200),
    *row("GET", "/projects/{P2}", None, {p: 404 for p in ("domadmin", "domreader", "projadmin", "projmember",
                                                           "projreader")}, 200),
    *row("POST", "/projects", lambda w: {"project": {"name": uniq("p"), "domain_id": w.ids["D1"]}},
         {"sysadmin": 201, "admproj": 201, "domadmin": 201}, 403),
    # body domain_id cannot reach another tenant
    *row("POST", "/projects", lambda w: {"project": {"name": uniq("p"), "domain_id": w.ids["D2"]}},
         {"sysadmin": 201, "admproj": 201}, 403),
    *row("PATCH", "/projects/{P1}", {"project": {"description": "d"}},
         {"sysadmin": 200, "admproj": 200, "domadmin": 200}, 403),
    *row("PATCH", "/projects/{P2}", {"project": {"description": "d"}},
         {"sysadmin": 200, "admproj": 200, "domadmin": 404}, 403),
    *row("PATCH", "/projects/{P1}", lambda w: {"project": {"domain_id": w.ids["D2"]}},
         {"sysadmin": 400, "admproj": 400, "domadmin": 400}, 403),
    # users
    *row("GET", "/users/{victim}", None, {p: 404 for p in ("projadmin", "projmember", "projreader", "other")}, 200),
    *row("GET", "/users/{projmember}", None, {"other": 404, "projadmin": 404, "projreader": 404}, 200),
    *row("POST", "/users", lambda w: {"user": {"name": uniq("u"), "domain_id": w.ids["D1"], "password": PW}},
         {"sysadmin": 201, "admproj": 201, "domadmin": 201}, 403),
    *row("POST", "/users", lambda w: {"user": {"name": uniq("u"), "domain_id": w.ids["D2"], "password": PW}},
         {"sysadmin": 201, "admproj": 201}, 403),
    *row("PATCH", "/users/{victim2}", {"user": {"description": "x"}},
         {"sysadmin": 200, "admproj": 200, "domadmin": 404}, 403),
    *row("PATCH", "/users/{victim}", lambda w: {"user": {"domain_id": w.ids["D2"]}},
         {"sysadmin": 400, "admproj": 400, "domadmin": 400}, 403),
    # groups
    *row("GET", "/groups/{G1}", None, {p: 404 for p in ("projadmin", "projmember", "projreader", "other")}, 200),
    *row("PATCH", "/groups/{G2}", {"group": {"description": "x"}},
         {"sysadmin": 200, "admproj": 200, "domadmin": 404}, 403),
    *row("PUT", "/groups/{G1}/users/{victim}", None, {"sysadmin": 204, "admproj": 204, "domadmin": 204}, 403),
    # roles
    *row("GET", "/roles", None, {}, 200),
    *row("POST", "/roles", _name_body("role"), {p: 201 for p in SYS}, 403),
    # grants: a role the caller holds, on a target it reaches
    *row("PUT", "/projects/{P1}/users/{victim}/roles/member", None,
         {"sysadmin": 204, "admproj": 204, "domadmin": 204, "projadmin": 204, "other": 404}, 403),
    *row("PUT", "/projects/{P2}/users/{victim2}/roles/reader", None,
         {"sysadmin": 204, "admproj": 204, "domadmin": 404, "projadmin": 404, "other": 204}, 403),
    *row("PUT", "/projects/{P1}/users/{victim}/roles/{auditor}", None,
         {"sysadmin": 204, "admproj": 204, "other": 404}, 403),
    *row("PUT", "/domains/{D1}/users/{victim}/roles/reader", None,
         {"sysadmin": 204, "admproj": 204, "domadmin": 204, "other": 404}, 403),
    *row("PUT", "/system/users/{victim}/roles/reader", None, {"sysadmin": 204, "admproj": 204}, 403),
    *row("GET", "/projects/{P1}/users/{victim}/roles", None, {"other": 404}, 200),
    # self-escalation (only personas that must be refused: a success would change the world)
    *row("PUT", "/projects/{P1}/users/{projmember}/roles/admin", None, {"other": 404}, 403,
         only=("projmember", "projreader", "domreader", "sysreader", "other")),
    *row("PUT", "/system/users/{domadmin}/roles/admin", None, {}, 403,
         only=("domadmin", "projadmin", "sysreader", "other")),
    *row("PUT", "/domains/{D1}/users/{projadmin}/roles/admin", None, {}, 403, only=("projadmin", "domreader")),
    # listings are filtered, never refused to readers
    *row("GET", "/role_assignments", None, {}, 200),
    *row("GET", "/actions", None, {}, 200),
    *row("GET", "/credentials", None, {}, 200),
    *row("GET", "/credentials/{CREDM}", None, {"projmember": 200, "sysadmin": 200, "admproj": 200,
                                               "sysreader": 200}, 404),
    # catalog and policies
    *row("GET", "/services/{SVC}", None, {}, 200),
    *row("POST", "/services", lambda w: {"service": {"type": uniq("t"), "name": uniq("s")}}, {p: 201 for p in SYS},
         403),
    *row("POST", "/regions", {"region": {"description": "r"}}, {p: 201 for p in SYS}, 403),
    *row("GET", "/policies", None, {"sysadmin": 200, "admproj": 200, "sysreader": 200}, 403),
    *row("POST", "/policies", {"policy": {"type": "application/json", "blob": "{}"}}, {p: 201 for p in SYS}, 403),
]


@pytest.mark.parametrize(("persona", "method", "path", "body", "expected"), MATRIX,
                         ids=[f"{m[0]}-{m[1]}-{m[2]}-{i}" for i, m in enumerate(MATRIX)])
def test_matrix(world: World, persona: str, method: str, path: str, body: Any, expected: int) -> None:
    if callable(body):
        body = body(world) if body.__code__.co_argcount else body()
    r = world.clients[persona].request(method, world.path(path), json=body)
    assert r.status_code == expected, f"{persona} {method} {path}: {r.status_code} {r.text[:300]}"
    if r.status_code >= 400:
        err = r.json()["error"]  # Keystone's error shape on /v3
        assert err["code"] == expected and err["message"] and err["title"]


def test_lists_are_tenant_filtered(world: World) -> None:
    ids = world.ids
    mine = ok(world.clients["projmember"].get("/role_assignments"))["role_assignments"]
    assert mine and all(a["scope"].get("project", {}).get("id") == ids["P1"] for a in mine)
    theirs = ok(world.clients["other"].get("/role_assignments"))["role_assignments"]
    assert all(a["scope"].get("project", {}).get("id") != ids["P1"] for a in theirs)
    projects = ok(world.clients["domadmin"].get("/projects"))["projects"]
    assert projects and {p["domain_id"] for p in projects} == {ids["D1"]}
    assert [p["id"] for p in ok(world.clients["projmember"].get("/projects"))["projects"]] == [ids["P1"]]
    users = ok(world.clients["projmember"].get("/users"))["users"]
    assert [u["id"] for u in users] == [ids["projmember"]]
    creds = ok(world.clients["projreader"].get("/credentials"))["credentials"]
    assert ids["CREDM"] not in {c["id"] for c in creds}
    actions = ok(world.clients["other"].get("/actions"))["actions"]
    assert all(a["tenant_id"] == ids["P2"] for a in actions)


def test_project_admin_cannot_grant_unheld_role_even_to_itself(world: World) -> None:
    r = world.clients["projadmin"].put(world.path("/projects/{P1}/users/{projadmin}/roles/{auditor}"))
    assert r.status_code == 403 and "do not hold" in r.json()["error"]["message"]


def test_every_refusal_is_audited(world: World) -> None:
    r = world.clients["projmember"].post("/domains", json={"domain": {"name": uniq("nope")}})
    assert r.status_code == 403
    rows = ok(world.clients["sysadmin"].get("/actions", params={"user_id": world.ids["projmember"],
                                                                 "success": "false", "obj_type": "domain"}))
    assert rows["actions"] and rows["actions"][0]["action"] == "create"
