"""An httpx transport for plain http:// over the standard library's HTTP/1.1 (``http.client``).

Why: every ``climc`` call is a new process, and httpx's default transport imports httpcore, h11
and anyio when the first client is built — ~20 ms of a ~150 ms round trip on a 2-core box, more
than the request itself against a local controller. ``http.client`` is already imported by httpx
(through ``urllib.request``), so this costs nothing to load. It is only a transport: requests,
responses, redirects, auth, proxies from the environment (httpx mounts its own transports for
those), content decoding and errors stay httpx's, so callers see the same ``httpx.Response`` and
the same ``httpx.TransportError`` subclasses. https:// never comes here (core.client builds a
default httpx client for TLS).

Connections are kept alive and pooled per origin, like httpcore: an idle connection the server
has closed (readable while idle = EOF) is dropped before reuse, so a request is never sent on a
socket known to be dead; one whose send fails before any byte of the answer arrived is retried
once on a new connection only when it was a reused connection (the server closed it between our
check and our send: the request never reached it).
"""
from __future__ import annotations

import http.client
import select
import socket
import threading
from collections.abc import Iterator

import httpx

_MAX_IDLE_PER_ORIGIN = 8
_CHUNK = 64 * 1024


class PlainHTTPTransport(httpx.BaseTransport):
    def __init__(self) -> None:
        self._idle: dict[tuple[str, int], list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.scheme != "http":
            raise httpx.UnsupportedProtocol(f"{request.url.scheme}:// is not served by the plain HTTP transport",
                                            request=request)
        origin = (request.url.host, request.url.port or 80)
        timeouts: dict[str, float | None] = request.extensions.get("timeout", {})
        conn, reused = self._checkout(origin)
        try:
            try:
                resp = self._exchange(conn, request, timeouts)
            except _StaleConnection:
                conn.close()
                if not (reused and isinstance(request.stream, httpx.ByteStream)):  # a body we can send again
                    raise
                conn, reused = self._connect(origin), False
                resp = self._exchange(conn, request, timeouts)
        except _StaleConnection as e:
            conn.close()
            raise httpx.RemoteProtocolError(f"server closed the connection: {e.__cause__}",
                                            request=request) from None
        except BaseException:
            conn.close()
            raise
        return httpx.Response(
            resp.status,
            headers=[(k.encode("latin-1"), v.encode("latin-1")) for k, v in resp.getheaders()],
            stream=_Body(self, origin, conn, resp, request),
            extensions={"http_version": b"HTTP/1.1", "reason_phrase": resp.reason.encode("latin-1")},
            request=request,
        )

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        for conns in idle.values():
            for c in conns:
                c.close()

    # -- the pool

    def _checkout(self, origin: tuple[str, int]) -> tuple[http.client.HTTPConnection, bool]:
        while True:
            with self._lock:
                conns = self._idle.get(origin)
                conn = conns.pop() if conns else None
            if conn is None:
                return self._connect(origin), False
            if conn.sock is not None and not _readable(conn.sock):
                return conn, True
            conn.close()  # the server closed it while idle (or sent something unasked): not reusable

    def _checkin(self, origin: tuple[str, int], conn: http.client.HTTPConnection) -> None:
        with self._lock:
            conns = self._idle.setdefault(origin, [])
            if len(conns) < _MAX_IDLE_PER_ORIGIN:
                conns.append(conn)
                return
        conn.close()

    @staticmethod
    def _connect(origin: tuple[str, int]) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(origin[0], origin[1])

    # -- one request and the head of its answer

    @staticmethod
    def _exchange(conn: http.client.HTTPConnection, request: httpx.Request,
                  timeouts: dict[str, float | None]) -> http.client.HTTPResponse:
        if conn.sock is None:
            conn.timeout = timeouts.get("connect")
            try:
                conn.connect()
            except TimeoutError as e:
                raise httpx.ConnectTimeout(str(e) or "connect timed out", request=request) from None
            except OSError as e:
                raise httpx.ConnectError(str(e), request=request) from None
        sock = conn.sock
        assert sock is not None
        try:
            sock.settimeout(timeouts.get("write"))
            conn.putrequest(request.method, request.url.raw_path.decode("ascii"),
                            skip_host=True, skip_accept_encoding=True)
            for name, value in request.headers.raw:
                conn.putheader(name, value)
            conn.endheaders()
            chunked = request.headers.get("transfer-encoding", "").lower() == "chunked"
            for part in _request_body(request):
                if chunked:
                    if part:
                        conn.send(b"%x\r\n%b\r\n" % (len(part), part))
                else:
                    conn.send(part)
            if chunked:
                conn.send(b"0\r\n\r\n")
        except TimeoutError as e:
            raise httpx.WriteTimeout(str(e) or "write timed out", request=request) from None
        except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError) as e:
            raise _StaleConnection() from e
        except OSError as e:
            raise httpx.WriteError(str(e), request=request) from None
        try:
            sock.settimeout(timeouts.get("read"))
            return conn.getresponse()
        except TimeoutError as e:
            raise httpx.ReadTimeout(str(e) or "read timed out", request=request) from None
        except (http.client.RemoteDisconnected, ConnectionResetError) as e:
            # no byte of an answer: the server dropped the connection before reading our request
            raise _StaleConnection() from e
        except (OSError, http.client.HTTPException) as e:
            raise httpx.RemoteProtocolError(str(e) or type(e).__name__, request=request) from None


class _StaleConnection(Exception):
    """The connection died before any byte of the answer arrived."""


class _Body(httpx.SyncByteStream):
    """The answer's body, read as the caller iterates; the connection goes back to the pool
    once the body was read to its end and the server keeps it open."""

    def __init__(self, pool: PlainHTTPTransport, origin: tuple[str, int], conn: http.client.HTTPConnection,
                 resp: http.client.HTTPResponse, request: httpx.Request) -> None:
        self._pool, self._origin, self._resp, self._request = pool, origin, resp, request
        self._conn: http.client.HTTPConnection | None = conn
        self._done = False

    def __iter__(self) -> Iterator[bytes]:
        while True:
            try:
                part = self._resp.read(_CHUNK)
            except TimeoutError as e:
                raise httpx.ReadTimeout(str(e) or "read timed out", request=self._request) from None
            except (OSError, http.client.HTTPException) as e:
                raise httpx.RemoteProtocolError(str(e) or type(e).__name__, request=self._request) from None
            if not part:
                self._done = True
                return
            yield part

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        self._resp.close()
        if self._done and not self._resp.will_close and conn.sock is not None:
            self._pool._checkin(self._origin, conn)
        else:
            conn.close()


def _request_body(request: httpx.Request) -> Iterator[bytes]:
    if not isinstance(request.stream, httpx.SyncByteStream):
        raise httpx.UnsupportedProtocol("an async request body cannot be sent by a sync transport",
                                        request=request)
    yield from request.stream


def _readable(sock: socket.socket) -> bool:
    """An idle keep-alive socket with something to read has been closed by the server (EOF)."""
    try:
        r, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(r)
