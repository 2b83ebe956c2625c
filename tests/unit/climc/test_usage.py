"""Usage mistakes get a usage error that says what would work (exit 2, no request for -c typos)."""
from __future__ import annotations

from tests.support.mockcloud import MockCloud


def test_unknown_column_lists_the_available_ones() -> None:
    cloud = MockCloud()
    cloud.route("GET", "/servers", {"servers": [{"id": "s1", "name": "vm1", "status": "running"}], "total": 1})
    r = cloud.climc("server-list", "-c", "name", "-c", "nosuchcol")
    assert r.exit_code == 2
    assert "unknown column nosuchcol" in r.stderr and "available: id, name, status" in r.stderr
    r = cloud.climc("server-list", "-c", "name,status", "-o", "value")
    assert r.exit_code == 0 and r.stdout.strip() == "vm1 running"


def test_mistyped_command_and_option_suggest_the_right_one() -> None:
    cloud = MockCloud()
    r = cloud.climc("server-lst")
    assert r.exit_code == 2 and "Did you mean server-list" in r.stderr
    r = cloud.climc("list-server")
    assert r.exit_code == 2 and "Did you mean server-list?" in r.stderr
    r = cloud.climc("server-list", "--limt", "3")
    assert r.exit_code == 2 and "Did you mean '--limit'" in r.stderr
    assert cloud.calls == []


def test_network_reserve_ip_takes_cloudpods_order_and_ours() -> None:
    from tests.support.mockcloud import body_of

    cloud = MockCloud()
    seen: list[object] = []

    def reserve(req):  # type: ignore[no-untyped-def]
        seen.append(body_of(req))
        return {"network": {"name": "net1"}, "reserved": body_of(req)["ips"]}
    cloud.route("POST", "/networks/net1/reserve-ip", reserve)
    assert cloud.climc("network-reserve-ip", "net1", "for the router", "10.0.0.5", "10.0.0.6").exit_code == 0
    assert cloud.climc("network-reserve-ip", "net1", "10.0.0.7", "--notes", "gw").exit_code == 0
    assert seen == [{"ips": ["10.0.0.5", "10.0.0.6"], "notes": "for the router"}, {"ips": ["10.0.0.7"], "notes": "gw"}]
    r = cloud.climc("network-reserve-ip", "net1", "only a note")
    assert r.exit_code == 2 and "at least one IP" in r.stderr


def test_every_option_of_every_command_has_help() -> None:
    import click

    from climc.main import cli

    ctx = click.Context(cli)
    bare = [(name, p.opts[-1]) for name in cli.list_commands(ctx) for p in cli.get_command(ctx, name).params
            if isinstance(p, click.Option) and not p.hidden and (not p.help or p.help.startswith("Value of "))]
    assert bare == [], "give these options a help= text (or a line in climc/help_texts.py)"


def test_quota_set_takes_sizes_with_units() -> None:
    from tests.support.mockcloud import body_of

    cloud = MockCloud()
    seen: list[object] = []

    def put(req):  # type: ignore[no-untyped-def]
        seen.append(body_of(req))
        return {"quota": {}}
    cloud.route("POST", "/quotas", put)
    cloud.route("PUT", "/quotas", put)
    r = cloud.climc("quota-set", "--memory", "2g", "--storage", "-1", "--cpu", "8")
    assert r.exit_code == 0, r.output
    assert seen == [{"quota": {"memory": 2048, "storage": -1, "cpu": 8}}]
    r = cloud.climc("quota-set", "--memory", "lots")
    assert r.exit_code == 2 and "not a size" in r.stderr


def test_usage_lines_name_positionals_as_a_user_reads_them() -> None:
    import click

    from climc.main import cli

    ctx = click.Context(cli)
    shown = [(name, p.make_metavar(ctx)) for name in cli.list_commands(ctx)
             for p in cli.get_command(ctx, name).params if isinstance(p, click.Argument)]
    internal = [(name, var) for name, var in shown if "IDENT" in var or "MACORIP" in var]
    assert internal == []
    r = MockCloud().climc("server-delete", "-f")
    assert r.exit_code == 2 and "Missing argument 'ID...'" in r.stderr


def test_desc_and_description_both_work_on_every_command() -> None:
    import click

    from climc.main import cli

    ctx = click.Context(cli)
    for name in cli.list_commands(ctx):
        opts = {o for p in cli.get_command(ctx, name).params if isinstance(p, click.Option) for o in p.opts}
        assert ("--desc" in opts) == ("--description" in opts), name
    from tests.support.mockcloud import body_of

    cloud = MockCloud()
    seen: list[object] = []

    def put(req):  # type: ignore[no-untyped-def]
        seen.append(body_of(req))
        return {"zone": {"name": "z1"}}
    cloud.route("PUT", "/zones/z1", put)
    assert cloud.climc("zone-update", "z1", "--desc", "rack 4").exit_code == 0
    assert seen == [{"zone": {"description": "rack 4"}}]
