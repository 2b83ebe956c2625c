"""`ocadm backup` of a running controller, `ocadm restore` into a fresh one (on SQLite, PostgreSQL and
MariaDB, whatever the source's dialect): log in with the restored admin credentials, servers, images
(files too with --with-images), encrypted EC2 credentials and token keys all come back."""
from __future__ import annotations

import json
import os
import stat
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.region.defaults import DEFAULTS
from tests.e2e.region_agent import TestbedAgent
from tests.e2e.test_agent_support import upload_tiny_image
from tests.integration.test_faults import create_on, manual_host
from tests.integration.test_scale_support import B, wait_for
from tests.support.controller import DB_ENV, Controller, free_port, fresh_database
from tests.support.peers import need

ID = "/api/s/identity/v3"


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A controller with a running server, an image, a user with an EC2 credential; and its backup."""
    root = tmp_path_factory.mktemp("backup-src")
    ctl = Controller.start(root / "ctl")
    try:
        image = upload_tiny_image(ctl)
        host = manual_host(ctl.api, "h-backup")
        with TestbedAgent(ctl.env, host, host_name="h-backup", wires=({"wire": DEFAULTS.wire, "bridge": "br0"},)):
            sid = create_on(ctl.api, "h-backup", "kept")
            wait_for(lambda: ctl.api.get(f"{B}/servers/{sid}").json()["server"]["status"] == "running", 60, "running")
        cred = ctl.api.post(f"{ID}/credentials", json={"credential": {"type": "ec2"}})
        assert cred.status_code == 201, cred.text
        blob = json.loads(cred.json()["credential"]["blob"])
        out = root / "cp.tar.gz"
        r = ctl.ocadm("backup", "--data-dir", str(ctl.data_dir), "-o", str(out), "--with-images")
        assert r.returncode == 0, r.stdout + r.stderr
        assert "Backed up" in r.stdout and stat.S_IMODE(out.stat().st_mode) == 0o600
        again = ctl.ocadm("backup", "--data-dir", str(ctl.data_dir), "-o", str(out))
        assert again.returncode != 0 and "exists" in again.stderr and "Traceback" not in again.stderr
        yield {"ctl": ctl, "backup": out, "server": sid, "image": image, "secret": blob["secret"],
               "cred_id": cred.json()["credential"]["id"]}
    finally:
        ctl.stop()


def test_backup_holds_rows_keys_config_and_images(source: dict[str, Any]) -> None:
    with tarfile.open(source["backup"]) as tar:
        names = set(tar.getnames())
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    assert {"config.toml", "rc_admin", "keys/0", "keys/1", "db/servers.jsonl", "db/images.jsonl"} <= names
    assert any(n.startswith("credential-keys/") for n in names)
    assert any(n.startswith("images/") for n in names)  # --with-images
    assert manifest["tables"]["servers"] >= 1 and manifest["tables"]["ks_users"] >= 1
    assert manifest["revisions"] and manifest["format"] == "cloudpods-one-backup/1"


def _target_url(kind: str) -> str:
    if kind == "sqlite":
        return ""
    need(bool(os.environ.get(DB_ENV[kind])), f"{DB_ENV[kind]} is not set (run scripts/setup-db.sh up as root)")
    return fresh_database(kind)


@pytest.mark.parametrize("target", ["sqlite", pytest.param("pg", marks=pytest.mark.full),
                                    pytest.param("mysql", marks=pytest.mark.full)])
def test_restore_into_a_fresh_controller(source: dict[str, Any], tmp_path: Path, target: str) -> None:
    src: Controller = source["ctl"]
    url = _target_url(target)
    d = tmp_path / "data"
    port = free_port()
    args = ["restore", str(source["backup"]), "--data-dir", str(d), "--port", str(port)]
    if url:
        args += ["--db-url", url]
    r = src.ocadm(*args)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Restored" in r.stdout
    ctl = Controller(d, port, None, {**src.env}, tmp_path / "serve.log", db_url=url)
    from tests.support.controller import parse_rc

    ctl.env.update(parse_rc(d / "rc_admin"))
    assert f":{port}/" in ctl.env["OS_AUTH_URL"]
    ctl.serve()
    try:
        # the admin logs in with the restored credentials; the catalog points at the new controller
        lst = ctl.climc("server-list", "-o", "json")
        assert lst.returncode == 0, lst.stderr
        rows = json.loads(lst.stdout)["data"]
        assert [x["status"] for x in rows if x["id"] == source["server"]] == ["running"]
        eps = json.loads(ctl.climc("endpoint-list", "-o", "json").stdout)["data"]
        assert all(f":{port}/" in e["url"] for e in eps), eps
        # a token issued by the source is accepted: the token keys came along
        old_tok = src.token()
        assert httpx.get(ctl.url + f"{B}/servers", headers={"X-Auth-Token": old_tok}, timeout=30).status_code == 200
        # the EC2 secret decrypts: the credential keys came along
        cred = ctl.api.get(f"{ID}/credentials/{source['cred_id']}")
        assert cred.status_code == 200 and json.loads(cred.json()["credential"]["blob"])["secret"] == source["secret"]
        # image metadata and (with --with-images) its bytes
        img = ctl.api.get(f"/api/s/image/v1/images/{source['image']['id']}")
        assert img.status_code == 200, img.text
        body = ctl.api.get(f"/api/s/image/v2/images/{source['image']['id']}/file")
        assert body.status_code == 200 and len(body.content) == 1 << 20
        # and it keeps working: a new server gets the next address, not a reused one
        host = ctl.api.get(f"{B}/hosts/h-backup").json()["host"]["id"]
        with TestbedAgent(ctl.env, host, host_name="h-backup", wires=({"wire": DEFAULTS.wire, "bridge": "br0"},)):
            sid = create_on(ctl.api, "h-backup", "after-restore")
            s = wait_for(lambda: (x := ctl.api.get(f"{B}/servers/{sid}").json()["server"])["status"] == "running"
                         and x, 60, "new server")
        old = ctl.api.get(f"{B}/servers/{source['server']}").json()["server"]
        assert s["ips"] != old["ips"]
    finally:
        ctl.stop()


def test_restore_refuses_what_it_would_clobber(source: dict[str, Any], tmp_path: Path) -> None:
    src: Controller = source["ctl"]
    r = src.ocadm("restore", str(source["backup"]), "--data-dir", str(src.data_dir))
    assert r.returncode != 0 and "already initialised" in r.stderr and "Traceback" not in r.stderr
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not a backup")
    r = src.ocadm("restore", str(junk), "--data-dir", str(tmp_path / "d"))
    assert r.returncode != 0 and "not a readable backup" in r.stderr and "Traceback" not in r.stderr
    r = src.ocadm("restore", str(tmp_path / "missing.tar.gz"), "--data-dir", str(tmp_path / "d2"))
    assert r.returncode != 0 and "no backup" in r.stderr


def test_restore_without_images_warns_and_downloads_say_the_data_is_missing(source: dict[str, Any],
                                                                            tmp_path: Path) -> None:
    """A backup made without --with-images: restore says which images have no data, and a download
    of one is a 409 naming the cause (it was a 500: the store's file was simply not there)."""
    src: Controller = source["ctl"]
    out = tmp_path / "noimg.tar.gz"
    r = src.ocadm("backup", "--data-dir", str(src.data_dir), "-o", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    d, port = tmp_path / "data", free_port()
    r = src.ocadm("restore", str(out), "--data-dir", str(d), "--port", str(port))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Warning:" in r.stderr and "--with-images" in r.stderr and source["image"]["name"] in r.stderr, r.stderr
    ctl = Controller(d, port, None, {**src.env}, tmp_path / "serve.log")
    from tests.support.controller import parse_rc

    ctl.env.update(parse_rc(d / "rc_admin"))
    ctl.serve()
    try:
        for path in (f"/api/s/image/v2/images/{source['image']['id']}/file",
                     f"/api/s/image/v1/images/{source['image']['id']}/download"):
            got = ctl.api.get(path)
            assert got.status_code == 409, (path, got.status_code, got.text[:300])
            assert "missing" in got.json()["details"] and "upload it again" in got.json()["details"]
        assert "Traceback" not in (tmp_path / "serve.log").read_text()
    finally:
        ctl.stop()
