"""The janitor kills abandoned uploads and removes files no row accounts for (after a grace period)."""
from __future__ import annotations

import os
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import create_engine

from core.db.base import utcnow
from core.db.engine import Database
from core.db.migrate import upgrade
from core.glance.config import GlanceConfig
from core.glance.janitor import sweep
from core.glance.models import Image
from core.glance.storage import LocalStore

ORPHAN = "11111111-2222-4333-8444-555555555555"


def test_sweep(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    upgrade(create_engine(url))
    db = Database(url)
    store = LocalStore(tmp_path / "images")
    with db.session() as s:
        stale = Image(name="stale", tenant_id="p", domain_id="d", status="saving",
                      updated_at=utcnow() - timedelta(days=2))
        fresh = Image(name="fresh", tenant_id="p", domain_id="d", status="saving")
        done = Image(name="done", tenant_id="p", domain_id="d", status="active")
        s.add_all([stale, fresh, done])
        s.flush()
        done.location = done.id
        ids = (stale.id, fresh.id, done.id)
    for key in ids[:2]:
        w = store.writer(key, resume=False)
        w.write(b"x" * 100)
        w.close()
    (store.root / ids[2]).write_bytes(b"img")
    (store.root / ORPHAN).write_bytes(b"lost")
    (store.staging / ORPHAN).write_bytes(b"lost")
    young = store.root / (ORPHAN[:-1] + "6")
    young.write_bytes(b"new")  # inside the grace period: kept
    old = time.time() - 3600
    for p in (store.root / ORPHAN, store.staging / ORPHAN, store.root / ids[2]):
        os.utime(p, (old, old))
    with db.session() as s:
        res = sweep(s, store, GlanceConfig(orphan_grace_s=600))
    assert (res.abandoned, res.orphans) == (1, 2)
    assert store.staged_size(ids[0]) == 0 and store.staged_size(ids[1]) == 100
    assert (store.root / ids[2]).exists() and young.exists() and not (store.root / ORPHAN).exists()
    with db.session() as s:
        assert s.get(Image, ids[0]).status == "killed"  # type: ignore[union-attr]
        assert s.get(Image, ids[1]).status == "saving"  # type: ignore[union-attr]
    db.dispose()
