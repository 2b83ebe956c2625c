"""Token validation and login cost.

    .venv/bin/python bench/tokens.py [--seconds 3] [--http-threads 4]

Prints, on a scratch SQLite controller (one process, one worker):
  1. Authenticator.validate, cache hit (what every authenticated request pays);
  2. Authenticator.validate, cache miss (decrypt + revocation check + roles from the DB);
  3. a whole authenticated request through the ASGI app in-process (routing, dependencies,
     session, validation, JSON): ``GET /v3/auth/tokens`` — the server's own per-request cost;
  4. the same over real HTTP against ``ocadm serve`` (uvicorn, one worker), load from another
     process — includes the client's cost on the same 2 cores, so it is a floor, not a ceiling;
     with the server process's CPU per request (utime+stime over the run ÷ requests): the figure
     to compare on a loaded machine, and 1000 ÷ it is the rate one free core would carry;
  5. password login: the share of its time spent in the password hash.
Machine noise: the box is shared with other builds; figures move ±30 % between runs.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.procs import cpu_seconds  # noqa: E402


def setup(data_dir: Path) -> tuple[Any, str, str]:
    """ocadm init's steps, in-process: settings, keys, schema, bootstrap. Returns (settings, user, pw)."""
    from core.config import Settings
    from core.db.engine import Database
    from core.db.migrate import upgrade
    from core.keystone.bootstrap import bootstrap
    from core.keystone.keys import KeyRepository

    s = Settings.load(data_dir, port=_free_port())
    s.save()
    KeyRepository(s.key_dir).create()
    db = Database(s.database_url)
    upgrade(db.engine)
    with db.session() as session:
        bootstrap(session, admin_password="bench-pw-1", public_url=s.public_url, region_id=s.region_id)
    db.dispose()
    return s, "admin", "bench-pw-1"


def _free_port() -> int:
    import socket

    with socket.socket() as sk:
        sk.bind(("127.0.0.1", 0))
        return int(sk.getsockname()[1])


def rate(fn: Any, seconds: float) -> float:
    n, t0 = 0, time.perf_counter()
    while True:
        for _ in range(200):
            fn()
        n += 200
        dt = time.perf_counter() - t0
        if dt >= seconds:
            return n / dt


def login_body(user: str, pw: str) -> dict[str, Any]:
    return {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": user, "password": pw, "domain": {"name": "Default"}}}},
        "scope": {"project": {"name": "system", "domain": {"name": "Default"}}}}}


def bench_validate(settings: Any, user: str, pw: str, seconds: float) -> tuple[float, float, str]:
    from core.db.engine import Database
    from core.keystone.auth import Authenticator
    from core.keystone.keys import KeyRepository
    from core.keystone.tokens import TokenCodec

    db = Database(settings.database_url)
    auth = Authenticator(TokenCodec(KeyRepository(settings.key_dir)))
    with db.session() as s:
        token, _cred = auth.login(s, login_body(user, pw))
    with db.session() as s:
        hot = rate(lambda: auth.validate(s, token), seconds)

        def cold() -> None:
            auth.forget()
            auth.validate(s, token)

        miss = rate(cold, seconds)
    db.dispose()
    return hot, miss, token


def bench_asgi(settings: Any, token: str, seconds: float, path: str = "/api/s/identity/v3/auth/tokens",
               auth: bool = True) -> float:
    """Whole requests through the app called as ASGI (no sockets, no HTTP client): the server's own
    cost per request, 8 concurrent callers on one event loop (one worker)."""
    from core.api.app import create_app

    app = create_app(settings, run_background=False)
    headers = [(b"host", b"bench")]
    if auth:
        headers += [(b"x-auth-token", token.encode()), (b"x-subject-token", token.encode())]
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": path, "raw_path": path.encode(), "query_string": b"nocatalog", "root_path": "",
             "headers": headers, "client": ("127.0.0.1", 1), "server": ("bench", 80)}

    async def one() -> int:
        status = 0

        async def receive() -> MutableMapping[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        await app(dict(scope, state={}), receive, send)
        return status

    async def run() -> float:
        assert await one() == 200
        n = 0
        t0 = time.perf_counter()
        stop = t0 + seconds

        async def worker() -> None:
            nonlocal n
            while time.perf_counter() < stop:
                if await one() != 200:
                    raise RuntimeError("request failed")
                n += 1

        await asyncio.gather(*(worker() for _ in range(8)))
        return n / (time.perf_counter() - t0)

    return asyncio.run(run())


LOADGEN = r"""
import sys, threading, time, httpx
url, token, seconds, threads = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
h = {"X-Auth-Token": token, "X-Subject-Token": token}
count = [0] * threads
def w(i):
    with httpx.Client(headers=h, timeout=30) as c:
        stop = time.perf_counter() + seconds
        while time.perf_counter() < stop:
            r = c.get(url)
            assert r.status_code == 200, r.text
            count[i] += 1
t0 = time.perf_counter()
ts = [threading.Thread(target=w, args=(i,)) for i in range(threads)]
[t.start() for t in ts]; [t.join() for t in ts]
print(sum(count) / (time.perf_counter() - t0), sum(count))
"""


USERGEN = r"""
import sys, threading, time, uuid, httpx
url, token, n, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
lat = []
def w(i):
    with httpx.Client(headers={"X-Auth-Token": token}, timeout=60) as c:
        for _ in range(n // threads):
            t = time.perf_counter()
            r = c.post(url, json={"user": {"name": "u" + uuid.uuid4().hex[:12], "password": "bench-pw-" + str(i)}})
            assert r.status_code == 201, r.text
            lat.append(time.perf_counter() - t)
t0 = time.perf_counter()
ts = [threading.Thread(target=w, args=(i,)) for i in range(threads)]
[t.start() for t in ts]; [t.join() for t in ts]
lat.sort()
print(len(lat) / (time.perf_counter() - t0), lat[int(len(lat) * 0.9)] * 1000)
"""


@contextmanager
def serving(settings: Any) -> Iterator[tuple[str, int]]:
    """``ocadm serve`` (uvicorn, one worker) on the scratch data dir; yields its base URL and pid."""
    import httpx

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "ocadm", "serve", "--data-dir", str(settings.data_dir),
                             "--log-level", "warning"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        base = f"http://127.0.0.1:{settings.port}"
        for _ in range(200):
            try:
                if httpx.get(base + "/ping", timeout=1).status_code == 204:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        yield base, proc.pid
    finally:
        proc.terminate()
        proc.wait(10)


def _load(script: str, *args: Any, timeout: float) -> list[float]:
    out = subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-1000:])
    return [float(x) for x in out.stdout.split()]




