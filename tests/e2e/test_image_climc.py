"""climc image-* commands against a real controller (Cloudpods v1 API through the catalog)."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from tests.e2e.test_glance_support import controller_fixture, make_qcow2, stored_files, uniq
from tests.support.controller import Controller
from tests.support.waiting import wait_for

gctl = controller_fixture()

def climc_json(ctl: Controller, *args: str) -> dict:  # type: ignore[type-arg]
    r = ctl.climc(*args, "-o", "json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_upload_show_list_download_update_delete(gctl: Controller, tmp_path: Path) -> None:
    data = os.urandom(9 * 1024 * 1024 + 7)
    src = tmp_path / "disk.raw"
    src.write_bytes(data)
    name = uniq("cli")
    img = climc_json(gctl, "image-upload", name, str(src), "--format", "raw", "--os-type", "Linux",
                     "--os-arch", "x86_64", "--property", "owner_note=test")
    assert img["status"] == "active" and img["size"] == len(data)
    assert img["checksum"] == hashlib.md5(data).hexdigest()
    assert img["properties"] == {"os_type": "Linux", "os_arch": "x86_64", "owner_note": "test"}
    shown = climc_json(gctl, "image-show", name)
    assert shown["id"] == img["id"]
    listed = climc_json(gctl, "image-list", "--search", name)
    assert [i["name"] for i in listed["data"]] == [name] and listed["total"] == 1
    table = gctl.climc("image-list", "--search", name)
    assert table.returncode == 0 and name in table.stdout and "Total: 1" in table.stdout
    # Cloudpods' image-list --tags/--no-tags (an image's tags are its properties) and --field
    tagged = climc_json(gctl, "image-list", "--search", name, "--tags", "owner_note=test;os_type", "--field", "id",
                        "--field", "name")
    assert tagged["data"] == [{"id": img["id"], "name": name}], tagged
    assert climc_json(gctl, "image-list", "--search", name, "--tags", "owner_note=other")["total"] == 0
    assert climc_json(gctl, "image-list", "--search", name, "--no-tags", "owner_note", "--system")["total"] == 0
    out = tmp_path / "back.raw"
    r = gctl.climc("image-download", name, "--output", str(out))
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == data and hashlib.md5(data).hexdigest() in r.stderr
    # a partial download resumes with Range and still verifies the md5
    out.write_bytes(data[:1_000_000])
    r = gctl.climc("image-download", name, "--output", str(out), "--resume")
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == data
    upd = climc_json(gctl, "image-update", name, "--os-distribution", "Debian", "--min-disk", "20480", "--protected")
    assert upd["properties"]["os_distribution"] == "Debian" and upd["min_disk"] == 20480 and upd["protected"]
    r = gctl.climc("image-delete", name)
    assert r.returncode == 1 and "protected" in r.stderr
    assert climc_json(gctl, "image-public", name)["is_public"] is True
    assert climc_json(gctl, "image-private", name)["is_public"] is False
    gctl.climc("image-update", name, "--unprotected")
    r = gctl.climc("image-delete", name, "no-such-image")
    # the one failure was "not found": exit 3, as for a single missing id
    assert r.returncode == 3 and "1 of 2" in r.stderr and "no-such-image" in r.stderr
    assert gctl.climc("image-show", name).returncode == 3  # not found
    assert not [f for f in stored_files(gctl) if f.startswith(img["id"])]


def test_upload_detects_format_and_download_converts(gctl: Controller, tmp_path: Path) -> None:
    qcow = make_qcow2(tmp_path / "d.qcow2", "16M")
    name = uniq("fmt")
    img = climc_json(gctl, "image-upload", name, str(qcow))  # no --format: detected from the bytes
    assert img["disk_format"] == "qcow2" and img["virtual_size"] == 16 << 20
    out = tmp_path / "d.raw"
    r = gctl.climc("image-download", name, "--format", "raw", "--output", str(out))
    assert r.returncode == 0, r.stderr
    assert out.stat().st_size == 16 << 20
    gctl.climc("image-delete", name)


def test_refused_upload_is_one_line_error(gctl: Controller, tmp_path: Path) -> None:
    qcow = make_qcow2(tmp_path / "e.qcow2", "16M")
    r = gctl.climc("image-upload", uniq("lie"), str(qcow), "--format", "raw")
    assert r.returncode == 1
    assert r.stderr.startswith("Error: declared disk_format raw but the data is qcow2"), r.stderr
    assert "Traceback" not in r.stderr
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    r = gctl.climc("image-upload", uniq("empty"), str(empty))
    assert r.returncode == 1 and "empty" in r.stderr


def test_upload_resume_continues_where_the_server_stopped(gctl: Controller, tmp_path: Path) -> None:
    from tests.e2e.test_glance_support import V1, put_head, raw_request

    data = os.urandom(5_000_000)
    src = tmp_path / "r.raw"
    src.write_bytes(data)
    api = gctl.api
    img = api.post(f"{V1}/images", json={"image": {"name": uniq("res"), "disk_format": "raw"}}).json()["image"]
    head = put_head(f"{V1}/images/{img['id']}", api.headers["x-auth-token"], len(data),
                    f"Content-Range: bytes 0-{len(data) - 1}/{len(data)}\r\n")
    raw_request(gctl, head, data[:3_000_000], close_write=True, wait_reply=3)  # connection dropped
    # the server records what it got once it notices the dropped connection (it had 5 s: a loaded box)
    wait_for(lambda: api.get(f"{V1}/images/{img['id']}").json()["image"].get("upload_offset") == 3_000_000, 60,
             "the dropped upload's offset")
    done = climc_json(gctl, "image-upload", img["name"], str(src), "--resume", img["id"])
    assert done["status"] == "active" and done["checksum"] == hashlib.md5(data).hexdigest()
