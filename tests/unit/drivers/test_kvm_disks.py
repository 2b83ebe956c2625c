from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from drivers.base import InvalidSpec
from drivers.kvm.disks import create_data_disk, create_overlay, delete_disk, disk_info, resize_disk

pytestmark = pytest.mark.skipif(
    shutil.which("qemu-img") is None, reason="qemu-img missing (apt install qemu-utils)"
)


@pytest.fixture
def base(tmp_path: Path) -> str:
    return create_data_disk(str(tmp_path / "cache" / "base.qcow2"), 1024).path


def test_overlay_on_a_base(base: str, tmp_path: Path) -> None:
    path = str(tmp_path / "inst" / "root.qcow2")
    info = create_overlay(base, path)
    assert (info.format, info.virtual_size_mb, info.backing_file) == ("qcow2", 1024, base)
    assert Path(path).stat().st_size < 1024 * 1024  # O(1): metadata only


def test_overlay_can_be_bigger_and_resized(base: str, tmp_path: Path) -> None:
    info = create_overlay(base, str(tmp_path / "r.qcow2"), size_mb=4096)
    assert info.virtual_size_mb == 4096
    assert resize_disk(info.path, 8192).virtual_size_mb == 8192
    assert resize_disk(info.path, 8192).virtual_size_mb == 8192  # same size: no-op
    with pytest.raises(InvalidSpec, match="cannot shrink"):
        resize_disk(info.path, 100)


def test_raw_base(tmp_path: Path) -> None:
    raw = create_data_disk(str(tmp_path / "base.raw"), 64, fmt="raw")
    assert raw.format == "raw"
    assert create_overlay(raw.path, str(tmp_path / "o.qcow2"), backing_format="raw").backing_file == raw.path


def test_data_disk_and_delete(tmp_path: Path) -> None:
    d = create_data_disk(str(tmp_path / "data.qcow2"), 2048)
    assert (d.format, d.virtual_size_mb, d.backing_file) == ("qcow2", 2048, None)
    assert delete_disk(d.path) is True
    assert delete_disk(d.path) is False


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda t, b: create_overlay(str(t / "missing.qcow2"), str(t / "o.qcow2")), "does not exist"),
        (lambda t, b: create_overlay(b, "relative.qcow2"), "absolute path"),
        (lambda t, b: create_overlay(b, b), "already exists"),
        (lambda t, b: create_overlay(b, str(t / "o.qcow2"), backing_format="vmdk"), "backing format"),
        (lambda t, b: create_data_disk(str(t / "d"), 0), "positive"),
        (lambda t, b: disk_info(str(t / "nope")), "does not exist"),
    ],
)
def test_bad_input(call, message: str, base: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InvalidSpec, match=message):
        call(tmp_path, base)


def test_qemu_img_failure_leaves_no_file(tmp_path: Path) -> None:
    from drivers.base import HypervisorError

    bogus = tmp_path / "bogus.qcow2"
    bogus.write_bytes(b"not a qcow2 at all" * 100)
    out = tmp_path / "o.qcow2"
    with pytest.raises(HypervisorError, match="qemu-img create"):
        create_overlay(str(bogus), str(out), size_mb=1)  # size forces qemu-img to open the base
    assert not out.exists()
