"""One pure-ASGI middleware for the gateway concerns every route shares.

- empty path segments are dropped (``//servers`` works: a real SDK sends it), and a service's
  bare prefix (``/api/s/identity/v3``) reaches that service's root route;
- Cloudpods' API-gateway paths (``OS_ENDPOINT_TYPE=apigateway``: ``/api/s/<service>/r/<region>
  [/z/<zone>]/<path of the catalog URL>/...``) are routed to the service's own path; another
  region than this one is a 404;
- a request id is taken from ``X-Request-Id`` or made, and echoed in the reply;
- request bodies are capped at ``max_body`` bytes (413), except on streaming upload routes
  (``stream_prefixes``, or single routes by ``stream_patterns``);
- a JSON body (or one without a content type, which FastAPI parses as JSON) is read whole, within
  the cap, and refused (400) when nested deeper than ``MAX_JSON_DEPTH`` before any route parses it:
  the parser recurses per level, so 10000 nested lists were a RecursionError (a 500) per request.
  On the streaming prefixes only bodies that say they are JSON are read this way; uploads stream.
  Integers beyond 64 bits (and floats overflowing to infinity) in a JSON body are a 400 here too:
  no database column holds them, so each service would otherwise fail (500) where it stores one.
- every other (non-upload) body is read whole too, so a chunked body past the cap is a 413 like a
  sized one.
"""
from __future__ import annotations

import json
import os
import re
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from typing import Any

from core.api.inputs import json_number_error
from core.errors import CloudpodsError, InputParameterError, RequestTooLargeError, ResourceNotFoundError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_MULTI_SLASH = re.compile(r"/{2,}")
_GATEWAY = re.compile(r"^/api/s/([^/]+)/r/([^/]+)(?:/z/[^/]+)?(/.*)?$")
_RID_OK = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
MAX_JSON_DEPTH = 64
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\[\s\S][^"\\]*)*"?')  # escapes; an unterminated one to the end
_BRACKETS = bytes.maketrans(b"{}", b"[]")
_NOT_BRACKET = bytes(set(range(256)) - set(b"[]{}"))


def json_too_deep(raw: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """True if the JSON text ``raw`` nests arrays/objects deeper than ``limit`` (brackets inside
    strings do not count). No recursion: strings are cut out and only the brackets kept (C speed),
    a few passes drop innermost pairs (what real bodies are made of), one linear scan counts what
    is left. Unclosed brackets count as depth: the parser would recurse into them too."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    s = _JSON_STRING.sub(b"", raw).translate(_BRACKETS, _NOT_BRACKET)
    removed = 0  # layers dropped: every bracket left sits at least this deep
    for _ in range(4):
        shorter = s.replace(b"[]", b"")
        if len(shorter) == len(s):
            break
        s, removed = shorter, removed + 1
    if s.count(b"[") + removed <= limit:
        return False
    depth = removed
    for c in s:
        depth += 1 if c == 0x5B else -1
        if depth > limit:
            return True
    return False


def too_deep_error() -> InputParameterError:
    # unclosed brackets count as depth, so a truncated body can land here too
    return InputParameterError(f"malformed JSON body: nested deeper than {MAX_JSON_DEPTH} levels or unclosed")


def _media_type(headers: Any) -> str | None:
    for k, v in headers:
        if k == b"content-type":
            return v.decode("latin-1").split(";")[0].strip().lower()
    return None


def _has_body(headers: Any) -> bool:
    for k, v in headers:
        if k == b"content-length" and v.strip() not in (b"", b"0"):
            return True
        if k == b"transfer-encoding" and b"chunked" in v.lower():
            return True
    return False


class GatewayMiddleware:
    def __init__(self, app: ASGIApp, max_body: int, stream_prefixes: tuple[str, ...] = (),
                 mount_prefixes: tuple[str, ...] = (), stream_patterns: tuple[re.Pattern[str], ...] = (),
                 region: str = "") -> None:
        self.app = app
        self.region = region
        self.max_body = max_body
        self.stream_prefixes = stream_prefixes
        self.stream_patterns = stream_patterns
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
        gw = _GATEWAY.match(path) if "/r/" in path else None
        if gw is not None:
            service, region, rest = gw.group(1), gw.group(2), gw.group(3) or "/"
            if region != self.region:
                await _reply(send, ResourceNotFoundError(f"region {region} not found (this is {self.region})"), path)
                return
            # the catalog URL's own path follows the region (ours start /api/s/...; Cloudpods' are
            # service roots such as /v3 or /v1, which live under the service's gateway prefix)
            path = rest if rest.startswith("/api/s/") else f"/api/s/{service}{rest}"
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
            rid = os.urandom(8).hex()  # 16 hex characters, as uuid4().hex[:16] was, at a fifth of its cost
        scope.setdefault("state", {})["request_id"] = rid
        rid_header = (b"x-request-id", rid.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], rid_header]
            await send(message)

        headers = scope.get("headers", ())
        media = _media_type(headers)
        streamed = any(path.startswith(p) for p in self.stream_prefixes) or any(
            p.match(path) for p in self.stream_patterns)
        has_body = _has_body(headers)
        json_body = has_body and ("json" in media if media is not None else not streamed)
        if streamed and not json_body:
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
        if has_body:  # every non-upload body is small: read it whole, so chunked ones get the 413 too
            await self._buffered(scope, receive, send_with_id, path, json_body)
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

    async def _buffered(self, scope: Scope, receive: Receive, send: Send, path: str, json_body: bool) -> None:
        """Read the whole body (413 past the cap, sized or chunked); a JSON one is refused if nested
        too deep or holding a number no column can store; then hand the app the same bytes."""
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away before sending its body
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.max_body:
                await _reply_413(send, self.max_body, path)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        raw = b"".join(chunks)
        if json_body:
            err = too_deep_error() if json_too_deep(raw) else json_number_error(raw)
            if err is not None:
                await _reply(send, err, path)
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": raw, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _reply_413(send: Send, limit: int, path: str) -> None:
    await _reply(send, RequestTooLargeError(f"request body exceeds {limit} bytes"), path)


async def _reply(send: Send, err: CloudpodsError, path: str) -> None:
    """An error answered by the gateway itself, in the shape of the route it was meant for."""
    if "/identity/v3" in path:
        body: dict[str, Any] = {"error": {"code": err.code, "title": err.title, "message": err.details}}
    else:
        body = {**err.to_dict(), "time": datetime.now(UTC).isoformat().replace("+00:00", "Z")}
    raw = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(raw)).encode())]
    if err.code == 413:
        headers.append((b"connection", b"close"))  # the rest of the body was never read
    await send({"type": "http.response.start", "status": err.code, "headers": headers})
    await send({"type": "http.response.body", "body": raw})
