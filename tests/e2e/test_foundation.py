"""The foundation, end to end: ocadm init/serve/status, climc against the real controller."""
from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time
from urllib.parse import urlsplit

import httpx

from tests.support.controller import Controller, base_env, free_port


def test_endpoint_list_table_and_json(controller: Controller) -> None:
    r = controller.climc("endpoint-list")
    assert r.returncode == 0, r.stderr
    assert "/api/s/compute_v2" in r.stdout and "region2" in r.stdout
    r2 = controller.climc("endpoint-list", "-o", "json")
    data = json.loads(r2.stdout)
    assert f"***  Total: {data['total']}" in r.stdout  # other tests may add endpoints
    builtin = [e for e in data["data"] if e["service_name"] in ("keystone", "region2", "glance", "scheduler")]
    assert len(builtin) == 12  # 4 services x public/internal/admin
    assert {e["service_type"] for e in builtin} == {"identity", "compute_v2", "image", "scheduler"}
    assert all(e["region_id"] == "region0" for e in builtin)


def test_output_formats_and_columns(controller: Controller) -> None:
    r = controller.climc("service-list", "-o", "json", "-c", "name", "-c", "type")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)["data"]
    assert {tuple(sorted(x)) for x in rows} == {("name", "type")}
    assert {x["name"] for x in rows} >= {"keystone", "region2", "glance", "scheduler"}
    r = controller.climc("service-list", "-o", "yaml")
    assert r.returncode == 0 and "name: keystone" in r.stdout
    r = controller.climc("service-list", "-o", "value", "-c", "name")
    assert set(r.stdout.split()) >= {"glance", "keystone", "region2", "scheduler"}
    r = controller.climc("-o", "flatten-kv", "token-issue")
    assert r.returncode == 0 and "user: admin" in r.stdout and "project: system" in r.stdout
    r = controller.climc("token-issue", "-o", "kv")
    assert "roles" in r.stdout


def test_wrong_password_is_one_line_401(controller: Controller) -> None:
    env = dict(controller.env, OS_PASSWORD="wrong")
    env["XDG_CACHE_HOME"] = env["XDG_CACHE_HOME"] + "-wrong"
    r = controller.climc("endpoint-list", env=env)
    assert r.returncode == 1
    line = r.stderr.strip()
    assert line.startswith("Error: authentication failed (401): login of OS_USERNAME=") and "\n" not in line
    assert "check OS_PASSWORD" in line and "wrong" not in line  # names the fix, never echoes the password
    assert "Traceback" not in r.stderr


def test_unknown_command_and_flag_are_usage_errors(controller: Controller) -> None:
    r = controller.climc("no-such-command")
    assert r.returncode == 2 and "No such command" in r.stderr
    r = controller.climc("endpoint-list", "--no-such-flag")
    assert r.returncode == 2 and "No such option" in r.stderr


def test_controller_down_names_the_url(tmp_path) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    env = base_env(tmp_path)
    env.update(OS_AUTH_URL=f"http://127.0.0.1:{port}/api/s/identity/v3", OS_USERNAME="admin", OS_PASSWORD="x",
               OS_PROJECT_NAME="system")
    r = subprocess.run([sys.executable, "-m", "climc", "endpoint-list"], env=env, capture_output=True, text=True)
    assert r.returncode == 1
    assert len(r.stderr.strip().splitlines()) == 1
    assert f"127.0.0.1:{port}" in r.stderr and "Traceback" not in r.stderr


def test_debug_prints_curl_with_token_redacted(controller: Controller) -> None:
    r = controller.climc("--debug", "service-list", "-o", "json")
    assert r.returncode == 0
    assert "curl -X GET" in r.stderr and "X-Auth-Token: ***" in r.stderr
    assert controller.env["OS_PASSWORD"] not in r.stderr
    json.loads(r.stdout)  # stdout stays pure JSON


def test_api_errors_have_cloudpods_shape(controller: Controller) -> None:
    api = controller.api
    r = api.get("/api/s/compute_v2/no-such-thing")
    assert r.status_code == 404
    body = r.json()
    assert body["class"] == "ResourceNotFoundError" and body["code"] == 404 and "time" in body
    r = api.post("/api/s/identity/v3/auth/tokens", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["code"] == 400
    r = httpx.get(controller.url + "/api/s/identity/v3/auth/tokens", headers={"X-Auth-Token": "garbage"})
    assert r.status_code == 401 and r.json()["error"]["title"] == "Unauthorized"


def test_body_limit_request_id_and_empty_segments(controller: Controller) -> None:
    api = controller.api
    big = b"x" * (9 * 1024 * 1024)
    r = api.post("/api/s/identity/v3/auth/tokens", content=big)
    assert r.status_code == 413
    r = api.get("/api/s/identity/v3//services", headers={"X-Request-Id": "abc-123"})
    assert r.status_code == 200 and r.headers["x-request-id"] == "abc-123"
    assert r.json()["services"]
    assert api.get("/ping").status_code == 204
    assert api.get("/version").text.strip()
    assert api.get("/healthz").json()["database"] is True
    for prefix in ("/api/s/identity/v3", "/api/s/compute_v2", "/api/s/image", "/api/s/scheduler"):
        assert api.get(prefix + "/ping").status_code == 204
    spec = api.get("/openapi.json").json()
    assert "/api/s/identity/v3/auth/tokens" in spec["paths"]


def test_token_login_shapes(controller: Controller) -> None:
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "admin", "password": controller.env["OS_PASSWORD"], "domain": {"name": "Default"}}}},
        "scope": {"project": {"name": "system", "domain": {"name": "Default"}}}}}
    r = httpx.post(controller.url + "/api/s/identity/v3/auth/tokens", json=body)
    assert r.status_code == 201 and r.headers["x-subject-token"]
    tok = r.json()["token"]
    assert tok["project"]["name"] == "system" and {x["name"] for x in tok["roles"]} >= {"admin", "member", "reader"}
    assert tok["expires_at"].endswith("Z") and len(tok["audit_ids"]) == 1
    assert {c["type"] for c in tok["catalog"]} >= {"identity", "compute_v2", "image", "scheduler"}
    r = httpx.post(controller.url + "/api/s/identity/v3/auth/tokens", json=body,
                   headers={"User-Agent": "yunioncloud-go/201708"})
    assert r.status_code == 200  # Cloudpods' SDK insists on 200


