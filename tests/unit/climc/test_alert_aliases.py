"""Issue 18's verb names (alert-create/list/show/delete, alert-history) are Cloudpods' monitor verbs under
a second name: the same requests for the same arguments, and their help names the Cloudpods verb."""
from __future__ import annotations

from typing import Any

import httpx
import pytest

from climc.command_table import COMMANDS, SHORT_NAMES
from tests.support.mockcloud import MockCloud

RULE = {"id": "r1", "name": "cpu-hot", "metric": "cpu_percent", "comparator": ">", "threshold": 80}
RECORD = {"id": "a1", "alert_name": "cpu-hot", "state": "alerting", "res_name": "vm1"}

CASES: list[tuple[str, list[str]]] = [
    ("alert-create", ["cpu-hot", "--metric", "cpu_percent", "--comparator", ">", "--threshold", "80",
                      "--period", "2m", "--for", "1m", "--reduce", "max", "--level", "fatal", "--scope", "server",
                      "--server", "vm1", "--notify-config", "hook", "--desc", "too hot"]),
    ("alert-list", ["--limit", "5", "--search", "cpu"]),
    ("alert-show", ["cpu-hot"]),
    ("alert-delete", ["cpu-hot"]),
    ("alert-history", ["--alert-id", "r1", "--state", "alerting", "--res-type", "server", "--level", "fatal",
                       "--order", "desc"]),
]


def _requests(*argv: str) -> tuple[list[tuple[str, str, Any, bytes]], Any]:
    cloud = MockCloud()
    seen: list[tuple[str, str, Any, bytes]] = []

    def record(body: Any) -> Any:
        def handler(req: httpx.Request) -> Any:
            seen.append((req.method, req.url.path, sorted(req.url.params.multi_items()), req.content))
            return body
        return handler

    cloud.route("POST", "/commonalerts", record({"commonalert": RULE}))
    cloud.route("GET", "/commonalerts", record({"commonalerts": [RULE], "total": 1}))
    cloud.route("GET", "/commonalerts/cpu-hot", record({"commonalert": RULE}))
    cloud.route("DELETE", "/commonalerts/cpu-hot", record({"commonalert": RULE}))
    cloud.route("GET", "/alertrecords", record({"alertrecords": [RECORD], "total": 1}))
    r = cloud.climc(*argv)
    assert r.exit_code == 0, (argv, r.output)
    return seen, r.output


@pytest.mark.parametrize("alias,args", CASES, ids=[c[0] for c in CASES])
def test_alias_sends_what_the_cloudpods_verb_sends(alias: str, args: list[str]) -> None:
    target = SHORT_NAMES[alias]
    assert COMMANDS[alias][0] == COMMANDS[target][0]  # one code path
    mine, out_mine = _requests(alias, *args)
    theirs, out_theirs = _requests(target, *args)
    assert mine and mine == theirs
    assert out_mine == out_theirs


def test_every_issue_verb_is_there_and_its_help_names_the_cloudpods_verb() -> None:
    assert {c[0] for c in CASES} == set(SHORT_NAMES)
    cloud = MockCloud()
    listing = cloud.climc("--help").output
    for alias, target in SHORT_NAMES.items():
        assert f"Same as Cloudpods' {target}" in COMMANDS[alias][1]
        assert alias in listing
        r = cloud.climc(alias, "--help")
        assert r.exit_code == 0 and f"Cloudpods' `{target}`" in " ".join(r.output.split()), r.output
        # the Cloudpods verb's own help does not gain the note (the alias is a copy, not an edit)
        assert "Short name of" not in cloud.climc(target, "--help").output
