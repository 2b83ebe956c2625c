"""Per-route request counts and latency, as a pure-ASGI middleware (no per-request task or copy).

The route label is the matched route's template, prefixed with its service's mount path
(``/api/s/compute_v2/servers/{id}``); a request no route matched is ``unmatched`` (so a scan of
random URLs cannot grow the series without bound)."""
from __future__ import annotations

import time
from typing import Any

from core.api.middleware import ASGIApp, Message, Receive, Scope, Send
from core.counters import HTTP_LATENCY, HTTP_REQUESTS

UNMATCHED = "unmatched"


def route_template(scope: Scope) -> str:
    route: Any = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    if not path:
        return UNMATCHED
    plural = (scope.get("path_params") or {}).get("plural")
    if plural and "{plural}" in path:
        # the region's generic routes (/{plural}/{ident}) serve every resource: name the resource
        # when it is one (a fixed set), so servers and networks are separate series
        from core.region.registry import MANAGERS

        if plural in MANAGERS:
            path = path.replace("{plural}", plural)
    return f"{scope.get('root_path', '') or ''}{path}"


class MetricsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            method = scope.get("method", "")
            route = route_template(scope)
            HTTP_REQUESTS.labels(method, route, str(status)).inc()
            HTTP_LATENCY.labels(method, route).observe(time.perf_counter() - start)
