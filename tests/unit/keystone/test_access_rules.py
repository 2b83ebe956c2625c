"""Access rule matching (Keystone's globs: ``*`` one path segment, ``**`` any number)."""
from __future__ import annotations

from core.keystone.app_creds import request_allowed

RULES = (("r1", "compute_v2", "/servers/*/ips", "GET"), ("r2", "image", "/v2/images/**", "DELETE"),
         ("r3", "identity", "/v3/users", "GET"))


def test_one_segment_star() -> None:
    assert request_allowed(RULES, "GET", "/api/s/compute_v2/servers/abc/ips")
    assert not request_allowed(RULES, "GET", "/api/s/compute_v2/servers/abc/def/ips")
    assert not request_allowed(RULES, "POST", "/api/s/compute_v2/servers/abc/ips")


def test_double_star_and_exact_paths() -> None:
    assert request_allowed(RULES, "DELETE", "/api/s/image/v2/images/a/b/c")
    assert request_allowed(RULES, "GET", "/api/s/identity/v3/users/")
    assert not request_allowed(RULES, "GET", "/api/s/identity/v3/users/x")


def test_service_must_match_and_paths_are_not_regexes() -> None:
    assert not request_allowed(RULES, "GET", "/api/s/image/servers/abc/ips")
    assert not request_allowed((("r", "identity", "/v3/user.", "GET"),), "GET", "/api/s/identity/v3/users")
    assert not request_allowed(RULES, "GET", "/healthz")
