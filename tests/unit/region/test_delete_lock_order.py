"""A deleted server's hosts are locked in one id-ordered pass, its own host among them: two
concurrent deletes that each locked their peers' hosts and then their own deadlocked on PostgreSQL."""
from __future__ import annotations

from typing import Any

from sqlalchemy import event

from core.db.engine import Database
from core.region.models import GuestSecgroup, Host, Secgroup, Server
from core.region.secgroups import drop_server
from tests.support.unitdb import add_hosts


def test_the_own_host_is_locked_with_the_peers_hosts(db: Database) -> None:
    with db.session() as s:
        add_hosts(s, "lock", "h-lock-a", "h-lock-b")
        s.add(Secgroup(id="sg-lock", name="sg-lock"))
        s.flush()
        # the deleted server lives on b; a peer in its group lives on a (id order: a before b)
        s.add(Server(id="srv-gone", name="srv-gone", host_id="h-lock-b"))
        s.add(Server(id="srv-peer", name="srv-peer", host_id="h-lock-a"))
        s.flush()
        s.add_all([GuestSecgroup(guest_id="srv-gone", secgroup_id="sg-lock"),
                   GuestSecgroup(guest_id="srv-peer", secgroup_id="sg-lock")])
        s.commit()

    seen: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool) -> None:
        if "hosts" in statement.split("WHERE")[0] and ("SELECT" in statement or "UPDATE" in statement):
            seen.append((statement, params))

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        with db.session() as s:
            gone = s.get(Server, "srv-gone")
            assert gone is not None
            drop_server(s, gone)
            s.commit()
    finally:
        event.remove(db.engine, "before_cursor_execute", record)

    assert seen, "no host row was locked"
    first_sql, first_params = seen[0]
    assert "ORDER BY hosts.id" in first_sql  # the one ordered locking pass ...
    assert {"h-lock-a", "h-lock-b"} <= set(first_params)  # ... takes the peer's host and its own
    with db.session() as s:
        versions = {h.id: h.secgroup_version for h in s.query(Host).filter(Host.id.in_(["h-lock-a", "h-lock-b"]))}
    assert versions == {"h-lock-a": 1, "h-lock-b": 1}
