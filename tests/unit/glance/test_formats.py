"""Intake hardening against images made by the real qemu-img (apt qemu-utils)."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from core.errors import InputParameterError, NotSupportedError
from core.glance.formats import ImageRefused, Inspection, check_disk_format, convert, inspect_image, sniff
from tests.support.peers import need_binary

CAP = 8 << 30


@pytest.fixture(autouse=True)
def _qemu_img() -> None:
    need_binary("qemu-img", "qemu-utils")


def img(path: Path, fmt: str, size: str = "16M", *opts: str) -> Path:
    subprocess.run(["qemu-img", "create", "-q", "-f", fmt, *opts, str(path), size], check=True, capture_output=True)
    return path


def inspect(path: Path, declared: str | None) -> Inspection:
    return inspect_image(path, declared, max_virtual_size=CAP)


def test_plain_formats_are_accepted_with_their_virtual_size(tmp_path: Path) -> None:
    for fmt, ours, opts in (("qcow2", "qcow2", ()), ("vpc", "vhd", ()),
                            ("vmdk", "vmdk", ("-o", "subformat=monolithicSparse")),
                            ("vmdk", "vmdk", ("-o", "subformat=streamOptimized"))):
        p = img(tmp_path / f"a.{fmt}", fmt, "32M", *opts)
        res = inspect(p, ours)
        assert res.format == ours
        assert res.virtual_size >= 32 << 20
        assert inspect(p, None).format == ours  # detected when undeclared


def test_raw_and_iso(tmp_path: Path) -> None:
    raw = tmp_path / "r.raw"
    raw.write_bytes(b"\x00" * 5000 + b"data")
    assert inspect(raw, "raw").virtual_size == 5004
    iso = tmp_path / "x.iso"
    iso.write_bytes(b"\x00" * 0x8001 + b"CD001" + b"\x00" * 4000)
    assert sniff(iso).format == "iso"
    assert inspect(iso, "iso").format == "iso"
    assert inspect(iso, "raw").format == "raw"  # an ISO is raw bytes too
    with pytest.raises(ImageRefused, match="declared disk_format iso but the data is raw"):
        inspect(raw, "iso")


def test_backing_file_refused_before_qemu_opens_it(tmp_path: Path) -> None:
    p = tmp_path / "b.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", "/etc/passwd", "-F", "raw", str(p)],
                   check=True, capture_output=True)
    with pytest.raises(ImageRefused, match="backing file"):
        sniff(p)
    with pytest.raises(ImageRefused, match="backing file"):
        inspect(p, "qcow2")


def test_external_data_file_refused(tmp_path: Path) -> None:
    p = img(tmp_path / "d.qcow2", "qcow2", "16M", "-o", f"data_file={tmp_path / 'data.raw'}")
    with pytest.raises(ImageRefused, match="external data file"):
        inspect(p, "qcow2")


@pytest.mark.parametrize("sub", ["monolithicFlat", "twoGbMaxExtentSparse", "twoGbMaxExtentFlat"])
def test_vmdk_descriptors_and_split_extents_refused(tmp_path: Path, sub: str) -> None:
    p = img(tmp_path / "v.vmdk", "vmdk", "16M", "-o", f"subformat={sub}")
    with pytest.raises(ImageRefused, match="VMDK"):
        inspect(p, "vmdk")


def test_declared_format_must_match_the_bytes(tmp_path: Path) -> None:
    q = img(tmp_path / "q.qcow2", "qcow2")
    with pytest.raises(ImageRefused, match="declared disk_format raw but the data is qcow2"):
        inspect(q, "raw")
    raw = tmp_path / "r.raw"
    raw.write_bytes(b"\x01" * 4096)
    with pytest.raises(ImageRefused, match="declared disk_format qcow2 but the data is raw"):
        inspect(raw, "qcow2")
    vhdx = img(tmp_path / "x.vhdx", "vhdx")
    with pytest.raises(ImageRefused, match="vhdx images are not supported"):
        inspect(vhdx, None)


def test_virtual_size_cap_and_empty_and_corrupt(tmp_path: Path) -> None:
    big = img(tmp_path / "big.qcow2", "qcow2", "64G")
    with pytest.raises(ImageRefused, match="exceeds the cap"):
        inspect(big, "qcow2")
    empty = tmp_path / "e"
    empty.write_bytes(b"")
    with pytest.raises(ImageRefused, match="empty"):
        inspect(empty, "raw")
    bad = tmp_path / "c.qcow2"
    bad.write_bytes(b"QFI\xfb" + b"\x00\x00\x00\x03" + b"\x00" * 200)
    with pytest.raises(ImageRefused, match="not a valid qcow2"):
        inspect(bad, "qcow2")


def test_disk_format_names() -> None:
    assert check_disk_format("QCOW2") == "qcow2"
    assert check_disk_format(None) is None
    with pytest.raises(InputParameterError, match="not supported"):
        check_disk_format("exe")
    with pytest.raises(InputParameterError, match="required"):
        check_disk_format("", required=True)


def test_convert_round_trip(tmp_path: Path) -> None:
    q = img(tmp_path / "q.qcow2", "qcow2", "8M")
    convert(q, "qcow2", tmp_path / "o.raw", "raw")
    assert (tmp_path / "o.raw").stat().st_size == 8 << 20
    convert(tmp_path / "o.raw", "raw", tmp_path / "o.vmdk", "vmdk")
    assert inspect(tmp_path / "o.vmdk", "vmdk").format == "vmdk"
    with pytest.raises(NotSupportedError):
        convert(q, "qcow2", tmp_path / "o.vhd", "vhd")
