"""One pure-ASGI middleware for the gateway concerns every route shares.

- empty path segments are dropped (``//servers`` works: a real SDK sends it), and a service's
  bare prefix (``/api/s/identity/v3``) reaches that service's root route;
- a request id is taken from ``X-Request-Id`` or made, and echoed in the reply;
- request bodies are capped at ``max_body`` bytes (413), except on streaming upload routes.
"""
from __future__ import annotations

import json
import re
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from typing import Any

from core.errors import RequestTooLargeError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_MULTI_SLASH = re.compile(r"/{2,}")
_RID_OK = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


class GatewayMiddleware:
    def __init__(self, app: ASGIApp, max_body: int, stream_prefixes: tuple[str, ...] = (),
                 mount_prefixes: tuple[str, ...] = ()) -> None:
        self.app = app
        self.max_body = max_body
        self.stream_prefixes = stream_prefixes
        # a service mounted at /api/s/x answers /api/s/x itself (version documents live there)
        self.mount_prefixes = frozenset(mount_prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if "//" in path:
            path = _MULTI_SLASH.sub("/", path)
            scope = dict(scope, path=path, raw_path=path.encode())
        if path in self.mount_prefixes:
            path += "/"
            scope = dict(scope, path=path, raw_path=path.encode())
        rid = ""
        for k, v in scope.get("headers", ()):
            if k == b"x-request-id":
                rid = v.decode("latin-1")
                break
        if not _RID_OK.match(rid):
            rid = uuid.uuid4().hex[:16]
        scope.setdefault("state", {})["request_id"] = rid
        rid_header = (b"x-request-id", rid.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], rid_header]
            await send(message)

        if any(path.startswith(p) for p in self.stream_prefixes):
            await self.app(scope, receive, send_with_id)
            return
        for k, v in scope.get("headers", ()):
            if k == b"content-length":
                try:
                    too_big = int(v) > self.max_body
                except ValueError:
                    too_big = False
                if too_big:
                    await _reply_413(send_with_id, self.max_body, path)
                    return
        seen = 0
        limit = self.max_body

        async def capped_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise RequestTooLargeError(f"request body exceeds {limit} bytes")
            return message

        await self.app(scope, capped_receive, send_with_id)


async def _reply_413(send: Send, limit: int, path: str) -> None:
    err = RequestTooLargeError(f"request body exceeds {limit} bytes")
    if "/identity/v3" in path:
        body: dict[str, Any] = {"error": {"code": 413, "title": err.title, "message": err.details}}
    else:
        body = {**err.to_dict(), "time": datetime.now(UTC).isoformat().replace("+00:00", "Z")}
    raw = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": raw})
