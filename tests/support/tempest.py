"""Run a chosen subset of OpenStack Tempest's identity API tests against a running controller.

    python -m tests.support.tempest            # uses OS_AUTH_URL / OS_PASSWORD / OS_REGION_NAME (rc_admin)

Tempest and python-yunionclient live in their own venv (scripts/setup-peers.d/compat.sh). Tempest's
admin tests assume Keystone's legacy policy, where the admin role on ANY project is a cloud admin;
Cloudpods (and Keystone with enforce_scope) give cloud-wide rights to the system scope only, so the
admin credential Tempest makes for those tests is system-scoped here (``[auth] admin_system = all``
and a two-line shim that makes its "admin" credential the "system admin" one). Everything else is
Tempest unchanged. The subset runs in about a minute at concurrency 2.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

VENV = Path(os.environ.get("CLOUDPODS_PEER_CACHE", "/var/cache/cloudpods-ci")) / "compat-venv"
# identity v3, user and admin: the areas Cloudpods' keystone shares with Keystone. Left out: OAuth1,
# trusts, domain configs, endpoint groups, project tags (not served here);
# also left out for CI time: roles, regions, endpoints, policies, list filters (with them: 70 of 81
# passed on 2026-12-07; two role tests fail on domain-role semantics).
SUBSET = (r"tempest\.api\.identity\.(v3\.test_(api_discovery|tokens|catalog|ec2_credentials|projects|domains|users"
          r"|application_credentials|access_rules)"
          r"|admin\.v3\.test_(projects|users|domains|groups|tokens|credentials|services|application_credentials))\.")
_SHIM = """try:
    from tempest.lib.common import dynamic_creds as _dc
    _dc.DynamicCredentialProvider.get_admin_creds = lambda self: self.get_credentials(['admin'], scope='system')
except Exception:
    pass
"""
_RESULT = re.compile(r"^\{\d+\} (\S+) \[[^\]]*\] \.\.\. (ok|FAILED|SKIPPED.*)$", re.M)


@dataclass
class Result:
    passed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    output: str = ""

    @property
    def rate(self) -> float:
        ran = len(self.passed) + len(self.failed)
        return len(self.passed) / ran if ran else 0.0

    def summary(self) -> str:
        return (f"tempest identity: {len(self.passed)} passed, {len(self.failed)} failed, "
                f"{len(self.skipped)} skipped; pass rate {self.rate:.0%}")


def available() -> bool:
    return (VENV / "bin" / "stestr").exists() and (VENV / "bin" / "tempest").exists()


def run(work: Path, auth_url: str, password: str, region: str = "region0", subset: str = SUBSET,
        concurrency: int = 2, timeout: float = 600) -> Result:
    work.mkdir(parents=True, exist_ok=True)
    (work / "etc").mkdir(exist_ok=True)
    (work / "shim").mkdir(exist_ok=True)
    (work / "shim" / "sitecustomize.py").write_text(_SHIM)
    (work / "etc" / "tempest.conf").write_text(f"""[DEFAULT]
log_file = {work / 'tempest.log'}
[auth]
use_dynamic_credentials = true
admin_username = admin
admin_password = {password}
admin_project_name = system
admin_domain_name = Default
admin_system = all
default_credentials_domain_name = Default
create_isolated_networks = false
[identity]
uri_v3 = {auth_url.rstrip('/')}
auth_version = v3
region = {region}
v3_endpoint_type = public
catalog_type = identity
default_domain_id = default
admin_role = admin
[identity-feature-enabled]
api_v2 = false
api_v3 = true
trust = false
access_rules = true
application_credentials = true
security_compliance = false
project_tags = false
domain_specific_drivers = false
external_idp = false
[service_available]
nova = false
glance = false
cinder = false
neutron = false
swift = false
""")
    os.chmod(work / "etc" / "tempest.conf", 0o600)  # holds the admin password
    site = next((VENV / "lib").glob("python3*/site-packages"))
    env = {**os.environ, "TEMPEST_CONFIG_DIR": str(work / "etc"), "PYTHONPATH": str(work / "shim")}
    env.pop("VIRTUAL_ENV", None)
    # discovering only the identity tests: all of Tempest's take ~30 s to import
    cmd = [str(VENV / "bin" / "stestr"), "--test-path", str(site / "tempest" / "api" / "identity"),
           "--top-dir", str(site), "run", "--concurrency", str(concurrency), subset]
    p = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=timeout)
    res = Result(output=p.stdout + p.stderr)
    for name, outcome in _RESULT.findall(res.output):
        {"ok": res.passed, "FAILED": res.failed}.get(outcome, res.skipped).append(name)
    return res


def main() -> int:
    if not available():
        print(f"tempest is not installed in {VENV} (run scripts/setup-peers.d/compat.sh)", file=sys.stderr)
        return 2
    res = run(Path(os.environ.get("TMPDIR", "/tmp")) / f"cpone-tempest-{os.getpid()}", os.environ["OS_AUTH_URL"],
              os.environ["OS_PASSWORD"], os.environ.get("OS_REGION_NAME", "region0"))
    for name in res.failed:
        print(f"FAILED {name}")
    print(res.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
