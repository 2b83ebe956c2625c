"""A fake controller for climc unit tests: an httpx.MockTransport answering Keystone's token call
with a catalog, then whatever routes the test registers.

    cloud = MockCloud()
    cloud.route("GET", "/servers/vm1", lambda req: {"server": {...}})
    r = cloud.climc("server-show", "vm1")          # click's CliRunner, exit code + output
    assert cloud.calls[-1] == ("GET", "/servers/vm1")

For behaviour a live controller is not the point of (output, option parsing, polling loops).
"""
from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import click
import httpx
from click.testing import CliRunner, Result

AUTH = "http://mock.invalid/v3"
COMPUTE = "http://mock.invalid/api/s/compute_v2"
IMAGE = "http://mock.invalid/api/s/image"

Handler = Callable[[httpx.Request], Any]


def catalog(interfaces: tuple[str, ...] = ("public", "internal", "admin")) -> list[dict[str, Any]]:
    return [{"type": t, "name": t, "endpoints": [{"interface": i, "region_id": "region0", "url": u}
                                                 for i in interfaces]}
            for t, u in (("compute_v2", COMPUTE), ("image", IMAGE), ("identity", AUTH))]


class MockCloud:
    def __init__(self) -> None:
        self.routes: list[tuple[str, re.Pattern[str], Handler]] = []
        self.calls: list[tuple[str, str]] = []
        self.catalog = catalog()

    def route(self, method: str, path: str, handler: Handler | Any) -> None:
        """``path`` under the compute endpoint (a regex, anchored); ``handler`` a callable or a JSON body."""
        fn = handler if callable(handler) else (lambda _req, body=handler: body)
        self.routes.insert(0, (method, re.compile(path + "$"), fn))

    def _handle(self, req: httpx.Request) -> httpx.Response:
        url = str(req.url.copy_with(query=None))
        if req.method == "POST" and url == AUTH + "/auth/tokens":
            body = {"token": {"expires_at": "2099-01-01T00:00:00Z", "catalog": self.catalog,
                              "user": {"id": "u", "name": "admin"}, "roles": [{"name": "admin"}]}}
            return httpx.Response(201, json=body, headers={"X-Subject-Token": "tok"})
        path = url
        for base in (COMPUTE, AUTH):  # identity routes (/endpoints, /users) share the namespace
            if url.startswith(base):
                path = url[len(base):]
                break
        self.calls.append((req.method, path))
        for method, pat, fn in self.routes:
            if method == req.method and pat.match(path):
                out = fn(req)
                if isinstance(out, httpx.Response):
                    return out
                return httpx.Response(200, json=out)
        return httpx.Response(404, json={"code": 404, "class": "ResourceNotFoundError",
                                         "details": f"no route for {req.method} {path}"})

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self._handle)

    def climc(self, *args: str, env: dict[str, str] | None = None) -> Result:
        """Run climc in-process (its real entry point: exit codes and error lines as a user sees them)."""
        from climc.main import ClimcContext

        e = {"OS_AUTH_URL": AUTH, "OS_USERNAME": "admin", "OS_PASSWORD": "pw", "OS_PROJECT_NAME": "system",
             "OS_REGION_NAME": "", "OS_ENDPOINT_TYPE": "", "OS_INTERFACE": "", "OS_AUTH_TOKEN": "",
             **(env or {})}
        old = ClimcContext.transport
        ClimcContext.transport = self.transport()
        try:
            return CliRunner().invoke(_entry, list(args), env=e, catch_exceptions=False)
        finally:
            ClimcContext.transport = old


@click.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True,
                                "help_option_names": []})
@click.pass_context
def _entry(ctx: click.Context) -> None:
    from climc.main import main

    main(list(ctx.args))


def body_of(req: httpx.Request) -> Any:
    return json.loads(req.content or b"{}")
