"""Periodic clean-up of the image store (the job ``glance-janitor`` of core/tasks/periodic.py, which
runs it under a DB lease so one replica runs it).

- an upload left ``saving`` with no activity for ``abandon_after_s`` (a client that never resumed,
  a controller killed mid-upload) is killed and its staged bytes freed;
- files no row accounts for (a crash between a row's delete and its file's unlink, staged bytes of
  a deleted image) are removed once older than ``orphan_grace_s``.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import audit
from core.db.base import utcnow
from core.glance.config import GlanceConfig
from core.glance.dbutil import begin_write
from core.glance.models import ACTIVE, KILLED, SAVING, Image, ImageSubformat
from core.glance.storage import LocalStore, store_for

log = logging.getLogger("cloudpods.glance")


@dataclass
class SweepResult:
    abandoned: int = 0
    orphans: int = 0


def sweep_job(session: Session, data_dir: Path, config_path: Path) -> int:
    """The periodic job: sweep the controller's image store with glance's settings."""
    r = sweep(session, store_for(data_dir), GlanceConfig.load(config_path))
    return r.abandoned + r.orphans


def sweep(s: Session, store: LocalStore, cfg: GlanceConfig) -> SweepResult:
    out = SweepResult()
    cutoff = utcnow() - timedelta(seconds=cfg.abandon_after_s)
    begin_write(s, background=True)  # a periodic job: API requests go first
    for img in s.scalars(select(Image).where(Image.status == SAVING, Image.updated_at < cutoff)):
        store.discard_staged(img.id)
        img.status, img.upload_owner, img.upload_total = KILLED, None, None
        img.fail_reason = f"upload abandoned: no data for {cfg.abandon_after_s:.0f}s"
        audit.record(s, None, service="image", action="upload", obj_type="image", obj_id=img.id,
                     obj_name=img.name, success=False, notes=img.fail_reason)
        out.abandoned += 1
    s.commit()  # the kills are final before any file goes; the listing below sees them
    saving = set(s.scalars(select(Image.id).where(Image.status == SAVING)))
    active = set(s.scalars(select(Image.location).where(Image.status == ACTIVE, Image.location.is_not(None))))
    subs = {f"{i}.{f}" for i, f in s.execute(select(ImageSubformat.image_id, ImageSubformat.format))}
    s.commit()  # a read transaction is not held while files are listed
    old = time.time() - cfg.orphan_grace_s
    for p in list(store.staging.iterdir()):
        if p.is_file() and p.name not in saving and p.stat().st_mtime < old:
            p.unlink(missing_ok=True)
            out.orphans += 1
    for p in list(store.root.iterdir()):
        if p.is_file() and p.name not in active and p.name not in subs and p.stat().st_mtime < old:
            p.unlink(missing_ok=True)
            out.orphans += 1
    if out.abandoned or out.orphans:
        log.info("glance janitor: %d abandoned uploads killed, %d orphan files removed", out.abandoned, out.orphans)
    return out
