"""core.plain_http against a real HTTP/1.1 server (the standard library's, in a thread): what climc
relies on — bodies both ways (sized and chunked), streamed and gzip-encoded answers, keep-alive
reuse, a connection the server closed while idle, and httpx's own errors for refusals and timeouts."""
from __future__ import annotations

import gzip
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from core import plain_http
from core.plain_http import PlainHTTPTransport


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, *args: object) -> None:  # quiet test output
        pass

    def setup(self) -> None:
        super().setup()
        self.server.peers.append(self.client_address)
        self.request.settimeout(self.server.idle_s)

    def _answer(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        if status != 204:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and status != 204:
            self.wfile.write(body)
        if self.server.close_after_answer:
            self.close_connection = True

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().strip(), 16)
                if size == 0:
                    self.rfile.readline()
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_GET(self) -> None:
        if self.path.startswith("/slow"):
            time.sleep(1.0)
        if self.path.startswith("/chunked"):
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Content-Encoding", "gzip")
            self.end_headers()
            data = gzip.compress(b"x" * 200_000)
            for i in range(0, len(data), 1000):
                part = data[i:i + 1000]
                self.wfile.write(b"%x\r\n%b\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
            return
        if self.path.startswith("/empty"):
            self._answer(204, b"")
            return
        self._answer(200, json.dumps({"path": self.path, "ua": self.headers.get("User-Agent")}).encode(),
                     {"Content-Type": "application/json", "Set-Cookie": "a=1"})

    do_HEAD = do_GET

    def do_POST(self) -> None:
        body = self._body()
        self._answer(201, json.dumps({"got": len(body), "sha": hash(body),
                                      "te": self.headers.get("Transfer-Encoding")}).encode(),
                     {"Content-Type": "application/json"})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    peers: list[tuple[str, int]]
    idle_s: float = 10.0
    close_after_answer: bool = False
    closed: threading.Semaphore

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # an idle connection timing out on the server's side is what some tests want

    def shutdown_request(self, request: socket.socket) -> None:  # type: ignore[override]
        super().shutdown_request(request)
        self.closed.release()  # one connection closed by the server


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.peers = []
    srv.closed = threading.Semaphore(0)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _client(timeout: float = 10.0) -> httpx.Client:
    return httpx.Client(transport=PlainHTTPTransport(), timeout=timeout, headers={"User-Agent": "t/1"})


def _url(srv: _Server, path: str) -> str:
    return f"http://127.0.0.1:{srv.server_address[1]}{path}"


def test_requests_and_answers_round_trip_on_one_kept_alive_connection(server: _Server) -> None:
    with _client() as c:
        r = c.get(_url(server, "/a?x=1&y=%20z"))
        assert r.status_code == 200 and r.reason_phrase == "OK"
        assert r.json() == {"path": "/a?x=1&y=%20z", "ua": "t/1"}
        assert r.headers["set-cookie"] == "a=1" and r.http_version == "HTTP/1.1"
        r = c.post(_url(server, "/b"), json={"k": "v" * 1000})
        assert r.status_code == 201 and r.json()["got"] == len(json.dumps({"k": "v" * 1000}, separators=(",", ":")))
        assert c.head(_url(server, "/a")).status_code == 200
        assert c.get(_url(server, "/empty")).status_code == 204
        assert c.get(_url(server, "/a")).status_code == 200
    assert len(server.peers) == 1  # five requests, one connection


def test_a_body_of_unknown_length_goes_chunked(server: _Server) -> None:
    parts = [b"a" * 70_000, b"", b"b" * 5]

    with _client() as c:
        r = c.post(_url(server, "/up"), content=iter(parts))
    assert r.json()["got"] == 70_005 and r.json()["te"] == "chunked"
    assert r.json()["sha"] == hash(b"".join(parts))


def test_a_streamed_chunked_gzip_answer_is_decoded_and_the_connection_reused(server: _Server) -> None:
    with _client() as c:
        with c.stream("GET", _url(server, "/chunked")) as r:
            got = b"".join(r.iter_bytes())
        assert got == b"x" * 200_000
        assert c.get(_url(server, "/a")).status_code == 200
    assert len(server.peers) == 1


def test_a_connection_the_server_closed_while_idle_is_not_used_again(server: _Server) -> None:
    server.idle_s = 0.2
    with _client() as c:
        assert c.get(_url(server, "/a")).status_code == 200
        assert server.closed.acquire(timeout=60)  # the server's idle timeout closed the connection
        # a streamed body could not be sent again: the dead connection must be seen before the send
        assert c.post(_url(server, "/b"), content=iter([b"n"])).status_code == 201
    assert len(server.peers) == 2


def test_a_close_between_the_idle_check_and_the_send_is_retried_on_a_new_connection(
        server: _Server, monkeypatch: pytest.MonkeyPatch) -> None:
    server.close_after_answer = True  # closes without saying so ("Connection: close" absent)
    monkeypatch.setattr(plain_http, "_readable", lambda sock: False)  # the close lands after our check
    with _client() as c:
        assert c.get(_url(server, "/a")).status_code == 200
        assert server.closed.acquire(timeout=60)
        assert c.post(_url(server, "/b"), json={"n": 2}).json()["got"] > 0
    assert len(server.peers) == 2


def test_a_streamed_body_is_not_sent_twice_when_the_connection_died(
        server: _Server, monkeypatch: pytest.MonkeyPatch) -> None:
    server.close_after_answer = True
    monkeypatch.setattr(plain_http, "_readable", lambda sock: False)
    with _client() as c:
        assert c.get(_url(server, "/a")).status_code == 200
        assert server.closed.acquire(timeout=60)
        with pytest.raises(httpx.TransportError):
            c.post(_url(server, "/b"), content=iter([b"once"]))


def test_refused_and_slow_servers_raise_httpx_errors(server: _Server) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: refused
        with _client() as c, pytest.raises(httpx.ConnectError):
            c.get(f"http://127.0.0.1:{port}/")
    with _client(timeout=0.2) as c, pytest.raises(httpx.ReadTimeout):
        c.get(_url(server, "/slow"))


def test_https_is_not_served_here() -> None:
    with _client() as c, pytest.raises(httpx.UnsupportedProtocol):
        c.get("https://127.0.0.1:1/")
