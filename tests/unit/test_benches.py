"""Every bench script starts: `python bench/<name>.py --help` exits 0.

The benches are how issue 22's figures are taken, and nothing else runs them: a refactor that moved a
helper they import (c7049c6 removed bench.region.cpu_s; bench/scale.py then failed at import) broke
one unseen until somebody needed its figures. Their imports run before argparse, so --help is enough
to catch that without running a bench.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
SCRIPTS = sorted(p for p in BENCH.glob("*.py") if p.name != "__init__.py")


def test_there_are_benches() -> None:
    assert len(SCRIPTS) >= 10, SCRIPTS


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_bench_help_runs(script: Path) -> None:
    run = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True,
                         timeout=120, cwd=BENCH.parent)
    assert run.returncode == 0, f"{script.name} --help failed:\n{run.stderr[-2000:]}"
    assert "usage:" in run.stdout