def bench_http(base: str, pid: int, token: str, seconds: float, threads: int) -> tuple[float, float]:
    """(requests /s, server CPU ms per request) of token validation over HTTP."""
    url = base + "/api/s/identity/v3/auth/tokens?nocatalog"
    _load(LOADGEN, url, token, 0.5, 1, timeout=60)  # warm: first-request work, the token cache
    before = cpu_seconds(pid)
    rate_, n = _load(LOADGEN, url, token, seconds, threads, timeout=seconds + 60)
    return rate_, (cpu_seconds(pid) - before) * 1000 / n


def bench_user_create(base: str, token: str, threads: int, n: int = 40) -> tuple[float, float]:
    """(users created /s, p90 ms) with ``threads`` concurrent clients: the password KDF must not run
    under the database's write lock, or more threads add nothing on SQLite."""
    rate_, p90 = _load(USERGEN, base + "/api/s/identity/v3/users", token, n, threads, timeout=600)
    return rate_, p90


def bench_login(settings: Any, user: str, pw: str, n: int = 15) -> tuple[float, float]:
    """(median login ms, median hash-only ms) through Authenticator.login on the real database."""
    from core.db.engine import Database
    from core.keystone.api import token_body
    from core.keystone.auth import Authenticator
    from core.keystone.catalog import build_catalog
    from core.keystone.keys import KeyRepository
    from core.keystone.models import User
    from core.keystone.passwords import verify_password
    from core.keystone.tokens import TokenCodec

    db = Database(settings.database_url)
    auth = Authenticator(TokenCodec(KeyRepository(settings.key_dir)))
    logins, hashes = [], []
    with db.session() as s:
        stored = s.query(User).filter(User.name == user).one().password_hash
        for _ in range(n):
            t0 = time.perf_counter()
            _t, cred = auth.login(s, login_body(user, pw))
            token_body(cred, build_catalog(s))
            logins.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            verify_password(pw, stored)
            hashes.append(time.perf_counter() - t0)
    db.dispose()
    return statistics.median(logins) * 1000, statistics.median(hashes) * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--http-threads", type=int, default=4)
    ap.add_argument("--no-http", action="store_true", help="skip the uvicorn run")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        settings, user, pw = setup(Path(d) / "data")
        hot, miss, token = bench_validate(settings, user, pw, a.seconds)
        print(f"validate, cache hit:             {hot:>10,.0f} /s")
        print(f"validate, cache miss (DB):       {miss:>10,.0f} /s")
        asgi = bench_asgi(settings, token, a.seconds)
        print(f"GET /v3/auth/tokens, ASGI:       {asgi:>10,.0f} req/s  (one worker, in-process, no sockets)")
        bare = bench_asgi(settings, token, a.seconds, "/api/s/identity/v3", auth=False)
        print(f"GET /v3 (no auth, no DB), ASGI:  {bare:>10,.0f} req/s  (the framework's own ceiling)")
        if not a.no_http:
            with serving(settings) as (base, pid):
                http, cpu_ms = bench_http(base, pid, token, a.seconds, a.http_threads)
                print(f"GET /v3/auth/tokens, HTTP:       {http:>10,.0f} req/s  (uvicorn 1 worker; client on the "
                      f"same cores, {a.http_threads} threads)")
                print(f"  server CPU per request:        {cpu_ms:>10.2f} ms  (≈{1000 / cpu_ms:,.0f} req/s on one "
                      f"free core; load {os.getloadavg()[0]:.1f})")
                for threads in (1, 4):
                    r, p90 = bench_user_create(base, token, threads)
                    print(f"POST /v3/users, {threads} thread(s):     {r:>10,.1f} /s  p90 {p90:.0f} ms")
        login_ms, hash_ms = bench_login(settings, user, pw)
        print(f"password login:                  {login_ms:>10.1f} ms median; hash {hash_ms:.1f} ms "
              f"= {100 * hash_ms / login_ms:.0f} % of it")


if __name__ == "__main__":
    main()
