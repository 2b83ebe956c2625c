"""A full image store (a small tmpfs under the data dir): refused up front when the size is known,
killed and cleaned up when the disk fills mid-stream. Needs root for the mount."""
from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_glance_support import V1, start_controller, stored_files, uniq, wait_status
from tests.support.controller import Controller
from tests.support.peers import need_root

pytestmark = pytest.mark.full


@pytest.fixture(scope="module")
def small_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Controller]:
    need_root()
    root = tmp_path_factory.mktemp("full")
    images = root / "data" / "images"
    images.mkdir(parents=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m,mode=0700", "tmpfs", str(images)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {r.stderr.strip()}")
    try:
        ctl = start_controller(root, {"CLOUDPODS_GLANCE_MIN_FREE_BYTES": "0"})
        yield ctl
        ctl.stop()
    finally:
        subprocess.run(["umount", str(images)], check=False)


def test_known_size_beyond_free_space_is_refused_before_reading(small_store: Controller) -> None:
    api = small_store.api
    r = api.post(f"{V1}/images", content=os.urandom(32 << 20),
                 headers={"Content-Type": "application/octet-stream", "X-Image-Meta-Name": uniq("big"),
                          "X-Image-Meta-Disk-Format": "raw"})
    assert r.status_code == 400 and r.json()["class"] == "InsufficientResourceError", r.text
    assert stored_files(small_store) == set()


def test_disk_fills_mid_stream_then_space_is_reclaimed(small_store: Controller) -> None:
    api = small_store.api
    img = api.post(f"{V1}/images", json={"image": {"name": uniq("fill"), "disk_format": "raw"}}).json()["image"]

    def body() -> Iterator[bytes]:  # chunked: the server cannot know the size in advance
        for _ in range(40):
            yield os.urandom(1 << 20)

    r = api.put(f"{V1}/images/{img['id']}", content=body(), headers={"Content-Type": "application/octet-stream"})
    assert r.status_code == 400 and "full" in r.json()["details"], r.text
    img = wait_status(api, img["id"], "killed")
    assert "full" in img["fail_reason"]
    assert stored_files(small_store) == set()
    ok = api.post(f"{V1}/images", content=os.urandom(8 << 20),
                  headers={"Content-Type": "application/octet-stream", "X-Image-Meta-Name": uniq("fits"),
                           "X-Image-Meta-Disk-Format": "raw"})
    assert ok.status_code == 201, ok.text
    assert Path(small_store.data_dir / "images" / ok.json()["image"]["id"]).stat().st_size == 8 << 20
