"""What a person reads: sizes with units in tables (raw numbers in json/value), and a flatten-table
too wide for the terminal printed as one Field/Value table per row instead of folded headers."""
from __future__ import annotations

import json
from typing import Any

from climc.output import human_size
from tests.support.mockcloud import MockCloud

SERVER = {"id": "s1", "name": "vm1", "status": "running", "vcpu_count": 2, "vmem_size": 1536, "disk": 10240,
          "disks_info": [{"index": 0, "size": 20480}], "created_at": "2026-01-01T00:00:00Z"}


def test_human_size() -> None:
    assert [human_size(n) for n in (0, 512, 2048, 256 * 2**20, 1536 * 2**20, 2**40, -1)] == \
        ["0", "512B", "2K", "256M", "1.5G", "1T", "-1"]


def test_tables_show_units_json_and_value_stay_raw() -> None:
    cloud = MockCloud()
    cloud.route("GET", "/servers", {"servers": [SERVER], "total": 1})
    cloud.route("GET", "/servers/vm1", {"server": SERVER})
    cloud.route("GET", "/storages", {"storages": [{"id": "st1", "name": "local", "capacity": 1048576,
                                                   "used_capacity": 10240, "free_capacity": 1038336}], "total": 1})
    table = cloud.climc("server-list").stdout
    row = next(line for line in table.splitlines() if "vm1" in line)
    assert "| 1.5G " in row and "| 10G " in row and "| 2 " in row  # vCPUs are a count, not a size
    assert "1536" not in table
    shown = cloud.climc("server-show", "vm1", "-o", "flatten-table").stdout
    assert "disks_info.0.size" in shown and "20G" in shown
    assert "| 1T " in cloud.climc("storage-list").stdout and "1014G" in cloud.climc("storage-list").stdout
    data = json.loads(cloud.climc("server-list", "-o", "json").stdout)["data"][0]
    assert (data["vmem_size"], data["disk"]) == (1536, 10240)
    assert cloud.climc("server-list", "-o", "value", "-c", "vmem_size").stdout.strip() == "1536"


def test_image_sizes_are_bytes_region_sizes_are_mb() -> None:
    from tests.support.mockcloud import IMAGE

    cloud = MockCloud()
    img = {"id": "i1", "name": "cirros", "size": 13631488, "virtual_size": 117440512, "min_disk": 112}
    cloud.route("GET", IMAGE + "/images/cirros", {"image": img})
    cloud.route("GET", "/snapshots/sn1", {"snapshot": {"id": "sn1", "name": "sn1", "size": 13}})
    r = cloud.climc("image-show", "cirros")
    assert "13M" in r.stdout and "112M" in r.stdout, r.output
    assert "| 13M " in cloud.climc("snapshot-show", "sn1").stdout  # a snapshot's size is MB


def test_wide_flatten_table_prints_a_block_per_row(monkeypatch: object) -> None:
    cloud = MockCloud()
    wide = {**SERVER, **{f"field_{i}": f"value-{i}" for i in range(30)}}
    cloud.route("GET", "/servers", {"servers": [wide, {**wide, "id": "s2", "name": "vm2"}], "total": 2})
    r = cloud.climc("server-list", "-o", "flatten-table", env={"COLUMNS": "80"})
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert "# 1/2 vm1" in lines and "# 2/2 vm2" in lines
    assert max(len(line) for line in lines) <= 80
    assert any(line.startswith("| field_29 ") for line in lines)
    assert any("disks_info.0.size" in line and "20G" in line for line in lines)
    # narrow enough (or columns chosen): one table, one row per server
    r = cloud.climc("server-list", "-o", "flatten-table", "-c", "name,vmem_size", env={"COLUMNS": "80"})
    assert "# 1/2" not in r.stdout and "| vm2  | 1.5G " in r.stdout, r.stdout


def test_simple_tables_are_drawn_exactly_as_rich_draws_them_without_importing_it(monkeypatch: Any, capsys: Any) -> None:
    """climc draws one-line ASCII tables itself (importing rich costs more than the rest of a list);
    the result must be rich's, byte for byte, in a pipe and on a terminal (bold header)."""
    import io
    import random

    from rich import box
    from rich.console import Console
    from rich.table import Table

    from climc import output

    rnd = random.Random(23)
    words = ["", "a", "vm-1", "running", "10.0.0.1", "2026-12-07T08:00:00Z", "x y", " lead", "trail ", "1G", "-"]
    monkeypatch.setenv("COLUMNS", "120")
    monkeypatch.setenv("TERM", "xterm")
    for k in ("FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(k, raising=False)
    for tty in (False, True):
        monkeypatch.setattr("sys.stdout.isatty", lambda tty=tty: tty)
        for _ in range(60):
            headers = [rnd.choice(["id", "name", "status", "Field", "Value", "ips"]) for _ in range(rnd.randint(1, 6))]
            rows = [[rnd.choice(words) for _ in headers] for _ in range(rnd.randint(0, 5))]
            t = Table(box=box.ASCII, show_lines=False, header_style="bold")
            for h in headers:
                t.add_column(h, overflow="fold")
            for r in rows:
                t.add_row(*r)
            want = io.StringIO()
            Console(file=want, width=120, soft_wrap=False, force_terminal=tty).print(t)
            assert output._plain_table(headers, rows)
            assert capsys.readouterr().out == want.getvalue(), (headers, rows)
    monkeypatch.setenv("COLUMNS", "20")  # too wide: rich folds it
    assert not output._plain_table(["name"], [["x" * 30]])
    assert not output._plain_table(["name"], [["\u4e2d\u6587"]])  # wide characters
