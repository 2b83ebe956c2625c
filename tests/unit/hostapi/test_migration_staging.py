"""Staged disks of a cold migration on the controller: streamed to a private file, published only
whole and with the sha256 the sender claimed; the body cap exempts the upload route only."""
from __future__ import annotations

import asyncio
import hashlib
import os
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from core.errors import InputParameterError, ResourceNotFoundError
from core.hostapi import migrations
from core.region import migration_staging

SID = "0b7c8a52-3a4f-4a6e-9b0e-3f1f6c1d2e11"


async def _chunks(data: bytes, size: int = 65536) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i:i + size]


def test_an_upload_lands_whole_private_and_hashed(tmp_path: Path) -> None:
    data = os.urandom((9 << 20) + 123)  # over two write blocks and a tail
    out = asyncio.run(migrations.receive(tmp_path, SID, "disk-1", _chunks(data)))
    assert out == {"id": "disk-1", "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
    path, sha = migration_staging.staged(tmp_path, SID, "disk-1")
    assert path.read_bytes() == data and sha == out["sha256"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert b"".join(migrations.chunks_of(path)) == data
    migration_staging.discard(SID, tmp_path)
    assert not path.parent.exists()
    with pytest.raises(ResourceNotFoundError):
        migration_staging.staged(tmp_path, SID, "disk-1")


def test_a_wrong_sha256_publishes_nothing(tmp_path: Path) -> None:
    with pytest.raises(InputParameterError, match="sha256"):
        asyncio.run(migrations.receive(tmp_path, SID, "d0", _chunks(b"abc"), "0" * 64))
    assert os.listdir(tmp_path / "migrations" / SID) == []  # no file, no part left behind


def test_names_cannot_leave_the_staging_dir(tmp_path: Path) -> None:
    for sid, disk in (("../etc", "d0"), (SID, "../../x"), (SID, "a/b"), (SID, "d0.sha256")):
        with pytest.raises(InputParameterError):
            asyncio.run(migrations.receive(tmp_path, sid, disk, _chunks(b"x")))


def test_only_the_upload_route_escapes_the_body_cap() -> None:
    assert migrations.UPLOAD_PATH.match(f"/api/s/compute_v2/agent/hosts/h1/migrations/{SID}/disks/d0")
    for other in ("/api/s/compute_v2/agent/hosts/h1/register", "/api/s/compute_v2/agent/hosts/h1/guests",
                  f"/api/s/compute_v2/agent/hosts/h1/migrations/{SID}/disks/d0/x",
                  "/api/s/compute_v2/servers"):
        assert not migrations.UPLOAD_PATH.match(other), other
