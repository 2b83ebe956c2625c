"""The app factory: one ASGI app, every service mounted at its gateway path (API.md §1)."""
from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI

from core.api import errors
from core.api.common import root_router, service_router
from core.api.middleware import GatewayMiddleware
from core.api.routing import IndexedRouter, LazyRouter, flatten
from core.config import Settings
from core.db.engine import Database
from core.keystone.auth import Authenticator
from core.keystone.credkeys import cipher_for, use_cipher
from core.keystone.keys import KeyRepository
from core.keystone.passwords import set_policy as set_password_policy
from core.keystone.tokens import TokenCodec
from core.loader import load
from core.version import VERSION

# (service type, gateway prefix, router) — a static table: no scanning (PyInstaller-safe).
# A service's routers in matching order: specific routes before a generic grammar.
SERVICE_ROUTERS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("identity", "/api/s/identity/v3", ("core.keystone.api:router",)),
    ("compute_v2", "/api/s/compute_v2", (
        "core.hostapi.routes:router",  # /agent/...
        "core.console.routes:router",  # /servers/<id>/vnc, /webconsole/...
        "core.region.api:specific",  # quotas, capabilities, host BMC actions
        "core.metrics.api:router",  # /servers/<id>/metrics, /hosts/<id>/metrics
        "core.region.api:router",  # the generic resource grammar
    )),
    ("image", "/api/s/image", ("core.glance.api:router",)),
    ("scheduler", "/api/s/scheduler", ("core.scheduler.api:router",)),
)
# Services whose routers are built at their first request: an idle controller does not use them.
LAZY_SERVICES = frozenset({"image"})
# Routers at the root, next to the services: GET /metrics, and the identity version discovery at
# /api/s/identity. In a table (not inline strings) so the binary's bundle plan sees them.
ROOT_ROUTERS: tuple[str, ...] = ("core.metrics.routes:router", "core.keystone.api:discovery_router")
# Background services started with the app, in order, and stopped in reverse (task workers, cloud
# syncs and periodic jobs; the executor of hosts whose driver runs in the controller, after the region
# configured their runtime; the metrics listener): "module:function" taking the app and returning a
# stop callable. Static, like the routers.
BACKGROUND: tuple[str, ...] = ("core.region.background:start", "core.hostapi.background:start",
                               "core.metrics.listener:start")
# Routes whose bodies are streamed by the handler itself (no size cap here).
STREAM_PREFIXES = ("/api/s/image/",)
# ... and single routes, by pattern: an agent's upload of a migrating guest's disk, of a saved image
STREAM_PATTERNS = ("core.hostapi.migrations:UPLOAD_PATH", "core.hostapi.routes.images:IMAGE_UPLOAD_PATH")


def _merged_openapi(app: FastAPI, services: list[tuple[str, APIRouter | LazyRouter]]) -> Callable[[], dict[str, Any]]:
    """One OpenAPI document for the whole process: the root routes plus every service's, prefixed."""
    from fastapi.openapi.utils import get_openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        doc = get_openapi(title=app.title, version=app.version, routes=app.routes)
        paths = doc.setdefault("paths", {})
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        for prefix, sub in services:
            part = get_openapi(title=app.title, version=app.version, routes=sub.routes)
            for path, item in part.get("paths", {}).items():
                paths[prefix + path] = item
            schemas.update(part.get("components", {}).get("schemas", {}))
        app.openapi_schema = doc
        return doc

    return openapi


def create_app(settings: Settings, db: Database | None = None, run_background: bool = True) -> FastAPI:
    """Build the controller app. Raises NoKeysError if the token key repository is empty."""
    import core.db.models
    import core.keystone.policies  # noqa: F401  (every rule registered)

    db = db or Database(settings.database_url)
    codec = TokenCodec(KeyRepository(settings.key_dir))
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stops: list[Callable[[], Any]] = []
        if app.state.run_background:
            for ref in BACKGROUND:
                stops.append(load(ref)(app))
        try:
            yield
        finally:
            for stop in reversed(stops):
                stop()
            db.dispose()

    app = FastAPI(title="cloudpods-one", version=VERSION, docs_url=None, redoc_url=None, lifespan=lifespan)
    app.state.run_background = run_background
    # a threading.Event the server sets once it listens (ocadm serve); None: background starts at once
    app.state.listening = None
    app.state.settings = settings
    app.state.db = db
    app.state.auth = Authenticator(codec, settings.token_lifetime_s,
                                   settings.lockout_failures, settings.lockout_seconds)
    app.state.credential_cipher = cipher_for(settings.data_dir)
    use_cipher(app.state.credential_cipher)  # secrets at rest in other services' rows (server passwords)
    set_password_policy(settings.password_min_length)
    errors.install(app)
    # Routes go in as flat tables (core/api/routing.py): include_router would analyse each one again.
    app.router.routes.extend(flatten([root_router(), *(load(ref) for ref in ROOT_ROUTERS)]))
    # Each service is its own sub-app behind a Mount: a request is matched against one prefix and then
    # only its service's routes (matching every route of every service cost ~25% of a request's CPU).
    # The mounted router runs inside this app: its errors reach this app's handlers, request.app is
    # this app (one settings/db/auth for every service), and no second middleware stack is paid.
    services: list[tuple[str, APIRouter | LazyRouter]] = []
    for service, prefix, refs in SERVICE_ROUTERS:
        def build(service: str = service, refs: tuple[str, ...] = refs) -> IndexedRouter:
            return IndexedRouter(flatten([service_router(service), *(load(ref) for ref in refs)]))

        sub: APIRouter | LazyRouter = LazyRouter(build) if service in LAZY_SERVICES else build()
        app.mount(prefix, sub)
        services.append((prefix, sub))
    app.openapi = _merged_openapi(app, services)  # type: ignore[method-assign]
    from core.metrics.middleware import MetricsMiddleware

    app.add_middleware(MetricsMiddleware)  # inside the gateway: it sees the normalised path and the matched route
    app.add_middleware(GatewayMiddleware, max_body=settings.max_body_bytes, stream_prefixes=STREAM_PREFIXES,
                       stream_patterns=tuple(load(p) for p in STREAM_PATTERNS),
                       mount_prefixes=tuple(prefix for _s, prefix, _r in SERVICE_ROUTERS),
                       region=settings.region_id)
    logging.getLogger("cloudpods").setLevel(settings.log_level.upper())
    return app
