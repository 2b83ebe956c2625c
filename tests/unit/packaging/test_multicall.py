"""The one binary acts as climc or ocadm by argv[0] or by its first argument."""
from __future__ import annotations

import subprocess
import sys

import pytest

from cloudpods_one_main import choose
from tests.support.controller import REPO


@pytest.mark.parametrize("argv,expected", [
    (["/usr/local/bin/climc", "server-list"], ("climc", ["server-list"])),
    (["ocadm", "init"], ("ocadm", ["init"])),
    (["climc-0.1", "--help"], ("climc", ["--help"])),
    (["/opt/cloudpods-one/cloudpods-one", "ocadm", "serve"], ("ocadm", ["serve"])),
    (["cloudpods-one", "climc"], ("climc", [])),
    (["cloudpods-one", "bogus"], (None, ["bogus"])),
    (["cloudpods-one"], (None, [])),
    (["climcx"], (None, [])),
])
def test_choose(argv: list[str], expected: tuple[str | None, list[str]]) -> None:
    assert choose(argv) == expected


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(REPO / "cloudpods_one_main.py"), *args], capture_output=True,
                          text=True, cwd=REPO, timeout=60)


def test_first_argument_dispatch() -> None:
    r = _run("climc", "--version")
    assert r.returncode == 0 and r.stdout.startswith("climc "), r.stderr
    r = _run("ocadm", "--help")
    assert r.returncode == 0 and "install-service" in r.stdout


def test_unknown_program_is_a_usage_error() -> None:
    r = _run("nonsense")
    assert r.returncode == 2 and "climc|ocadm" in r.stderr and "Traceback" not in r.stderr
    r = _run("--version")
    assert r.returncode == 0 and r.stdout.startswith("cloudpods-one ")
