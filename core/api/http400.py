"""uvicorn answers a request it cannot parse (raw non-UTF-8 bytes in the request line, a broken
header) itself, in plain text, before any ASGI code runs. These protocol classes give that answer
the documented error shape instead (``ocadm serve`` passes one as uvicorn's ``http``)."""
from __future__ import annotations

import json
from datetime import UTC, datetime

from core.errors import InputParameterError


def _body(msg: str) -> bytes:
    err = InputParameterError(f"malformed HTTP request: {msg.rstrip('.')} (the request line and headers "
                              "must be valid HTTP/1.1; percent-encode other bytes in the URL)")
    return json.dumps({**err.to_dict(), "time": datetime.now(UTC).isoformat().replace("+00:00", "Z")}).encode()


def _response(default_headers: list[tuple[bytes, bytes]], msg: str) -> bytes:
    body = _body(msg)
    out = [b"HTTP/1.1 400 Bad Request\r\n"]
    for name, value in default_headers:
        out += [name, b": ", value, b"\r\n"]
    out += [b"content-type: application/json\r\ncontent-length: ", str(len(body)).encode(),
            b"\r\nconnection: close\r\n\r\n", body]
    return b"".join(out)


def _protocol() -> type:
    """uvicorn's httptools protocol with our 400 answer; h11's when httptools is missing (optional for
    uvicorn). h11 is imported only then: ~0.3 MB of an idle controller's RSS (issue 22)."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:
        from uvicorn.protocols.http.h11_impl import H11Protocol

        class JsonH11Protocol(H11Protocol):
            def send_400_response(self, msg: str) -> None:
                self.transport.write(_response(self.server_state.default_headers, msg))
                self.transport.close()

        return JsonH11Protocol

    class JsonHttpToolsProtocol(HttpToolsProtocol):
        def send_400_response(self, msg: str) -> None:
            self.transport.write(_response(self.server_state.default_headers, msg))
            self.transport.close()

    return JsonHttpToolsProtocol


HTTP_PROTOCOL: type = _protocol()
