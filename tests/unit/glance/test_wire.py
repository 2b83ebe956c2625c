"""Wire parsing and shapes: Content-Range, Range, names, properties, metadata fields, v1/v2 renderings."""
from __future__ import annotations

import pytest

from core.errors import InputParameterError
from core.glance.config import GlanceConfig
from core.glance.download import RangeNotSatisfiableError, parse_range
from core.glance.images import check_name, check_properties, to_v2, v1_headers
from core.glance.intake import ContentRange, parse_content_range
from core.glance.models import Image
from core.glance.ops import parse_fields


def test_content_range() -> None:
    assert parse_content_range(None) is None
    assert parse_content_range("bytes 0-99/1000") == ContentRange(0, 99, 1000)
    assert parse_content_range("bytes 100-199/*") == ContentRange(100, 199, None)
    assert parse_content_range("bytes 100-199/*").length == 100  # type: ignore[union-attr]
    for bad in ("bytes 5-1/10", "bytes 0-10/10", "items 0-1/2", "bytes=0-1"):
        with pytest.raises(InputParameterError):
            parse_content_range(bad)


def test_range() -> None:
    assert parse_range(None, 100) is None
    assert parse_range("bytes=0-9", 100) == (0, 9)
    assert parse_range("bytes=90-", 100) == (90, 99)
    assert parse_range("bytes=-5", 100) == (95, 99)
    assert parse_range("bytes=50-1000", 100) == (50, 99)
    for bad in ("bytes=100-", "bytes=5-1", "bytes=0-1,4-5", "bytes=-0", "lines=1-2", "bytes=-"):
        with pytest.raises(RangeNotSatisfiableError):
            parse_range(bad, 100)


def test_names_and_properties() -> None:
    assert check_name(" ubuntu 22.04 ") == "ubuntu 22.04"
    for bad in ("", "../x", "a/b", "a\\b", "..", "a\nb", "x" * 129, None):
        with pytest.raises(InputParameterError):
            check_name(bad)
    assert check_properties({"os_type": "Linux", "n": 3, "b": True, "none": None}) == {
        "os_type": "Linux", "n": "3", "b": "true"}
    for bad in ({"a b": "x"}, {"k": {"nested": 1}}, {"k": "v" * 5000}, ["x"]):
        with pytest.raises(InputParameterError):
            check_properties(bad)


def test_fields_v1_refuses_unknown_v2_keeps_them_as_properties() -> None:
    f = parse_fields({"name": "a", "disk_format": "RAW", "os_type": "Linux", "is_public": "True", "size": "10",
                      "status": "active"})
    assert f.values == {"name": "a", "disk_format": "raw", "is_public": True}
    assert f.properties == {"os_type": "Linux"} and f.declared_size == 10
    with pytest.raises(InputParameterError, match="unknown image field"):
        parse_fields({"name": "a", "copy_from": "http://x"})
    f = parse_fields({"name": "a", "visibility": "public", "hw_disk_bus": "virtio"}, extra_as_properties=True)
    assert f.values["is_public"] is True and f.properties == {"hw_disk_bus": "virtio"}
    with pytest.raises(InputParameterError):
        parse_fields({"min_disk": -1})


def test_renderings() -> None:
    img = Image(id="0b9c1f5e-8f0e-4a53-9a8e-6d7f0f3b2a11", name="deb 12", status="active", disk_format="qcow2",
                container_format="bare", size=10, min_disk=2049, min_ram=0, protected=False, is_public=True,
                tenant_id="p1", domain_id="default", properties={"os_type": "Linux", "name": "shadow"})
    v2 = to_v2(img)
    assert v2["min_disk"] == 3 and v2["visibility"] == "public" and v2["os_type"] == "Linux"
    assert v2["name"] == "deb 12" and v2["file"].endswith("/file")
    h = v1_headers(img)
    assert h["x-image-meta-name"] == "deb%2012" and h["x-image-meta-property-os_type"] == "Linux"


def test_config_from_file_and_env(tmp_path) -> None:  # type: ignore[no-untyped-def]
    p = tmp_path / "config.toml"
    p.write_text('port = 1\n[glance]\nimage_size_cap = 1000\nidle_timeout_s = 5\n')
    cfg = GlanceConfig.load(p, env={"CLOUDPODS_GLANCE_PROJECT_QUOTA_BYTES": "77"})
    assert (cfg.image_size_cap, cfg.idle_timeout_s, cfg.project_quota_bytes) == (1000, 5.0, 77)
    with pytest.raises(InputParameterError, match="image_size_cap"):
        GlanceConfig.load(None, env={"CLOUDPODS_GLANCE_IMAGE_SIZE_CAP": "lots"})
