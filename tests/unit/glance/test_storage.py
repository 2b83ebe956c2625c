"""The local image store: keys, staging, atomic commit, resume, and a real full disk (tmpfs)."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from core.errors import InputParameterError
from core.glance.storage import LocalStore, StoreFullError
from tests.support.peers import need_root

KEY = "0b9c1f5e-8f0e-4a53-9a8e-6d7f0f3b2a11"


def test_keys_cannot_escape_the_store(tmp_path: Path) -> None:
    s = LocalStore(tmp_path / "images")
    for bad in ("../etc/passwd", "x", KEY + "/../../x", KEY + ".QCOW2", "/" + KEY):
        with pytest.raises(InputParameterError):
            s.path(bad)
    assert s.path(KEY + ".qcow2").parent == tmp_path / "images"


def test_staged_bytes_are_invisible_until_commit_and_resume_appends(tmp_path: Path) -> None:
    s = LocalStore(tmp_path / "images")
    w = s.writer(KEY, resume=False)
    w.write(b"a" * 1000)
    w.close()
    assert s.size(KEY) is None and s.staged_size(KEY) == 1000
    w = s.writer(KEY, resume=True)
    assert w.offset == 1000
    w.write(memoryview(b"b" * 24))
    w.flush()
    w.close()
    assert s.commit(KEY) == 1024
    assert s.staged_size(KEY) == 0
    with s.open(KEY) as f:
        assert f.read() == b"a" * 1000 + b"b" * 24
    w = s.writer(KEY, resume=False)  # a fresh upload truncates its staging object
    assert w.offset == 0
    w.close()
    s.delete(KEY)
    assert s.size(KEY) is None and not any(p.is_file() for p in (tmp_path / "images").rglob("*"))


def test_disk_full_is_a_clear_error(tmp_path: Path) -> None:
    need_root()
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        s = LocalStore(mnt)
        w = s.writer(KEY, resume=False)
        with pytest.raises(StoreFullError, match="full"):
            for _ in range(16):
                w.write(os.urandom(1 << 20))
        w.close()
        s.discard_staged(KEY)
        assert s.free_bytes() > 3 << 20  # space reclaimed
    finally:
        subprocess.run(["umount", str(mnt)], check=False)
