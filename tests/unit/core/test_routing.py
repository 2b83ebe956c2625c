"""core.api.routing: flattened route tables answer exactly as FastAPI's nested inclusion did."""
from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from fastapi import APIRouter, FastAPI

from core.api.routing import IndexedRouter, flatten
from tests.support.inproc import run_with_fresh_app

REPO = Path(__file__).resolve().parents[3]


def _routers() -> list[APIRouter]:
    inner = APIRouter()

    @inner.get("/servers/{sid}/vnc")
    def vnc(sid: str) -> dict[str, str]:
        return {"route": "vnc", "sid": sid}

    @inner.post("/servers/action")
    def action() -> dict[str, str]:
        return {"route": "action"}

    outer = APIRouter(tags=["region"])
    outer.include_router(inner)

    @outer.get("/{plural}/{ident}")
    def generic(plural: str, ident: str) -> dict[str, str]:
        return {"route": "generic", "plural": plural, "ident": ident}

    @outer.get("/servers/{sid}")
    def shadowed(sid: str) -> dict[str, str]:  # declared after the generic one: never reached
        return {"route": "shadowed"}

    @outer.get("/")
    def root() -> dict[str, str]:
        return {"route": "root"}

    return [outer]


def _get(app: FastAPI, method: str, path: str) -> httpx.Response:
    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            return await c.request(method, path)

    return asyncio.run(go())


@pytest.fixture(scope="module")
def apps() -> tuple[FastAPI, FastAPI]:
    nested, flat = FastAPI(), FastAPI()
    sub = APIRouter()
    for r in _routers():
        sub.include_router(r)
    nested.mount("/api", sub)
    flat.mount("/api", IndexedRouter(flatten(_routers())))
    return nested, flat


@pytest.mark.parametrize(("method", "path"), [
    ("GET", "/api/servers/s1/vnc"), ("GET", "/api/servers/s1"), ("GET", "/api/networks/n1"),
    ("POST", "/api/servers/action"), ("GET", "/api/servers/action"), ("DELETE", "/api/servers/s1/vnc"),
    ("GET", "/api/"), ("GET", "/api/nothing/here/at/all"), ("PUT", "/api/zones/z"),
])
def test_same_answer_as_nested_inclusion(apps: tuple[FastAPI, FastAPI], method: str, path: str) -> None:
    nested, flat = apps
    a, b = _get(nested, method, path), _get(flat, method, path)
    assert (b.status_code, b.content, b.headers.get("allow")) == (a.status_code, a.content, a.headers.get("allow"))


def test_tags_carried_once() -> None:
    routers = _routers()
    flatten(routers)
    routes = flatten(routers)  # twice: a second app in the same process must not repeat tags
    vnc = next(r for r in routes if getattr(r, "path", "") == "/servers/{sid}/vnc")
    assert vnc.tags == ["region"]  # type: ignore[attr-defined]


def test_an_inclusion_that_changes_routes_is_refused() -> None:
    inner, outer = APIRouter(), APIRouter()

    @inner.get("/x")
    def x() -> None:
        return None

    outer.include_router(inner, prefix="/v9")
    with pytest.raises(ValueError, match="changes its routes"):
        flatten([outer])


def test_a_framework_without_inclusion_branches_is_taken_as_flat(monkeypatch: pytest.MonkeyPatch) -> None:
    # FastAPI releases that setup.cfg still allows copy included routes into the parent and have no
    # _IncludedRouter: flatten must then keep the routes as they are, not fail at start
    import core.api.routing as routing

    plain = APIRouter()

    @plain.get("/zones")
    def zones() -> dict[str, str]:
        return {"route": "zones"}

    monkeypatch.setattr(routing, "_IncludedRouter", None)
    assert [getattr(r, "path", None) for r in flatten([plain])] == ["/zones"]


def test_a_lazy_router_is_built_at_its_first_request_and_answers_as_built() -> None:
    from core.api.routing import LazyRouter

    built: list[int] = []

    def build() -> IndexedRouter:
        built.append(1)
        return IndexedRouter(flatten(_routers()))

    lazy, flat = FastAPI(), FastAPI()
    lazy.mount("/api", LazyRouter(build))
    flat.mount("/api", IndexedRouter(flatten(_routers())))
    assert built == []  # mounting builds nothing
    for method, path in (("GET", "/api/servers/s1/vnc"), ("GET", "/api/networks/n1"), ("DELETE", "/api/servers/s1/vnc"),
                         ("GET", "/api/nothing/here/at/all")):
        a, b = _get(flat, method, path), _get(lazy, method, path)
        assert (b.status_code, b.content, b.headers.get("allow")) == (a.status_code, a.content, a.headers.get("allow"))
    assert built == [1]  # once


def test_the_lazy_image_service_is_built_by_its_first_request_or_by_openapi(tmp_path: Path) -> None:
    # the image service's modules are not imported by building the app (≈1.2 MB of an idle controller)
    run_with_fresh_app(tmp_path, """
        assert "core.glance.api" not in sys.modules, "building the app imported the image service"
        assert "/api/s/image/v1/images" in app.openapi()["paths"]
        assert "core.glance.api" in sys.modules
        """)


def test_route_building_imports_no_pydantic_v1_and_still_refuses_v1_models() -> None:
    # FastAPI imports pydantic.v1 (≈2 MB) to check each route's types; a fresh interpreter shows it
    script = """
import sys
import core.api.routing
from fastapi import APIRouter
from pydantic import BaseModel

class Body(BaseModel):
    name: str

router = APIRouter()

@router.post("/things")
def make(body: Body, q: int = 0) -> Body:
    return body

assert "pydantic.v1" not in sys.modules, "declaring a route imported pydantic.v1"
import warnings
warnings.simplefilter("ignore")
from pydantic import v1
from fastapi.exceptions import FastAPIError

class Old(v1.BaseModel):
    name: str

try:
    @router.post("/old")
    def old(body: Old) -> None:
        return None
except FastAPIError as e:
    assert "pydantic.v1" in str(e), e
else:
    raise AssertionError("a pydantic.v1 model was accepted")
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
