"""--version / ocadm version name the release, the git commit and the build date."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

from core.version import VERSION, build_info
from tests.support.controller import REPO


def _git_head() -> str:
    r = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True)
    return r.stdout.strip()


def _fresh_version_text() -> str:
    code = "from core.version import version_text; print(version_text())"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO).stdout.strip()


def test_source_checkout_reads_commit_from_git() -> None:
    before = _git_head()
    if not before:
        assert build_info()["commit"] == "unknown"
        return
    got = _fresh_version_text()
    after = _git_head()  # others may commit meanwhile in a shared checkout
    assert got in {f"{VERSION} (commit {h[:12]}, source checkout)" for h in (before, after)}


def _probe(pkg: Path) -> str:
    code = "import version; print(version.version_text())"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=pkg).stdout.strip()


def test_build_info_file_wins(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    shutil.copy(REPO / "core" / "version.py", pkg / "version.py")
    (pkg / "BUILD_INFO").write_text("commit=0123456789abcdef0123456789abcdef01234567-dirty\n"
                                    "date=2026-01-02T03:04:05Z\n")
    assert _probe(pkg) == f"{VERSION} (commit 0123456789ab-dirty, built 2026-01-02T03:04:05Z)"


def test_nothing_known_says_unknown(tmp_path: Path) -> None:
    pkg = tmp_path / "pkg"  # no BUILD_INFO, no .git above it
    pkg.mkdir()
    shutil.copy(REPO / "core" / "version.py", pkg / "version.py")
    assert _probe(pkg) == f"{VERSION} (commit unknown, unknown)"


def test_clis_show_it() -> None:
    env = {"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}
    for prog, args, prefix in (("climc", ["--version"], "climc "), ("ocadm", ["--version"], "ocadm "),
                               ("ocadm", ["version"], "ocadm ")):
        r = subprocess.run([sys.executable, "-m", prog, *args], capture_output=True, text=True, env=env, cwd=REPO)
        assert r.returncode == 0, r.stderr
        shape = re.escape(prefix + VERSION) + r" \(commit ([0-9a-f]{12}|unknown), (source checkout|unknown)\)"
        assert re.fullmatch(shape, r.stdout.strip()), r.stdout
    r = subprocess.run([sys.executable, "-m", "ocadm", "version", "--json"], capture_output=True, text=True,
                       env=env, cwd=REPO)
    import json

    info = json.loads(r.stdout)
    assert info["version"] == VERSION and info["frozen"] is False and info["commit"]
