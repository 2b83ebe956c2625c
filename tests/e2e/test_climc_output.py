"""Sizes through climc against a live controller: a table shows units, -o json keeps whole numbers
(``free_capacity`` printed ``1048576.0`` before)."""
from __future__ import annotations

import json

from climc.output import human_size
from tests.support.controller import Controller


def test_storage_sizes_are_whole_mb_on_the_wire_and_units_in_tables(controller: Controller) -> None:
    r = controller.climc("storage-list", "--limit", "100", "-o", "json")
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)["data"]
    assert rows and all(isinstance(s["free_capacity"], int) for s in rows), rows
    st = rows[0]
    r = controller.climc("storage-list", "--limit", "100", "-c", "name,capacity,free_capacity")
    line = next(ln for ln in r.stdout.splitlines() if f"| {st['name']} " in ln)
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[1:] == [human_size(st["capacity"] * 2**20), human_size(st["free_capacity"] * 2**20)], line
    assert cells[1][-1] in "MGT", line
