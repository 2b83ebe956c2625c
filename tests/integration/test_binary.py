"""The one binary, alone: build it with PyInstaller, then run it on a clean PATH with no venv.

    CLOUDPODS_BINARY_DIR=dist/cloudpods-one pytest tests/integration/test_binary.py   # reuse a build

Without CLOUDPODS_BINARY_DIR the module builds a fresh bundle into a temporary directory (about a
minute or two on 2 cores), so what is tested is the code in this checkout.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from climc.command_table import COMMANDS as CLIMC
from tests.support.controller import REPO, free_port, parse_rc
from tests.support.peers import need, need_binary
from tests.support.procs import stop_process

pytestmark = pytest.mark.full
MIGRATIONS = REPO / "core" / "db" / "migrations" / "versions"


@pytest.fixture(scope="module")
def scratch() -> Iterator[Path]:
    # not pytest's tmp_path: other pytest sessions on this machine prune old basetemp dirs, and a
    # one-folder binary whose files vanish mid-run dies
    d = Path(tempfile.mkdtemp(prefix="cloudpods-binary-test-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def bundle(scratch: Path) -> Path:
    given = os.environ.get("CLOUDPODS_BINARY_DIR")
    if given:
        d = Path(given).resolve()
        need((d / "cloudpods-one").exists(), f"CLOUDPODS_BINARY_DIR={given} holds no cloudpods-one")
        return d
    try:
        import PyInstaller  # noqa: F401
    except ImportError:
        need(False, "needs PyInstaller (pip install -e '.[build]')")
    tmp = scratch / "build"
    # what the bundle must carry at least (others may add migrations while it builds)
    (scratch / "versions-before-build").write_text("\n".join(sorted(p.name for p in MIGRATIONS.glob("*.py"))))
    r = subprocess.run([str(REPO / "scripts" / "build-binary.sh"), "--dist", str(tmp / "dist"),
                        "--work", str(tmp / "work")], capture_output=True, text=True, cwd=REPO, timeout=1800)
    assert r.returncode == 0, f"build failed:\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}"
    print(r.stdout.strip().splitlines()[-1])
    return tmp / "dist" / "cloudpods-one"


@pytest.fixture(scope="module")
def home(scratch: Path) -> Path:
    (scratch / "home").mkdir()
    return scratch / "home"


def clean_env(bundle: Path, home: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Only the bundle and the system's /usr/bin:/bin on PATH; no venv, no PYTHONPATH."""
    env = {"PATH": f"{bundle}:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8",
           "XDG_CACHE_HOME": str(home / "cache")}
    env.update(extra or {})
    return env


