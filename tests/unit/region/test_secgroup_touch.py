"""A host's rules version moving is not a change of the host: its ``updated_at`` (the scheduler
snapshot's mark of hosts to re-read) stays."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import update

from core.db.engine import Database
from core.region.models import Host
from core.region.secgroups import touch_hosts
from tests.support.unitdb import add_hosts

LONG_AGO = datetime(2020, 1, 1)


def test_a_rules_bump_keeps_the_hosts_updated_at(db: Database) -> None:
    with db.session() as s:
        add_hosts(s, "touch", "h-touch")
        s.commit()
        s.execute(update(Host).where(Host.id == "h-touch").values(updated_at=LONG_AGO))
        s.commit()
    with db.session() as s:
        touch_hosts(s, ["h-touch"])
        s.commit()
    with db.session() as s:
        h = s.get(Host, "h-touch")
        assert h is not None
        assert h.secgroup_version == 1
        assert h.updated_at.replace(tzinfo=None) == LONG_AGO
