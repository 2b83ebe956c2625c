"""Route tables built once, matched by an index: the framework part of a request's and a start's cost.

FastAPI's ``include_router`` keeps each included router as a branch whose routes are analysed again
for that inclusion (dependencies, pydantic adapters, the handler: the decorator's work a second
time, ≈0.25 s CPU at start and again lazily on the first request), and matching walks those
branches route by route, bookkeeping the inclusion in the scope (≈40 % of a small request's CPU).
Our inclusions add nothing to a route (no prefix, dependencies, responses or limits: ``flatten``
refuses one that does), so the decorated routes themselves are the table, and ``IndexedRouter``
tries only the routes that can match the request's first path segment, in their declared order.
"""
from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from fastapi import APIRouter
from fastapi.datastructures import DefaultPlaceholder
from fastapi.routing import APIRoute

try:  # FastAPI keeps an inclusion as a branch (a private class; setup.cfg allows older releases)
    from fastapi.routing import _IncludedRouter
except ImportError:  # older releases copy included routes into the parent: already flat
    _IncludedRouter = None  # type: ignore[assignment,misc]
from starlette._utils import get_route_path
from starlette.routing import BaseRoute, Match
from starlette.types import Receive, Scope, Send


def _spare_pydantic_v1() -> None:
    """Keep route building from importing pydantic.v1 (≈2 MB and 23 modules of an idle controller, issue 22).

    FastAPI refuses pydantic.v1 models: for every route parameter and response type it asks
    ``issubclass(t, pydantic.v1.BaseModel)``, importing ``pydantic.v1`` to do so (fastapi/_compat/shared.py
    in 0.165; no setting or release avoids it). A class can be a v1 model only once pydantic.v1 has been
    imported, so until then the answer is "no" without the import; after it, FastAPI's own check runs.
    Releases without that function (setup.cfg allows older ones) are left as they are."""
    try:
        from fastapi._compat import shared
    except ImportError:  # pragma: no cover - an older FastAPI
        return
    check = getattr(shared, "is_pydantic_v1_model_class", None)
    if check is None or getattr(check, "__wrapped__", None) is not None:
        return

    def is_pydantic_v1_model_class(cls: Any) -> bool:
        return "pydantic.v1" in sys.modules and bool(check(cls))

    is_pydantic_v1_model_class.__wrapped__ = check  # type: ignore[attr-defined]
    shared.is_pydantic_v1_model_class = is_pydantic_v1_model_class


_spare_pydantic_v1()  # before any route is declared: core.api.app imports this module before the routers

# The parts of an inclusion that would change how a route answers; an inclusion setting any of them
# cannot be flattened (none of ours does: the check keeps it that way). Tags (documentation only)
# are carried onto the route.
_CONTEXT_EMPTY = ("prefix", "dependencies", "responses", "callbacks")


def _plain(context: Any) -> bool:
    if any(getattr(context, name) for name in _CONTEXT_EMPTY):
        return False
    if context.deprecated or not context.include_in_schema or context.max_body_size is not None:
        return False
    if context.form_limits:
        return False
    inner = context.included_router
    return all(isinstance(getattr(x, attr), DefaultPlaceholder)
               for x in (context, inner) for attr in ("default_response_class", "strict_content_type"))


def flatten(routers: Iterable[APIRouter]) -> list[BaseRoute]:
    """The routes of ``routers`` in matching order, included routers expanded in place."""
    out: list[BaseRoute] = []
    for router in routers:
        for route in router.routes:
            if _IncludedRouter is not None and isinstance(route, _IncludedRouter):
                if not _plain(route.include_context):
                    raise ValueError(f"include of {route.original_router!r} changes its routes: "
                                     "declare prefix/dependencies on the router itself")
                tags = route.include_context.tags
                for inner in flatten([route.original_router]):
                    if tags and isinstance(inner, APIRoute):  # as the inclusion shows them; idempotent
                        inner.tags = [*(t for t in tags if t not in inner.tags), *inner.tags]
                    out.append(inner)
            else:
                out.append(route)
        if router.on_startup or router.on_shutdown:
            raise ValueError("routers with startup/shutdown handlers cannot be flattened: use the lifespan")
    return out


def _first_segment(path: str) -> str | None:
    """The literal first segment of a route template (``/servers/{id}`` → ``servers``), None if
    it is a parameter (the route can match any first segment)."""
    seg = path.lstrip("/").split("/", 1)[0]
    return None if "{" in seg else seg


class IndexedRouter(APIRouter):
    """An APIRouter over a fixed, flat route list, matching through a first-segment index.

    Order is kept: the candidates for a segment are the routes with that literal first segment
    plus the parameterised ones, in declared order, so the first full match is the one a linear
    scan would find. Anything not matched here (404, a trailing-slash redirect) takes the
    framework's own path, which scans the whole list as before."""

    def __init__(self, routes: Sequence[BaseRoute]) -> None:
        super().__init__(routes=list(routes))
        self._index: dict[str, tuple[BaseRoute, ...]] = {}
        self._wild: tuple[BaseRoute, ...] = ()
        self._reindex()

    def _reindex(self) -> None:
        firsts = [_first_segment(getattr(r, "path", "") or "") for r in self.routes]
        self._wild = tuple(r for r, f in zip(self.routes, firsts, strict=True) if f is None)
        self._index = {seg: tuple(r for r, f in zip(self.routes, firsts, strict=True) if f is None or f == seg)
                       for seg in {f for f in firsts if f is not None}}
        self._indexed_count = len(self.routes)

    async def app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or len(self.routes) != self._indexed_count:
            await super().app(scope, receive, send)
            return
        seg = get_route_path(scope).lstrip("/").split("/", 1)[0]
        partial: tuple[BaseRoute, Scope] | None = None
        for route in self._index.get(seg, self._wild):
            match, child = route.matches(scope)
            if match == Match.FULL:
                scope.update(child)
                await route.handle(scope, receive, send)
                return
            if match == Match.PARTIAL and partial is None:
                partial = (route, child)
        if partial is not None:  # the path matched but not the method: that route answers 405
            route, child = partial
            scope.update(child)
            await route.handle(scope, receive, send)
            return
        await super().app(scope, receive, send)


class LazyRouter:
    """A service's router built at its first request (or when its routes are read, e.g. for OpenAPI).

    For a service an idle controller does not use: its modules and route tables (for the image service
    ≈1.2 MB and ≈40 ms of the start's CPU) are paid by the first request under its prefix instead."""

    def __init__(self, build: Callable[[], IndexedRouter]) -> None:
        self._build: Callable[[], IndexedRouter] | None = build
        self._router: IndexedRouter | None = None
        self._lock = threading.Lock()

    @property
    def router(self) -> IndexedRouter:
        if self._router is None:
            with self._lock:  # the event loop and a thread (OpenAPI) may both ask first
                if self._router is None:
                    assert self._build is not None
                    self._router = self._build()
                    self._build = None
        return self._router

    @property
    def routes(self) -> list[BaseRoute]:
        return self.router.routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.router(scope, receive, send)
