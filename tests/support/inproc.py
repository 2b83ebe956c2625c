"""The whole controller app in-process on a fresh SQLite database (no server, no background
services): for unit tests of what one request does (its statements, sessions, bytes)."""
from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI

from tests.support.unitdb import ADMIN_PW, migrated_db


def controller_app(tmp_path: Path) -> FastAPI:
    """A migrated, bootstrapped controller under ``tmp_path/data``, its app (``run_background=False``)."""
    from core.api.app import create_app
    from core.config import Settings
    from core.keystone.keys import KeyRepository

    s = Settings.load(tmp_path / "data", port=1)
    s.save()
    KeyRepository(s.key_dir).create()
    with migrated_db(Path(s.database_url.removeprefix("sqlite:///")), bootstrapped=True):
        pass
    return create_app(s, run_background=False)


def call(app: FastAPI, method: str, path: str, **kw: Any) -> httpx.Response:
    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            return await c.request(method, path, **kw)

    return asyncio.run(go())


def admin_token(app: FastAPI) -> str:
    """A token of the bootstrap admin, scoped to the ``system`` project."""
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "admin", "password": ADMIN_PW, "domain": {"name": "Default"}}}},
        "scope": {"project": {"name": "system", "domain": {"name": "Default"}}}}}
    r = call(app, "POST", "/api/s/identity/v3/auth/tokens", json=body)
    assert r.status_code == 201, r.text
    return r.headers["x-subject-token"]


def run_with_fresh_app(tmp_path: Path, script: str) -> None:
    """Run ``script`` in a fresh interpreter once it has built the controller app as ``app`` (keys
    under ``tmp_path/data``, no database yet, ``run_background=False``): for what building the app or
    a request imports, which this test process has long imported. Fails with the script's stderr."""
    preamble = f"""
import sys
from pathlib import Path
from core.api.app import create_app
from core.config import Settings
from core.keystone.keys import KeyRepository
s = Settings.load(Path({str(tmp_path / "data")!r}), port=1)
s.save()
KeyRepository(s.key_dir).create()
app = create_app(s, run_background=False)
"""
    repo = Path(__file__).resolve().parents[2]
    r = subprocess.run([sys.executable, "-c", preamble + textwrap.dedent(script)], capture_output=True, text=True,
                       cwd=repo, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
