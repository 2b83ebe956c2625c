"""The scheduler routes: in-process against a registered snapshot, and on a running controller."""
from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from core.api import errors
from core.api.context import Credential
from core.api.deps import get_credential
from core.scheduler import GroupRecord
from core.scheduler.api import router
from core.scheduler.provider import get_snapshot, set_snapshot_provider
from tests.support.controller import Controller
from tests.unit.scheduler.helpers import GB, host, snapshot


def _cred(*roles: str) -> Credential:
    return Credential(token="t", user_id="u", user_name="u", user_domain_id="default", user_domain_name="Default",
                      scope="project", roles=roles, project_id="p")


class Client:
    """A sync facade over httpx's ASGI transport (the app runs in-process, no server)."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    def post(self, path: str, json: Any) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
                return await c.post(path, json=json)

        return asyncio.run(go())


@pytest.fixture
def client() -> Iterator[Client]:
    app = FastAPI()
    errors.install(app)
    app.include_router(router, prefix="/api/s/scheduler")
    app.dependency_overrides[get_credential] = lambda: _cred("admin", "member", "reader")
    snap = snapshot(hosts=[host(0), host(1), host(2, zone_id="z2")],
                    groups=[GroupRecord(id="web", policy="anti_affinity")])
    set_snapshot_provider(lambda: snap)
    try:
        yield Client(app)
    finally:
        set_snapshot_provider(None)


def test_schedule_returns_candidates(client: Client) -> None:
    r = client.post("/api/s/scheduler/scheduler", json={"scheduler": {
        "vcpu_count": 1, "vmem_size": GB, "count": 3, "prefer_zone": "z1", "groups": ["web"],
        "disks": [{"size": 10 * GB}], "nets": [{}]}})
    assert r.status_code == 200, r.text
    cands = r.json()["candidates"]
    assert [c.get("error") for c in cands[:2]] == [None, None]
    assert {c["host_id"] for c in cands[:2]} == {"h0", "h1"}
    assert cands[0]["disks"][0]["storage_id"] in ("s0", "s1") and cands[0]["nets"][0]["network_id"] == "net0"
    assert cands[2]["host_id"] == "" and "1 host(s) are not in the requested zone" in cands[2]["error"]
    assert get_snapshot().live_claims() == 0  # the reply reserves nothing


def test_forecast_reply(client: Client) -> None:
    r = client.post("/api/s/scheduler/scheduler/forecast", json={"vcpu_count": 4, "vmem_size": 20 * GB})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["can_create"] is False and body["allow_count"] == 0 and body["req_count"] == 1
    assert body["filtered_candidates"] == [{"filter_name": "memory", "count": 3,
                                            "reasons": ["3 host(s) have less memory in total than requested"]}]


@pytest.mark.parametrize("body,field", [
    ({"vcpu_count": 0}, "vcpu_count"),
    ({"disks": [{"size": "big"}]}, "disks.0.size"),
    ({"schedtags": [{"id": "x", "strategy": "maybe"}]}, "schedtags.0.strategy"),
    ({"groups": ["no-such-group"]}, "instance_groups"),
])
def test_bad_input_is_a_400_naming_the_field(client: Client, body: dict[str, object], field: str) -> None:
    r = client.post("/api/s/scheduler/scheduler/forecast", json=body)
    assert r.status_code == 400, r.text
    err = r.json()
    assert err["class"] == "InputParameterError" and err["details"].startswith(field)
    assert err["field"] == field


def test_body_must_be_an_object(client: Client) -> None:
    r = client.post("/api/s/scheduler/scheduler", json=[1, 2])
    assert r.status_code == 400 and "JSON object" in r.json()["details"]


def test_schedule_needs_admin(client: Client) -> None:
    client.app.dependency_overrides[get_credential] = lambda: _cred("member")
    assert client.post("/api/s/scheduler/scheduler", json={}).status_code == 403
    assert client.post("/api/s/scheduler/scheduler/forecast", json={}).status_code == 200


def test_running_controller_answers_from_an_empty_snapshot(fresh_controller: Controller) -> None:
    """A controller with no hosts registered says so, through the region's snapshot provider."""
    controller = fresh_controller
    api: httpx.Client = controller.api
    r = api.post("/api/s/scheduler/scheduler/forecast", json={"vcpu_count": 1, "count": 2})
    assert r.status_code == 200, r.text
    assert r.json()["not_allow_reasons"] == ["placed 0 of 2: there are no hosts to schedule on"]
    r = api.post("/api/s/scheduler/scheduler/forecast", json={"vcpu_count": -1})
    assert r.status_code == 400 and r.json()["details"].startswith("vcpu_count")
    assert httpx.post(controller.url + "/api/s/scheduler/scheduler", json={}).status_code == 401
