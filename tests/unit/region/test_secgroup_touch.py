"""A host's rules version moving is not a change of the host: its ``updated_at`` (the scheduler
snapshot's mark of hosts to re-read) stays."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import update

from core.db.engine import Database
from core.region.models import Cloudregion, Host, Zone
from core.region.secgroups import touch_hosts

LONG_AGO = datetime(2020, 1, 1)


def test_a_rules_bump_keeps_the_hosts_updated_at(db: Database) -> None:
    with db.session() as s:
        s.add(Cloudregion(id="r-touch", name="r-touch"))
        s.flush()
        s.add(Zone(id="z-touch", name="z-touch", cloudregion_id="r-touch"))
        s.flush()
        s.add(Host(id="h-touch", name="h-touch", zone_id="z-touch"))
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
