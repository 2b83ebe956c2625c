"""A new server's name is unique in its project only (pick_names), found through the name's index."""
from __future__ import annotations

import pytest

from core.db.base import utcnow
from core.db.engine import Database
from core.errors import DuplicateNameError
from core.region.models import Server
from core.region.server_create import ServerCreate, pick_names


def _server(name: str, tenant: str) -> Server:
    now = utcnow()
    return Server(name=name, tenant_id=tenant, domain_id="default", status="ready", vcpu_count=1, vmem_size=64,
                  hypervisor="kvm", create_spec={}, created_at=now, updated_at=now)


def test_names_are_unique_per_project(db: Database) -> None:
    with db.session() as s:
        s.add_all([_server("web", "proj-a"), _server("web-1", "proj-a"), _server("db", "proj-b"),
                   *(_server(f"other-{i}", "proj-a") for i in range(50))])
        s.flush()
        assert pick_names(s, "proj-b", ServerCreate(name="web"), 1) == ["web"]  # another project's name
        with pytest.raises(DuplicateNameError, match="'web'"):
            pick_names(s, "proj-a", ServerCreate(name="web"), 1)
        with pytest.raises(DuplicateNameError, match="'db'"):
            pick_names(s, "proj-b", ServerCreate(name="db"), 1)
        assert pick_names(s, "proj-a", ServerCreate(generate_name="web"), 3) == ["web-2", "web-3", "web-4"]
        assert pick_names(s, "proj-b", ServerCreate(generate_name="web"), 2) == ["web", "web-1"]
        s.add(_server("pending", "proj-a"))  # not flushed yet: still seen
        with pytest.raises(DuplicateNameError):
            pick_names(s, "proj-a", ServerCreate(name="pending"), 1)


def test_the_name_check_searches_the_name_index(db: Database) -> None:
    """On SQLite, given the project too, the planner took the project's index and read every server
    the project owns per create: the check asks by name only."""
    from sqlalchemy import event

    seen: list[tuple[str, object]] = []

    def keep(conn: object, cur: object, sql: str, params: object, ctx: object, many: bool) -> None:
        if "FROM servers" in sql:
            seen.append((sql, params))

    event.listen(db.engine, "before_cursor_execute", keep)
    with db.session() as s:
        pick_names(s, "proj-a", ServerCreate(name="web"), 2)
        assert len(seen) == 1
        sql, params = seen[0]
        plan = " ".join(str(r[-1]) for r in s.connection().exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params))
    assert "ix_servers_name" in plan, plan
