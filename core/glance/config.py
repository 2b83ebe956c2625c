"""Glance's own settings: the ``[glance]`` table of ``config.toml``, then ``CLOUDPODS_GLANCE_<FIELD>``.

Kept beside the controller's ``Settings`` (which ignores tables it does not know) so the image
service can be tuned without touching the shared settings object:

    [glance]
    image_size_cap = 1099511627776      # bytes one image may hold on disk
    max_virtual_size = 17592186044416   # bytes a disk image may claim to expand to
    project_quota_bytes = 0             # default per-project image bytes (0 = unlimited)
    idle_timeout_s = 120                # an upload that sends nothing this long is dropped
"""
from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from core.errors import InputParameterError

GiB = 1 << 30
TiB = 1 << 40


@dataclass(frozen=True)
class GlanceConfig:
    image_size_cap: int = TiB
    max_virtual_size: int = 16 * TiB
    project_quota_bytes: int = 0
    idle_timeout_s: float = 120.0
    min_free_bytes: int = 64 << 20  # keep this much free on the image store
    qemu_img: str = "qemu-img"
    qemu_img_timeout_s: float = 60.0
    convert_timeout_s: float = 4 * 3600.0
    chunk_bytes: int = 4 << 20  # unit of writing, hashing and reading
    abandon_after_s: float = 86400.0  # a `saving` upload silent this long is killed (staged bytes freed)
    janitor_interval_s: float = 600.0
    orphan_grace_s: float = 600.0  # files younger than this are never swept (a commit may be in flight)

    @classmethod
    def load(cls, config_path: Path | None = None, env: dict[str, str] | None = None) -> GlanceConfig:
        values: dict[str, Any] = {}
        if config_path is not None and config_path.exists():
            try:
                table = tomllib.loads(config_path.read_text()).get("glance", {})
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
                raise InputParameterError(f"cannot parse {config_path}: {e}") from e
            if isinstance(table, dict):
                values.update(table)
        environ = os.environ if env is None else env
        for f in fields(cls):
            raw = environ.get(f"CLOUDPODS_GLANCE_{f.name.upper()}")
            if raw is not None:
                values[f.name] = raw
        kwargs: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in values:
                continue
            raw, default = values[f.name], f.default
            try:
                if isinstance(default, float):
                    kwargs[f.name] = float(raw)
                elif isinstance(default, int):
                    kwargs[f.name] = int(raw)
                else:
                    kwargs[f.name] = str(raw)
            except (TypeError, ValueError):
                raise InputParameterError(f"glance setting {f.name}: invalid value {raw!r}") from None
        cfg = cls(**kwargs)
        if cfg.chunk_bytes < 64 << 10:
            raise InputParameterError("glance setting chunk_bytes: must be at least 65536")
        return cfg
