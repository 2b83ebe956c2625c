"""The real OpenStack client (python-openstackclient + openstacksdk + keystoneauth1) against our Glance v2:
it discovers v2 at the unversioned image root, then create --file, list, show, set, save, delete."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.test_glance_support import V2, controller_fixture, make_qcow2, qemu_img, stored_files, uniq
from tests.support.controller import Controller
from tests.support.peers import need

gctl = controller_fixture()

def _openstack() -> str:
    exe = shutil.which("openstack") or str(Path(sys.executable).parent / "openstack")
    need(Path(exe).exists(), "needs python-openstackclient (pip install python-openstackclient)")
    return exe


def osc(ctl: Controller, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in ctl.env.items() if not k.startswith("PYTHON")}
    env["OS_CLOUD"] = ""
    r = subprocess.run([_openstack(), *args], env=env, capture_output=True, text=True, timeout=120)
    if check:
        assert r.returncode == 0, f"openstack {' '.join(args)}: {r.stderr[-2000:]}"
    return r


@pytest.fixture(scope="module")
def qcow(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("osc") / "disk.qcow2"
    make_qcow2(path, "96M")
    qemu_img("resize", "-q", "-f", "qcow2", str(path), "128M")
    return path


def test_openstack_image_lifecycle(gctl: Controller, qcow: Path, tmp_path: Path) -> None:
    name = uniq("osc")
    created = json.loads(osc(gctl, "image", "create", "--file", str(qcow), "--disk-format", "qcow2",
                             "--property", "os_type=Linux", "-f", "json", name).stdout)
    assert created["status"] == "active" and created["disk_format"] == "qcow2"
    assert created["checksum"] == hashlib.md5(qcow.read_bytes()).hexdigest()
    assert created["virtual_size"] == 128 << 20
    listed = json.loads(osc(gctl, "image", "list", "-f", "json").stdout)
    assert name in [i["Name"] for i in listed]
    shown = json.loads(osc(gctl, "image", "show", "-f", "json", name).stdout)
    assert shown["id"] == created["id"] and shown["properties"]["os_type"] == "Linux"
    osc(gctl, "image", "set", "--property", "os_distribution=Debian", "--min-disk", "2", name)
    shown = json.loads(osc(gctl, "image", "show", "-f", "json", name).stdout)
    assert shown["properties"]["os_distribution"] == "Debian" and shown["min_disk"] == 2
    out = tmp_path / "saved.qcow2"
    osc(gctl, "image", "save", "--file", str(out), name)
    assert out.read_bytes() == qcow.read_bytes()
    osc(gctl, "image", "delete", name)
    assert name not in osc(gctl, "image", "list", "-f", "value", "-c", "Name").stdout.split()
    assert not [f for f in stored_files(gctl) if f.startswith(created["id"])]


def test_openstack_paging_follows_next(gctl: Controller) -> None:
    api = gctl.api
    names = [uniq("page") for _ in range(5)]
    for n in names:
        r = api.post(f"{V2}/images", json={"name": n, "disk_format": "raw", "container_format": "bare"})
        assert r.status_code == 201, r.text
    page = api.get(f"{V2}/images", params={"limit": 2}).json()
    assert len(page["images"]) == 2 and page["next"].startswith("/v2/images?") and page["first"] == "/v2/images"
    seen: list[str] = []
    url: str | None = f"{V2}/images?limit=2"
    while url:
        body = api.get(url).json()
        seen += [i["name"] for i in body["images"]]
        url = "/api/s/image" + body["next"] if body.get("next") else None
    assert set(names) <= set(seen) and len(seen) == len(set(seen))
    listed = osc(gctl, "image", "list", "-f", "value", "-c", "Name").stdout.split()
    assert set(names) <= set(listed)
    for n in names:
        osc(gctl, "image", "delete", n)


def test_openstack_refused_image_reports_why(gctl: Controller, tmp_path: Path) -> None:
    bad = tmp_path / "bad.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", "-b", "/etc/passwd", "-F", "raw", str(bad))
    before = stored_files(gctl)
    r = osc(gctl, "image", "create", "--file", str(bad), "--disk-format", "qcow2", uniq("bad"), check=False)
    assert r.returncode != 0 and "backing file" in r.stderr, r.stderr
    assert stored_files(gctl) == before


def test_v2_patch_and_protected(gctl: Controller) -> None:
    api = gctl.api
    img = api.post(f"{V2}/images", json={"name": uniq("patch"), "disk_format": "raw",
                                         "container_format": "bare", "min_disk": 1}).json()
    assert img["status"] == "queued" and img["min_disk"] == 1
    data = os.urandom(10_000)
    assert api.put(f"{V2}/images/{img['id']}/file", content=data,
                   headers={"Content-Type": "application/octet-stream"}).status_code == 204
    ct = {"Content-Type": "application/openstack-images-v2.1-json-patch"}
    r = api.patch(f"{V2}/images/{img['id']}", headers=ct, content=json.dumps([
        {"op": "add", "path": "/os_type", "value": "Windows"},
        {"op": "replace", "path": "/protected", "value": True},
        {"op": "replace", "path": "/name", "value": img["name"] + "-x"}]))
    assert r.status_code == 200, r.text
    assert r.json()["os_type"] == "Windows" and r.json()["protected"] is True
    assert api.delete(f"{V2}/images/{img['id']}").status_code == 403
    bad = api.patch(f"{V2}/images/{img['id']}", headers=ct, content=json.dumps([{"op": "replace", "path": "/size",
                                                                                   "value": 1}]))
    assert bad.status_code == 400 and bad.json()["message"]
    api.patch(f"{V2}/images/{img['id']}", headers=ct, content=json.dumps([
        {"op": "remove", "path": "/os_type"}, {"op": "replace", "path": "/protected", "value": False}]))
    assert "os_type" not in api.get(f"{V2}/images/{img['id']}").json()
    assert api.get(f"{V2}/images/{img['id']}/file").content == data
    assert api.delete(f"{V2}/images/{img['id']}").status_code == 204
