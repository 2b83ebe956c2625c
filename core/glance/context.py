"""Per-app glance state: the image store and glance settings, built once from the app settings."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.db.engine import Database
from core.glance.config import GlanceConfig
from core.glance.storage import ImageStore, store_for


@dataclass(frozen=True)
class GlanceCtx:
    db: Database
    store: ImageStore
    cfg: GlanceConfig


def glance_ctx(app: Any) -> GlanceCtx:
    ctx = getattr(app.state, "glance", None)
    if ctx is None:
        settings = app.state.settings
        ctx = GlanceCtx(app.state.db, store_for(settings.data_dir), GlanceConfig.load(settings.config_path))
        app.state.glance = ctx
    return ctx
