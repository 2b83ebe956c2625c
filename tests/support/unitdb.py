"""The database of unit tests: a real SQLite file migrated to the current schema, optionally
bootstrapped as ``ocadm init`` leaves it (identity, then region defaults). The conftests of
tests/unit/<area> make their ``db`` fixture with it."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy.orm import Session

from core.db.engine import Database
from core.db.migrate import upgrade

ADMIN_PW = "admin-Pw-1"  # the bootstrapped admin's password


@contextmanager
def migrated_db(path: Path, *, bootstrapped: bool = False, defaults: bool = False) -> Iterator[Database]:
    """The database at ``path``: migrated; ``bootstrapped``: identity's admin, domain, roles and catalog;
    ``defaults``: the region's default zone, wire and network too. Disposed on exit."""
    d = Database(f"sqlite:///{path}")
    upgrade(d.engine)
    if bootstrapped:
        from core.keystone.bootstrap import bootstrap

        with d.session() as s:
            bootstrap(s, admin_password=ADMIN_PW, public_url="http://127.0.0.1:1", region_id="region0")
    if defaults:
        from core.region.defaults import create_defaults

        with d.session() as s:
            create_defaults(s)
    try:
        yield d
    finally:
        d.dispose()


def add_hosts(s: Session, tag: str, *host_ids: str) -> None:
    """A region ``r-<tag>`` with a zone ``z-<tag>`` holding hosts named as their ids, flushed: the
    least a region-level unit test needs before servers, claims or rules can be placed."""
    from core.region.models import Cloudregion, Host, Zone

    s.add(Cloudregion(id=f"r-{tag}", name=f"r-{tag}"))
    s.flush()
    s.add(Zone(id=f"z-{tag}", name=f"z-{tag}", cloudregion_id=f"r-{tag}"))
    s.flush()
    s.add_all([Host(id=h, name=h, zone_id=f"z-{tag}") for h in host_ids])
    s.flush()
