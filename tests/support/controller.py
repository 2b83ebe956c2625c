"""A real controller for tests: `ocadm init` in a temp dir, `ocadm serve` on a free port.

    ctl = Controller.start(tmp_path)          # or use the `controller` fixture (one per session)
    r = ctl.climc("server-list", "-o", "json")
    assert r.returncode == 0, r.stderr
    ctl.api.get("/api/s/compute_v2/servers")  # httpx.Client with the admin token

Commands run as ``python -m climc`` / ``python -m ocadm`` from this checkout, so they work from any
worktree without reinstalling.

Databases: ``CLOUDPODS_TEST_DB=pg|mysql`` gives every controller made here (without its own
``--db-url``) a fresh database ``cpone_t_<random>`` on the server named by ``CLOUDPODS_TEST_PG_URL`` /
``CLOUDPODS_TEST_MYSQL_URL`` (scripts/setup-db.sh lets the test user create them); ``Controller.init(...,
db="pg")`` asks for one explicitly. They are dropped at the end of the session (tests/conftest.py) and
by the next ``setup-db.sh up``. ``ctl.db_url`` is the controller's database either way.

Replicas: ``ctl.replica()`` is another ``ocadm serve`` on the same data dir (so the same database,
token keys, credential keys and image store) on its own port — see tests/support/balancer.py for the
load balancer in front of them.
"""
from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support import ports
from tests.support.procs import stop_process

REPO = Path(__file__).resolve().parents[2]
DB_ENV = {"pg": "CLOUDPODS_TEST_PG_URL", "mysql": "CLOUDPODS_TEST_MYSQL_URL"}
_CREATED_DBS: list[str] = []  # URLs of the databases made here, dropped by drop_test_databases()


def test_db_kind() -> str:
    """The database server the suite runs on: sqlite (default), pg or mysql (CLOUDPODS_TEST_DB)."""
    kind = os.environ.get("CLOUDPODS_TEST_DB", "sqlite").strip().lower() or "sqlite"
    kind = {"postgresql": "pg", "postgres": "pg", "mariadb": "mysql"}.get(kind, kind)
    if kind not in ("sqlite", "pg", "mysql"):
        raise RuntimeError(f"CLOUDPODS_TEST_DB={kind!r}: use sqlite, pg or mysql")
    return kind


def fresh_database(kind: str) -> str:
    """Create an empty database on the ``kind`` server (pg|mysql); its SQLAlchemy URL."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    base = os.environ.get(DB_ENV[kind], "")
    if not base:
        raise RuntimeError(f"CLOUDPODS_TEST_DB={kind} needs {DB_ENV[kind]} (run scripts/setup-db.sh up as root)")
    name = f"cpone_t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(make_url(base), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            if kind == "pg":
                c.execute(text(f'CREATE DATABASE "{name}"'))
            else:
                c.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    finally:
        admin.dispose()
    url = make_url(base).set(database=name).render_as_string(hide_password=False)
    _CREATED_DBS.append(url)
    return url


def drop_test_databases() -> None:
    """Drop every database fresh_database made in this process (best effort)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    while _CREATED_DBS:
        u = make_url(_CREATED_DBS.pop())
        kind = "pg" if u.get_backend_name() == "postgresql" else "mysql"
        admin = create_engine(make_url(os.environ[DB_ENV[kind]]), isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as c:
                c.execute(text(f'DROP DATABASE IF EXISTS "{u.database}" WITH (FORCE)' if kind == "pg"
                               else f"DROP DATABASE IF EXISTS `{u.database}`"))
        except Exception as e:  # a controller still holding it: setup-db.sh up drops it later
            print(f"could not drop test database {u.database}: {e}", file=sys.stderr)
        finally:
            admin.dispose()


def free_port() -> int:
    return ports.free_port()


def parse_rc(path: Path) -> dict[str, str]:
    env: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if line.startswith("export "):
            k, _, v = line[7:].partition("=")
            env[k] = shlex.split(v)[0] if v else ""
    return env


def base_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "CLOUDPODS_", "CLIMC_"))}
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["XDG_CACHE_HOME"] = str(home / "cache")  # token cache per test controller
    return env