def test_ocadm_status_and_config(controller: Controller) -> None:
    r = controller.ocadm("status", "--data-dir", str(controller.data_dir))
    assert r.returncode == 0, r.stdout + r.stderr
    for name in ("database", "identity", "compute_v2", "image", "scheduler"):
        assert name in r.stdout
    assert "healthy" in r.stderr
    r = controller.ocadm("config", "show", "--data-dir", str(controller.data_dir), "-o", "json")
    cfg = json.loads(r.stdout)
    assert cfg["port"] == controller.port


def test_init_is_idempotent_and_private(controller: Controller) -> None:
    r = controller.ocadm("init", "--data-dir", str(controller.data_dir))
    assert r.returncode == 0 and "already initialised" in r.stderr
    private = ["config.toml", "rc_admin", "keys/0", "keys/1"]
    if controller.dialect == "sqlite":
        private.append("cloudpods.db")
    for name in private:
        mode = stat.S_IMODE(os.stat(controller.data_dir / name).st_mode)
        assert mode & 0o077 == 0, f"{name} is {oct(mode)}"
    # no plaintext admin password anywhere in the database
    from sqlalchemy import MetaData, select

    from core.db.engine import Database

    db = Database(controller.db_url)
    try:
        meta = MetaData()
        meta.reflect(db.engine)
        with db.engine.connect() as c:
            dump = "\n".join(repr(row) for t in meta.sorted_tables for row in c.execute(select(t)))
    finally:
        db.dispose()
    assert "admin" in dump and controller.env["OS_PASSWORD"] not in dump


def test_serve_refuses_newer_or_corrupt_database(tmp_path) -> None:  # type: ignore[no-untyped-def]
    ctl = Controller.init(tmp_path / "a")
    from sqlalchemy import text

    from core.db.engine import Database

    db = Database(ctl.db_url)
    with db.engine.begin() as c:
        c.execute(text("INSERT INTO alembic_version VALUES ('zz_9999_from_the_future')"))
    db.dispose()
    r = ctl.ocadm("serve", "--data-dir", str(ctl.data_dir), timeout=30)
    assert r.returncode == 1 and "newer than this code" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    ctl2 = Controller.init(tmp_path / "b", db="sqlite")  # a corrupt database *file*
    (ctl2.data_dir / "cloudpods.db").write_bytes(b"this is not a database" * 100)
    for s in ("-wal", "-shm"):
        (ctl2.data_dir / f"cloudpods.db{s}").unlink(missing_ok=True)
    r = ctl2.ocadm("serve", "--data-dir", str(ctl2.data_dir), timeout=30)
    assert r.returncode == 1 and "cannot read the database" in r.stderr and "Traceback" not in r.stderr
    ctl3 = Controller.init(tmp_path / "c")
    for k in (ctl3.data_dir / "keys").iterdir():
        k.unlink()
    r = ctl3.ocadm("serve", "--data-dir", str(ctl3.data_dir), timeout=30)
    assert r.returncode == 1 and "ocadm init" in r.stderr


def test_ocadm_upgrade_on_current_db(controller: Controller) -> None:
    r = controller.ocadm("upgrade", "--data-dir", str(controller.data_dir))
    assert r.returncode == 0 and "already at head" in r.stdout


def test_an_idle_keep_alive_connection_outlives_the_clients_expiry(controller: Controller) -> None:
    # httpx keeps an idle connection 5 s; a server that closes it at the same moment makes the
    # client's next request on it fail with "connection reset by peer" (a CI flake until the
    # server's keep-alive was made longer). One socket, two requests 6 s apart.
    u = urlsplit(controller.url)
    req = f"GET /ping HTTP/1.1\r\nHost: {u.hostname}\r\n\r\n".encode()
    with socket.create_connection((u.hostname, u.port), timeout=10) as s:
        s.sendall(req)
        assert s.recv(4096).startswith(b"HTTP/1.1 204")
        time.sleep(6)
        s.sendall(req)
        assert s.recv(4096).startswith(b"HTTP/1.1 204"), "the server closed an idle connection within 6 s"
