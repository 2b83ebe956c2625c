"""Periodic clean-up of the image store, under a DB lease so one replica runs it.

- an upload left ``saving`` with no activity for ``abandon_after_s`` (a client that never resumed,
  a controller killed mid-upload) is killed and its staged bytes freed;
- files no row accounts for (a crash between a row's delete and its file's unlink, staged bytes of
  a deleted image) are removed once older than ``orphan_grace_s``.

Hook: ``core.glance.janitor:start`` in ``core.api.app.BACKGROUND`` (start(app) → stop callable).
"""
from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from core import audit
from core.db.base import utcnow
from core.db.engine import Database
from core.db.lease import release, try_acquire
from core.glance.config import GlanceConfig
from core.glance.context import glance_ctx
from core.glance.dbutil import write_session
from core.glance.models import ACTIVE, KILLED, SAVING, Image, ImageSubformat
from core.glance.storage import LocalStore

log = logging.getLogger("cloudpods.glance")
LEASE = "glance-janitor"


@dataclass
class SweepResult:
    abandoned: int = 0
    orphans: int = 0


def sweep(db: Database, store: LocalStore, cfg: GlanceConfig) -> SweepResult:
    out = SweepResult()
    cutoff = utcnow() - timedelta(seconds=cfg.abandon_after_s)
    with write_session(db) as s:
        for img in s.scalars(select(Image).where(Image.status == SAVING, Image.updated_at < cutoff)):
            store.discard_staged(img.id)
            img.status, img.upload_owner, img.upload_total = KILLED, None, None
            img.fail_reason = f"upload abandoned: no data for {cfg.abandon_after_s:.0f}s"
            audit.record(s, None, service="image", action="upload", obj_type="image", obj_id=img.id,
                         obj_name=img.name, success=False, notes=img.fail_reason)
            out.abandoned += 1
    with db.session() as s:
        saving = set(s.scalars(select(Image.id).where(Image.status == SAVING)))
        active = set(s.scalars(select(Image.location).where(Image.status == ACTIVE, Image.location.is_not(None))))
        subs = {f"{i}.{f}" for i, f in s.execute(select(ImageSubformat.image_id, ImageSubformat.format))}
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


def start(app: Any) -> Callable[[], None]:
    ctx = glance_ctx(app)
    stop = threading.Event()
    holder = uuid.uuid4().hex

    def loop() -> None:
        while not stop.wait(ctx.cfg.janitor_interval_s):
            try:
                with ctx.db.session() as s:
                    if not try_acquire(s, LEASE, holder, ctx.cfg.janitor_interval_s * 2):
                        continue
                if isinstance(ctx.store, LocalStore):
                    sweep(ctx.db, ctx.store, ctx.cfg)
            except Exception:  # a failed sweep must not kill the thread; the next one retries
                log.exception("glance janitor sweep failed")

    t = threading.Thread(target=loop, name="glance-janitor", daemon=True)
    t.start()

    def stopper() -> None:
        stop.set()
        t.join(5)
        try:
            with ctx.db.session() as s:
                release(s, LEASE, holder)
        except Exception:
            log.debug("janitor lease release failed", exc_info=True)

    return stopper
