"""Every ``*-update`` verb goes through one path (compute_common.send_update): only the options given are
sent, and none given is a one-line usage error with nothing sent."""
from __future__ import annotations

from typing import Any

import httpx

from tests.support.mockcloud import MockCloud, body_of

CASES = [("eip-update", "eips", "eip", ["--bandwidth", "5"], {"bandwidth": 5}),
         ("secgroup-update", "secgroups", "secgroup", ["--desc", "d"], {"description": "d"}),
         ("secgroup-rule-update", "secgrouprules", "secgrouprule", ["--ports", "22"], {"ports": "22"}),
         ("network-update", "networks", "network", ["--name", "n2"], {"name": "n2"})]


def test_update_verbs_send_what_was_given_and_refuse_nothing() -> None:
    for verb, plural, key, args, want in CASES:
        cloud = MockCloud()
        seen: list[Any] = []

        def handler(req: httpx.Request, key: str = key, seen: list[Any] = seen) -> Any:
            seen.append(body_of(req)[key])
            return {key: {"id": "x1", **body_of(req)[key]}}
        cloud.route("PUT", rf".*/{plural}/x1", handler)
        r = cloud.climc(verb, "x1", *args)
        assert r.exit_code == 0, (verb, r.output)
        assert seen == [want], (verb, seen)
        r = cloud.climc(verb, "x1")
        assert r.exit_code == 2 and "nothing to update" in r.stderr and "Traceback" not in r.stderr, (verb, r.stderr)
        assert "Error: nothing to update: give" in r.stderr and len(seen) == 1, (verb, r.stderr)  # nothing sent