def run(bundle: Path, home: Path, prog: str, *args: str, extra: dict[str, str] | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([prog, *args], capture_output=True, text=True, cwd=home, timeout=timeout,
                          env=clean_env(bundle, home, extra))


@pytest.fixture(scope="module")
def served(bundle: Path, home: Path) -> Iterator[dict[str, str]]:
    """`ocadm init` + `ocadm serve` from the binary; yields the admin rc environment."""
    data, port = home / "data", free_port()
    r = run(bundle, home, "ocadm", "init", "--data-dir", str(data), "--port", str(port))
    assert r.returncode == 0, r.stderr
    log = open(home / "serve.log", "wb")  # noqa: SIM115 - outlives this statement: closed in finally
    proc = subprocess.Popen(["ocadm", "serve", "--data-dir", str(data)], cwd=home, stdout=log,
                            stderr=subprocess.STDOUT, env=clean_env(bundle, home), start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (home / "serve.log").read_text()[-3000:]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ping", timeout=1).status_code == 204:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "binary controller not ready in 60 s"
            time.sleep(0.1)
        yield parse_rc(data / "rc_admin")
    finally:
        stop_process(proc, 15)
        log.close()


def test_version_names_commit_and_build_date(bundle: Path, home: Path) -> None:
    r = run(bundle, home, "ocadm", "version", "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["frozen"] is True
    if (REPO / ".git").exists() and not os.environ.get("CLOUDPODS_BINARY_DIR"):
        # the build's commit is this checkout's HEAD or, when others commit meanwhile, an ancestor of it
        commit = info["commit"].split("-")[0]
        anc = subprocess.run(["git", "-C", str(REPO), "merge-base", "--is-ancestor", commit, "HEAD"])
        assert anc.returncode == 0, f"{commit} is not in this checkout's history"
    assert info["date"][:2] == "20"
    r = run(bundle, home, "climc", "--version")
    assert r.returncode == 0 and r.stdout.startswith("climc ") and "built 20" in r.stdout
    r = run(bundle, home, "cloudpods-one", "ocadm", "--version")
    assert r.returncode == 0 and r.stdout.startswith("ocadm ")


def test_bundle_carries_migrations_and_sdks(bundle: Path, scratch: Path) -> None:
    shipped = {v.name for v in (bundle / "_internal" / "core" / "db" / "migrations" / "versions").glob("*.py")}
    before = scratch / "versions-before-build"
    expected = set(before.read_text().split()) if before.exists() else {p.name for p in MIGRATIONS.glob("*.py")}
    assert expected <= shipped, sorted(expected - shipped)
    try:
        import libvirt  # noqa: F401
    except ImportError:
        return
    assert list((bundle / "_internal").glob("libvirtmod*.so")), "libvirt-python is installed but not bundled"


def test_init_serve_endpoint_list(bundle: Path, home: Path, served: dict[str, str]) -> None:
    r = run(bundle, home, "climc", "endpoint-list", "-o", "json", extra=served)
    assert r.returncode == 0, r.stderr
    types = {e["service_type"] for e in json.loads(r.stdout)["data"]}
    assert {"identity", "compute_v2", "image"} <= types


def test_image_upload(bundle: Path, home: Path, served: dict[str, str]) -> None:
    if "image-upload" not in CLIMC:
        pytest.skip("climc image-upload is not in climc/command_table.py yet: step skipped")
    need_binary("qemu-img", "qemu-utils")
    img = home / "tiny.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(img), "64M"], check=True)
    r = run(bundle, home, "climc", "image-upload", "bin-smoke", str(img), "--format", "qcow2", extra=served)
    assert r.returncode == 0, r.stderr
    r = run(bundle, home, "climc", "image-list", "-o", "json", extra=served)
    assert r.returncode == 0, r.stderr
    assert "bin-smoke" in {i["name"] for i in json.loads(r.stdout)["data"]}


def test_completion_from_the_binary(bundle: Path, home: Path) -> None:
    r = run(bundle, home, "climc", extra={"_CLIMC_COMPLETE": "bash_complete", "COMP_WORDS": "climc endpoint-",
                                           "COMP_CWORD": "1"})
    assert r.returncode == 0, r.stderr
    assert "plain,endpoint-list" in r.stdout.splitlines()


def test_bad_input_is_one_line(bundle: Path, home: Path) -> None:
    r = run(bundle, home, "ocadm", "serve", "--data-dir", str(home / "never-initialised"))
    assert r.returncode != 0 and "Traceback" not in r.stderr and "ocadm init" in r.stderr
    r = run(bundle, home, "cloudpods-one", "what")
    assert r.returncode == 2 and "climc|ocadm" in r.stderr


def test_install_service_and_deploy_from_the_binary(bundle: Path, home: Path) -> None:
    r = run(bundle, home, "ocadm", "install-service", "--dry-run")
    assert r.returncode == 0, r.stderr
    exe = os.path.realpath(bundle / "cloudpods-one")
    assert f"ExecStart={exe} ocadm serve --data-dir /var/lib/cloudpods-one" in r.stdout
    r = run(bundle, home, "ocadm", "deploy", "k8s", "--db-url", "postgresql://u:p@db/cp", "--no-secrets")
    assert r.returncode == 0, r.stderr
    assert "kind: Deployment" in r.stdout and "kind: DaemonSet" in r.stdout
