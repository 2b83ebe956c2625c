"""OpenStack Tempest's identity API tests (user and admin, a chosen subset) against our keystone.

The pass rate is printed (``-s`` or the CI log) and must not fall below the floor measured when
this was added; the discovery, token, catalog, EC2 credential and application credential (with access
rules) tests must all pass. What fails
are Cloudpods' deliberate differences (a project holding users is not deleted — also when Tempest's
cleanup deletes a project before its user —, projects acting as domains are refused, an EC2
credential's access key is not rewritten in place since its id is the key's hash) and a test that
reads the admin's project, which a system-scoped admin does not have — see the failed names.
"""
from __future__ import annotations

from pathlib import Path

from tests.support import tempest
from tests.support.controller import Controller
from tests.support.peers import need

FLOOR = 0.88  # measured 2026-12-07b: 53 of 58 (91 %); see the printed summary


def test_tempest_identity_subset(tmp_path: Path) -> None:
    need(tempest.available(), f"needs Tempest in {tempest.VENV} (scripts/setup-peers.d/compat.sh)")
    # its own controller: a failed Tempest test can leave users, projects and domains behind
    controller = Controller.start(tmp_path / "ctl")
    try:
        res = tempest.run(tmp_path / "tempest", controller.env["OS_AUTH_URL"], controller.env["OS_PASSWORD"],
                          controller.env.get("OS_REGION_NAME", "region0"))
    finally:
        controller.stop()
    print("\n" + "\n".join(f"FAILED {n}" for n in res.failed) + "\n" + res.summary())
    assert res.passed, res.output[-4000:]
    must = ("test_api_discovery", "identity.v3.test_tokens.", "test_catalog", "test_ec2_credentials",
            "test_application_credentials", "test_access_rules")
    broken = [n for n in res.failed if any(m in n for m in must)]
    assert not broken, broken
    assert res.rate >= FLOOR, res.summary() + "\n" + "\n".join(res.failed)
