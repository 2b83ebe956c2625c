"""Helpers for the identity e2e tests (no tests here): logins, users, grants against a real controller."""
from __future__ import annotations

import uuid
from typing import Any

import httpx

from tests.support.controller import Controller

KS = "/api/s/identity/v3"


def uniq(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def login_raw(ctl: Controller, name: str, password: str, scope: dict[str, Any] | None = None,
              domain: str = "Default") -> httpx.Response:
    body: dict[str, Any] = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": name, "password": password, "domain": {"name": domain}}}}}}
    if scope is not None:
        body["auth"]["scope"] = scope
    return httpx.post(ctl.url + KS + "/auth/tokens", json=body, timeout=30)


def login(ctl: Controller, name: str, password: str, scope: dict[str, Any] | None = None,
          domain: str = "Default") -> str:
    r = login_raw(ctl, name, password, scope, domain)
    assert r.status_code == 201, r.text
    return r.headers["x-subject-token"]


def client(ctl: Controller, token: str) -> httpx.Client:
    return httpx.Client(base_url=ctl.url + KS, headers={"X-Auth-Token": token}, timeout=60)


def admin(ctl: Controller) -> httpx.Client:
    """System-scoped admin client (the API's own base URL is the identity root)."""
    tok = login(ctl, ctl.env["OS_USERNAME"], ctl.env["OS_PASSWORD"], {"system": {"all": True}})
    return client(ctl, tok)


def ok(r: httpx.Response, status: int = 200) -> Any:
    assert r.status_code == status, f"{r.request.method} {r.request.url} -> {r.status_code}: {r.text}"
    return r.json() if r.content else None


def mk_domain(api: httpx.Client, name: str | None = None) -> dict[str, Any]:
    return ok(api.post("/domains", json={"domain": {"name": name or uniq("dom")}}), 201)["domain"]


def mk_project(api: httpx.Client, domain_id: str = "default", name: str | None = None) -> dict[str, Any]:
    return ok(api.post("/projects", json={"project": {"name": name or uniq("prj"), "domain_id": domain_id}}),
              201)["project"]


def mk_user(api: httpx.Client, password: str = "pw-Secret-1", domain_id: str = "default",
            name: str | None = None, **extra: Any) -> dict[str, Any]:
    body = {"name": name or uniq("usr"), "password": password, "domain_id": domain_id, **extra}
    return ok(api.post("/users", json={"user": body}), 201)["user"]


def grant(api: httpx.Client, target: str, user_id: str, role: str) -> None:
    """target: 'projects/<id>', 'domains/<id>' or 'system'."""
    ok(api.put(f"/{target}/users/{user_id}/roles/{role}"), 204)


def project_user(ctl: Controller, api: httpx.Client, password: str = "pw-Secret-1", role: str = "member"
                 ) -> tuple[dict[str, Any], dict[str, Any], str]:
    """A new user with ``role`` in a new project, logged in there: (user, project, token)."""
    u = mk_user(api, password)
    p = mk_project(api)
    grant(api, f"projects/{p['id']}", u["id"], role)
    return u, p, login(ctl, u["name"], password, {"project": {"id": p["id"]}})
