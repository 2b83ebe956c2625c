"""Start-up budget: `climc --help` / `--version` import click and nothing heavy."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.support.controller import REPO

HEAVY = ("sqlalchemy", "fastapi", "uvicorn", "httpx", "rich", "libvirt", "pyVmomi", "pyghmi", "yaml", "pydantic",
         "numpy", "alembic", "cryptography")

PROBE = """
import sys, runpy
sys.argv = {argv!r}
try:
    runpy.run_module({mod!r}, run_name="__main__")
except SystemExit:
    pass
import json
print("MODULES=" + json.dumps(sorted(m.split(".")[0] for m in sys.modules)), file=sys.stderr)
"""


@pytest.mark.parametrize("mod,argv", [("climc", ["climc", "--help"]), ("climc", ["climc", "--version"]),
                                      ("ocadm", ["ocadm", "--help"])])
def test_no_heavy_imports(mod: str, argv: list[str]) -> None:
    r = subprocess.run([sys.executable, "-c", PROBE.format(argv=argv, mod=mod)], capture_output=True, text=True,
                       cwd=REPO, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    line = next(x for x in r.stderr.splitlines() if x.startswith("MODULES="))
    loaded = set(json.loads(line[len("MODULES="):]))
    assert not loaded & set(HEAVY), f"{argv} imported {sorted(loaded & set(HEAVY))}"
    assert r.stdout.strip()


def test_climc_version_answers_without_click() -> None:
    """`climc --version` is the start-up floor: climc.main answers it before importing click."""
    r = subprocess.run([sys.executable, "-c", PROBE.format(argv=["climc", "--version"], mod="climc")],
                       capture_output=True, text=True, cwd=REPO, env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    line = next(x for x in r.stderr.splitlines() if x.startswith("MODULES="))
    assert "click" not in json.loads(line[len("MODULES="):])
    assert r.stdout.startswith("climc 0.") and r.stdout.count("\n") == 1, r.stdout
