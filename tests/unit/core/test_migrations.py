"""One migration tree: a single head per branch, upgrade/downgrade round trip with data present."""
from __future__ import annotations

from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text

from core.db.base import Base
from core.db.migrate import alembic_config, code_heads, declared_heads, downgrade, schema_state, upgrade


def test_one_head_per_branch_all_rooted_on_root() -> None:
    script = ScriptDirectory.from_config(alembic_config())
    heads = script.get_heads()
    labels: list[str] = []
    for h in heads:
        rev = script.get_revision(h)
        branch: set[str] = set()
        while rev is not None and not branch:  # down the chain only (depends_on is not the branch)
            branch = set(rev.branch_labels or ())
            down = rev.down_revision
            rev = script.get_revision(down) if isinstance(down, str) else None
        assert branch or h == "root_0001", f"head {h} belongs to no branch"
        labels += sorted(branch)
    assert len(labels) == len(set(labels)), f"a branch has two heads: {heads}"
    bases = script.get_bases()
    assert bases == ["root_0001"], bases


def test_heads_read_without_alembic_are_alembics_heads() -> None:
    """`ocadm serve` compares the database with heads read from the files' text; Alembic must agree."""
    assert declared_heads() == frozenset(code_heads())


def test_heads_read_from_a_files_head_or_else_the_whole_file(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Identifiers before the functions are read from the head alone; stated after a function (or
    not parseable in the head) the whole file is read; not literals: None (Alembic decides)."""
    from core.db import migrate

    versions = tmp_path / "versions"
    versions.mkdir()
    (versions / "a.py").write_text('revision = "a"\ndown_revision = None\n\ndef upgrade():\n    x = (\n')  # head only
    (versions / "b.py").write_text('"""doc"""\ndef upgrade():\n    pass\nrevision = "b"\ndown_revision = "a"\n')
    (versions / "c.py").write_text('x = """\ndef no"""\nrevision: str = "c"\ndown_revision = ("b",)\n'
                                   'def f():\n    pass\n')
    monkeypatch.setattr(migrate, "MIGRATIONS_DIR", tmp_path)
    migrate.declared_heads.cache_clear()
    try:
        assert migrate.declared_heads() == frozenset({"c"})
        (versions / "d.py").write_text('revision = "d" + ""\ndown_revision = "c"\n')
        migrate.declared_heads.cache_clear()
        assert migrate.declared_heads() is None
    finally:
        migrate.declared_heads.cache_clear()


def test_a_current_database_is_checked_without_importing_alembic(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import subprocess
    import sys
    from pathlib import Path

    engine = create_engine(f"sqlite:///{tmp_path / 'c.db'}")
    upgrade(engine)
    engine.dispose()
    code = ("import sys; from sqlalchemy import create_engine; from core.db.migrate import schema_state; "
            f"st = schema_state(create_engine('sqlite:///{tmp_path / 'c.db'}')); "
            "print(st.state, 'alembic' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[3])
    assert out.stdout.split() == ["current", "False"], out.stderr


def test_models_match_migrations(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Every table a model declares exists after `upgrade heads` (no model without a revision)."""
    import core.db.models  # noqa: F401

    engine = create_engine(f"sqlite:///{tmp_path / 'm.db'}")
    upgrade(engine)
    have = set(inspect(engine).get_table_names())
    missing = set(Base.metadata.tables) - have
    assert not missing, f"models without a migration: {sorted(missing)}"


def test_downgrade_to_base_and_back_with_data(tmp_path) -> None:  # type: ignore[no-untyped-def]
    engine = create_engine(f"sqlite:///{tmp_path / 'r.db'}")
    assert upgrade(engine).state == "current"
    with engine.begin() as c:
        c.execute(text("INSERT INTO db_leases (name, holder, expires_at) VALUES ('x', 'me', '2030-01-01 00:00:00')"))
    downgrade(engine, "base")
    assert schema_state(engine).state == "empty"
    assert upgrade(engine).state == "current"
    with engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM db_leases")).scalar() == 0


def test_agent_0002_keeps_old_join_tokens_one_time(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A database from before join-token use counts: a spent token stays spent, an unspent one has one use."""
    engine = create_engine(f"sqlite:///{tmp_path / 'o.db'}")
    upgrade(engine, "agent_0001")
    cols = "id, token_sha256, zone_id, expires_at, used_at, host_id, created_by, description, created_at, updated_at"
    with engine.begin() as c:
        for i, used_at in ((1, "'2026-11-30 00:00:00'"), (2, "NULL")):
            c.execute(text(f"INSERT INTO agent_join_tokens ({cols}) VALUES ('t{i}', 'sha{i}', 'z', "
                           f"'2030-01-01 00:00:00', {used_at}, NULL, '', '', '2026-11-30 00:00:00', "
                           "'2026-11-30 00:00:00')"))
    assert upgrade(engine).state == "current"
    with engine.connect() as c:
        rows = dict(c.execute(text("SELECT id, uses || '/' || used FROM agent_join_tokens")).all())
    assert rows == {"t1": "1/1", "t2": "1/0"}
    downgrade(engine, "agent_0001")
    assert "uses" not in {col["name"] for col in inspect(engine).get_columns("agent_join_tokens")}


def test_cloud_0001_keeps_servers_of_an_older_database_as_local_ones(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A database from before cloud accounts: its servers and hosts get no external id and no
    manager (they are this cloud's own), and a downgrade gives the old tables back intact."""
    engine = create_engine(f"sqlite:///{tmp_path / 'c.db'}")
    upgrade(engine, "region_0005")
    now = "'2026-12-01 00:00:00'"
    with engine.begin() as c:
        c.execute(text(f"INSERT INTO servers (id, name, description, status, metadata, created_at, updated_at, "
                       "tenant_id, domain_id, is_public, pending_deleted, vcpu_count, vmem_size, hypervisor, os_type, "
                       "os_arch, power_status, status_reason, auto_start, create_spec, user_data, held) VALUES "
                       f"('s1', 'old-vm', '', 'ready', '{{}}', {now}, {now}, 'p', 'default', 0, 0, 1, 512, 'kvm', '', "
                       "'', 'off', '', 0, '{}', '', '{}')"))
    assert upgrade(engine).state == "current"
    with engine.connect() as c:
        assert c.execute(text("SELECT name, external_id, manager_id FROM servers")).one() == ("old-vm", "", None)
        assert c.execute(text("SELECT count(*) FROM cloudaccounts")).scalar() == 0
    downgrade(engine, "cloud@-2")  # cloud_0002, then cloud_0001
    assert "cloudaccounts" not in inspect(engine).get_table_names()
    assert "external_id" not in {col["name"] for col in inspect(engine).get_columns("servers")}
    with engine.connect() as c:
        assert c.execute(text("SELECT name FROM servers")).scalar() == "old-vm"


def _insert(c, engine, table: str, **values: object) -> None:  # type: ignore[no-untyped-def]
    """A row with ``values`` and a plain value in every other required column (by its type)."""
    row = dict(values)
    for col in inspect(engine).get_columns(table):
        if col["name"] in row or col["nullable"] or col.get("default") is not None:
            continue
        t = str(col["type"]).upper()
        row[col["name"]] = (0 if any(k in t for k in ("INT", "BOOL", "FLOAT", "NUMERIC")) else
                            "2026-12-01 00:00:00" if "DATE" in t else "{}" if "JSON" in t else "")
    names = ", ".join(row)
    c.execute(text(f"INSERT INTO {table} ({names}) VALUES ({', '.join(':' + k for k in row)})"), row)


def test_cloud_0002_keeps_eips_of_an_older_database(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Eips from before cloud regions on eips keep everything and get no region; a downgrade keeps them."""
    engine = create_engine(f"sqlite:///{tmp_path / 'e.db'}")
    upgrade(engine, "cloud_0001")
    with engine.begin() as c:
        _insert(c, engine, "eips", id="e1", name="old-eip", ip_addr="10.9.0.5", tenant_id="p1")
    assert upgrade(engine).state == "current"
    with engine.connect() as c:
        assert c.execute(text("SELECT name, ip_addr, cloudregion_id FROM eips")).one() == ("old-eip", "10.9.0.5", None)
    downgrade(engine, "cloud_0001")
    assert "cloudregion_id" not in {col["name"] for col in inspect(engine).get_columns("eips")}
    with engine.connect() as c:
        assert c.execute(text("SELECT ip_addr FROM eips")).scalar() == "10.9.0.5"


def test_region_0007_keeps_each_servers_security_group(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Servers from before several groups per server stay in the one group they had; the spoofing
    checks start on; hosts start at secgroup_version 0."""
    engine = create_engine(f"sqlite:///{tmp_path / 's.db'}")
    upgrade(engine, "region_0006")
    with engine.begin() as c:
        _insert(c, engine, "secgroups", id="sg1", name="web", tenant_id="p1")
        _insert(c, engine, "servers", id="s1", name="a", secgroup_id="sg1", tenant_id="p1")
        _insert(c, engine, "servers", id="s2", name="b", secgroup_id=None, tenant_id="p1")
    assert upgrade(engine).state == "current"
    with engine.connect() as c:
        assert c.execute(text("SELECT guest_id, secgroup_id FROM guestsecgroups")).all() == [("s1", "sg1")]
        assert c.execute(text("SELECT src_ip_check, src_mac_check FROM servers ORDER BY id")).all() == [(1, 1), (1, 1)]
    downgrade(engine, "region_0006")
    assert "guestsecgroups" not in inspect(engine).get_table_names()


def test_agent_0003_adds_console_sessions_to_an_older_database(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A database from before consoles: join tokens kept, the console table added empty, and gone again
    on downgrade."""
    engine = create_engine(f"sqlite:///{tmp_path / 'k.db'}")
    upgrade(engine, "agent_0002")
    cols = "id, token_sha256, zone_id, expires_at, used_at, host_id, created_by, description, created_at, " \
        "updated_at, uses, used"
    with engine.begin() as c:
        c.execute(text(f"INSERT INTO agent_join_tokens ({cols}) VALUES ('t1', 'sha1', 'z', '2030-01-01 00:00:00', "
                       "NULL, NULL, '', '', '2026-11-30 00:00:00', '2026-11-30 00:00:00', 3, 1)"))
    assert upgrade(engine).state == "current"
    with engine.connect() as c:
        assert c.execute(text("SELECT uses || '/' || used FROM agent_join_tokens")).scalar() == "3/1"
        assert c.execute(text("SELECT count(*) FROM console_sessions")).scalar() == 0
    downgrade(engine, "agent_0002")
    assert "console_sessions" not in inspect(engine).get_table_names()


def test_region_0009_gives_existing_nics_no_bandwidth_limit(tmp_path) -> None:  # type: ignore[no-untyped-def]
    engine = create_engine(f"sqlite:///{tmp_path / 's.db'}")
    upgrade(engine, "region_0008")
    with engine.begin() as c:
        _insert(c, engine, "ip_allocations", id="a1", network_id="n1", ip_addr="10.0.0.5", ip_int=167772165,
                owner_type="server", owner_id="s1")
    assert upgrade(engine).state == "current"
    with engine.connect() as c:
        assert c.execute(text("SELECT bw_limit FROM ip_allocations")).all() == [(0,)]
    downgrade(engine, "region_0008")
    assert "bw_limit" not in {col["name"] for col in inspect(engine).get_columns("ip_allocations")}


def test_ks_0003_adds_application_credentials_to_an_older_database(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A keystone database from before application credentials keeps its users; the new tables come
    empty and go again on downgrade."""
    engine = create_engine(f"sqlite:///{tmp_path / 'ks.db'}")
    upgrade(engine, "ks_0002")
    with engine.begin() as c:
        _insert(c, engine, "ks_domains", id="d1", name="dom", description="", enabled=True, extra="{}",
                created_at="2026-11-30 00:00:00", updated_at="2026-11-30 00:00:00")
        _insert(c, engine, "ks_users", id="u1", name="alice", domain_id="d1", password_hash="", enabled=True,
                email="", description="", failed_logins=0, extra="{}",
                created_at="2026-11-30 00:00:00", updated_at="2026-11-30 00:00:00")
    assert upgrade(engine).state == "current"
    with engine.connect() as c:
        assert c.execute(text("SELECT name FROM ks_users")).all() == [("alice",)]
        assert c.execute(text("SELECT count(*) FROM ks_app_creds")).scalar() == 0
    downgrade(engine, "ks_0002")
    tables = set(inspect(engine).get_table_names())
    assert not tables & {"ks_app_creds", "ks_app_cred_roles", "ks_access_rules", "ks_app_cred_rules"}


def test_region_0010_gives_existing_eips_bandwidth_charging_and_no_auto_release(tmp_path) -> None:  # type: ignore[no-untyped-def]
    engine = create_engine(f"sqlite:///{tmp_path / 'e.db'}")
    upgrade(engine, "region_0009")
    with engine.begin() as c:
        _insert(c, engine, "eips", id="e1", name="old", ip_addr="203.0.113.5", bandwidth=10)
    assert upgrade(engine).state == "current"
    with engine.connect() as c:
        assert c.execute(text("SELECT charge_type, auto_dellocate FROM eips")).all() == [("bandwidth", 0)]
    downgrade(engine, "region_0009")
    assert not {"charge_type", "auto_dellocate"} & {col["name"] for col in inspect(engine).get_columns("eips")}


def test_region_0011_adds_domain_quotas_and_keeps_project_quotas(tmp_path) -> None:  # type: ignore[no-untyped-def]
    engine = create_engine(f"sqlite:///{tmp_path / 'dq.db'}")
    upgrade(engine, "region_0010")
    with engine.begin() as c:
        _insert(c, engine, "quotas", tenant_id="p1", domain_id="default", cpu=8)
    assert upgrade(engine).state == "current"
    with engine.connect() as c:
        assert c.execute(text("SELECT cpu FROM quotas")).all() == [(8,)]
        assert c.execute(text("SELECT count(*) FROM domain_quotas")).scalar() == 0
    downgrade(engine, "region_0010")
    assert "domain_quotas" not in inspect(engine).get_table_names()


def test_region_0012_counts_the_eips_projects_already_hold(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """EIPs made before the eip quota existed are the project's usage; a cloud's elastic IPs are not."""
    engine = create_engine(f"sqlite:///{tmp_path / 'eq.db'}")
    upgrade(engine, "region_0011")
    upgrade(engine, "cloud_0001")  # eips.manager_id
    with engine.begin() as c:
        _insert(c, engine, "quotas", tenant_id="p1", domain_id="default", cpu=8)
        _insert(c, engine, "quotas", tenant_id="p2", domain_id="default", cpu=8)
        for i, (tenant, manager) in enumerate((("p1", None), ("p1", None), ("p1", "m1"), ("p3", None))):
            _insert(c, engine, "eips", id=f"e{i}", name=f"e{i}", tenant_id=tenant, manager_id=manager)
        _insert(c, engine, "domain_quotas", domain_id="d1", cpu=4)
    assert upgrade(engine).state == "current"
    with engine.connect() as c:
        assert c.execute(text("SELECT tenant_id, eip, used_eip FROM quotas ORDER BY tenant_id")).all() == [
            ("p1", 10, 2), ("p2", 10, 0)]
        assert c.execute(text("SELECT eip FROM domain_quotas")).all() == [(-1,)]
    downgrade(engine, "region_0011")
    assert "used_eip" not in {col["name"] for col in inspect(engine).get_columns("quotas")}