@dataclass
class Controller:
    data_dir: Path
    port: int
    proc: subprocess.Popen[bytes] | None
    env: dict[str, str]
    log_path: Path
    _api: httpx.Client | None = field(default=None, repr=False)
    db_url: str = ""
    _serve_port: int = field(default=0, repr=False)  # replicas: `ocadm serve --port` (config has the first's)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def dialect(self) -> str:
        """sqlite | postgresql | mysql (MariaDB)."""
        return self.db_url.split(":", 1)[0].split("+", 1)[0] if self.db_url else "sqlite"

    @classmethod
    def init(cls, root: Path, *extra: str, port: int | None = None, db: str | None = None) -> Controller:
        """``ocadm init`` in ``root/data``; ``db`` = sqlite | pg | mysql (default: CLOUDPODS_TEST_DB)."""
        root.mkdir(parents=True, exist_ok=True)
        port = port or free_port()
        data = root / "data"
        env = base_env(root)
        extra_args = list(extra)
        if "--db-url" in extra_args:
            db_url = extra_args[extra_args.index("--db-url") + 1]
        else:
            kind = test_db_kind() if db is None else db
            db_url = fresh_database(kind) if kind != "sqlite" else ""
            if db_url:
                extra_args += ["--db-url", db_url]
        r = subprocess.run([sys.executable, "-m", "ocadm", "init", "--data-dir", str(data), "--port", str(port),
                            *extra_args], env=env, capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise RuntimeError(f"ocadm init failed: {r.stderr}")
        env.update(parse_rc(data / "rc_admin"))
        return cls(data, port, None, env, root / "serve.log",
                   db_url=db_url or f"sqlite:///{data / 'cloudpods.db'}")

    def replica(self, port: int | None = None, name: str | None = None) -> Controller:
        """Another controller process on this one's data dir (same DB and keys), on its own port.

        Call ``.serve()`` on it; it passes ``--port`` itself. Only for PostgreSQL/MariaDB."""
        port = port or free_port()
        r = Controller(self.data_dir, port, None, dict(self.env),
                       self.log_path.with_name(f"{name or f'replica-{port}'}.log"), db_url=self.db_url)
        r._serve_port = port
        return r

    @classmethod
    def start(cls, root: Path, *init_args: str, serve_args: tuple[str, ...] = (), db: str | None = None) -> Controller:
        ctl = cls.init(root, *init_args, db=db)
        ctl.serve(*serve_args)
        return ctl

    @classmethod
    @contextmanager
    def serving(cls, root: Path, env: dict[str, str] | None = None) -> Iterator[Controller]:
        """``init`` in ``root`` with these settings (environment) added, then ``serve``; stopped on exit
        (a module fixture's body: ``with Controller.serving(...) as c: yield c``)."""
        ctl = cls.init(root)
        ctl.env.update(env or {})
        ctl.serve()
        try:
            yield ctl
        finally:
            ctl.stop()

    def serve(self, *args: str, timeout: float = 90.0) -> None:
        # generous: it returns as soon as /ping answers, and a loaded CI machine took 23–47 s to start
        port_args = ["--port", str(self._serve_port)] if self._serve_port and "--port" not in args else []
        with open(self.log_path, "ab") as log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen([sys.executable, "-m", "ocadm", "serve", "--data-dir", str(self.data_dir),
                                          *port_args, *args], env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ocadm serve exited {self.proc.returncode}: {self.log_path.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + "/ping", timeout=1).status_code == 204:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"controller not ready after {timeout}s: {self.log_path.read_text()[-2000:]}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self._api is not None:
            self._api.close()
            self._api = None
        stop_process(self.proc, 10, group=True, sig=sig)
        self.proc = None

    def run(self, prog: str, *args: str, env: dict[str, str] | None = None, input: str | None = None,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
        # above any `--wait --timeout` a test passes (120 s) plus the command's own start on a loaded box:
        # at 120 s the kill came with climc's own deadline, before its clear message
        e = dict(self.env if env is None else env)
        return subprocess.run([sys.executable, "-m", prog, *args], env=e, capture_output=True, text=True,
                              input=input, timeout=timeout)

    def climc(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.run("climc", *args, **kw)

    def ocadm(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        return self.run("ocadm", *args, **kw)

    def token(self, username: str | None = None, password: str | None = None, project: str | None = "system",
              domain: str = "Default", scope: dict[str, Any] | None = None) -> str:
        body: dict[str, Any] = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
            "name": username or self.env["OS_USERNAME"], "password": password or self.env["OS_PASSWORD"],
            "domain": {"name": domain}}}}}}
        if scope is not None:
            body["auth"]["scope"] = scope
        elif project:
            body["auth"]["scope"] = {"project": {"name": project, "domain": {"name": domain}}}
        r = httpx.post(self.url + "/api/s/identity/v3/auth/tokens", json=body, timeout=30)
        r.raise_for_status()
        return r.headers["x-subject-token"]

    @property
    def api(self) -> httpx.Client:
        """An httpx client against the controller root, carrying an admin (system project) token."""
        if self._api is None:
            self._api = httpx.Client(base_url=self.url, headers={"X-Auth-Token": self.token()}, timeout=60)
        return self._api
