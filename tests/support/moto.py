"""moto's server on loopback playing AWS (PEERS.md "AWS"), and a proxy that fails chosen calls."""
from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from tests.support.controller import free_port
from tests.support.peers import need
from tests.support.procs import stop_process


def have_moto() -> None:
    try:
        import boto3  # noqa: F401
        import moto.server  # noqa: F401
    except ImportError:
        need(False, "needs boto3 and moto[server] (scripts/setup-peers.d/cloud.sh)")


class Moto:
    def __init__(self, auth_free_calls: int | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ)
        if auth_free_calls is not None:  # then every call after the first N needs IAM keys
            env["INITIAL_NO_AUTH_ACTION_COUNT"] = str(auth_free_calls)
        self.proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(self.port)],
                                     env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        end = time.monotonic() + 120  # moto's imports (boto, its models) are slow on a loaded machine
        while time.monotonic() < end:
            try:
                if httpx.get(self.url + "/moto-api/", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("moto server did not answer in 120 s")

    def client(self, service: str = "ec2", key: str = "testing", secret: str = "testing") -> Any:
        import boto3

        return boto3.client(service, region_name="us-east-1", endpoint_url=self.url, aws_access_key_id=key,
                            aws_secret_access_key=secret)

    def client_in(self, region: str, service: str = "ec2") -> Any:
        import boto3

        return boto3.client(service, region_name=region, endpoint_url=self.url, aws_access_key_id="testing",
                            aws_secret_access_key="testing")

    def reset(self) -> None:
        httpx.post(self.url + "/moto-api/reset", timeout=30).raise_for_status()

    def stop(self) -> None:
        stop_process(self.proc, 10)


@contextmanager
def moto_server(auth_free_calls: int | None = None) -> Iterator[Moto]:
    m = Moto(auth_free_calls)
    try:
        yield m
    finally:
        m.stop()


class FailingProxy:
    """Forwards to ``upstream``; a request whose form body ``fail(body)`` picks gets an EC2 error
    (400, not retried by boto3), as a cloud API failing one page of a listing."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.fail: Callable[[str], bool] = lambda body: False
        self.failed = 0
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a: Any) -> None:
                return None

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if proxy.fail(body.decode(errors="replace")):
                    proxy.failed += 1
                    err = (b'<?xml version="1.0" encoding="UTF-8"?><Response><Errors><Error><Code>InjectedFailure'
                           b'</Code><Message>this page failed on purpose</Message></Error></Errors>'
                           b'<RequestID>x</RequestID></Response>')
                    self.send_response(400)
                    self.send_header("Content-Type", "text/xml")
                    self.send_header("Content-Length", str(len(err)))
                    self.end_headers()
                    self.wfile.write(err)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                r = httpx.request(self.command, proxy.upstream + self.path, content=body, headers=headers, timeout=60)
                self.send_response(r.status_code)
                for k, v in r.headers.items():
                    if k.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(r.content)))
                self.end_headers()
                self.wfile.write(r.content)

            do_GET = do_POST = _forward

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
