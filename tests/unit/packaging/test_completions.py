"""Completions: committed scripts are current, shells get command names, API names complete quietly."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest
from click.shell_completion import ShellComplete

from climc.command_table import COMMANDS
from climc.completion import ResourceName, resource_completer
from core.cli import LazyGroup
from tests.support.controller import REPO, Controller, free_port
from tests.support.peers import need_binary

VENV_BIN = Path(sys.executable).parent


def test_committed_files_are_current() -> None:
    r = subprocess.run([sys.executable, str(REPO / "scripts" / "gen-completions.py"), "--check"],
                       capture_output=True, text=True, cwd=REPO, timeout=120)
    assert r.returncode == 0, f"stale generated files:\n{r.stdout}\nregenerate: {r.stderr}"


def test_bash_completes_command_names() -> None:
    need_binary("bash", "bash")
    if not (VENV_BIN / "climc").exists():
        pytest.skip("climc is not installed in this venv (pip install -e .)")
    prefix = sorted(COMMANDS)[0].split("-")[0] + "-"
    script = (f"source {REPO}/completions/bash/climc; COMP_WORDS=(climc {prefix}); COMP_CWORD=1; "
              "_climc_completion climc; printf '%s\\n' \"${COMPREPLY[@]}\"")
    env = {"PATH": f"{VENV_BIN}:/usr/bin:/bin", "HOME": "/tmp"}
    r = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env, timeout=60)
    expected = sorted(n for n in COMMANDS if n.startswith(prefix))
    assert sorted(r.stdout.split()) == expected, r.stderr


def test_fish_completes_command_names() -> None:
    need_binary("fish", "fish")
    if not (VENV_BIN / "climc").exists():
        pytest.skip("climc is not installed in this venv (pip install -e .)")
    prefix = sorted(COMMANDS)[0].split("-")[0] + "-"
    path = REPO / "completions" / "fish" / "climc.fish"
    env = {"PATH": f"{VENV_BIN}:/usr/bin:/bin", "HOME": "/tmp"}
    r = subprocess.run(["fish", "-c", f"source {path}; complete -C 'climc {prefix}'"], capture_output=True,
                       text=True, env=env, timeout=60)
    got = sorted(line.split("\t")[0] for line in r.stdout.splitlines())
    assert got == sorted(n for n in COMMANDS if n.startswith(prefix)), r.stderr


def test_zsh_loads_the_script() -> None:
    need_binary("zsh", "zsh")
    path = REPO / "completions" / "zsh" / "_climc"
    r = subprocess.run(["zsh", "-f", "-c", f"autoload -U compinit; compinit -u; source {path}; "
                        "print -r -- ${_comps[climc]}"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "_climc_completion", (r.stdout, r.stderr)


def _probe_group() -> click.Group:
    """climc's real root options with one probe command using the completion helpers."""
    from climc.main import cli as real

    @click.command("probe")
    @click.argument("project", shell_complete=resource_completer("identity", "/projects"))
    @click.option("--user", type=ResourceName("identity", "/users"))
    def probe(project: str, user: str | None) -> None:
        """Probe."""

    g = LazyGroup(name="climc", params=list(real.params), callback=real.callback, table={})
    g.add_command(probe)
    return g


def _complete(args: list[str], incomplete: str) -> list[str]:
    comp = ShellComplete(_probe_group(), {}, "climc", "_CLIMC_COMPLETE")
    return [c.value for c in comp.get_completions(args, incomplete)]


@pytest.fixture
def auth_env(controller: Controller, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for k in [k for k in os.environ if k.startswith("OS_")]:
        monkeypatch.delenv(k)
    for k, v in controller.env.items():
        if k.startswith("OS_"):
            monkeypatch.setenv(k, v)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    # a TAB after any climc call reuses its cached token; warm it, as login (a memory-hard password
    # hash) can take longer than the completion budget on a loaded machine
    r = controller.climc("token-issue", env={**controller.env, "XDG_CACHE_HOME": str(tmp_path)})
    assert r.returncode == 0, r.stderr


def test_names_come_from_the_api(auth_env: None) -> None:
    assert _complete(["probe"], "sys") == ["system"]
    assert "admin" in _complete(["probe", "system", "--user"], "ad")
    assert _complete(["probe"], "no-such-prefix-") == []


def _timed(monkeypatch: pytest.MonkeyPatch, url: str) -> tuple[list[str], float]:
    monkeypatch.setenv("OS_AUTH_URL", url)
    for k, v in (("OS_USERNAME", "admin"), ("OS_PASSWORD", "x"), ("OS_PROJECT_NAME", "system")):
        monkeypatch.setenv(k, v)
    t0 = time.monotonic()
    out = _complete(["probe"], "")
    return out, time.monotonic() - t0


def test_unreachable_api_is_silent_and_quick(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    out, took = _timed(monkeypatch, f"http://127.0.0.1:{free_port()}/api/s/identity/v3")
    assert out == [] and took < 2.5


def test_hung_api_is_cut_off(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    with socket.socket() as s:  # accepts connections (backlog) and never answers
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        out, took = _timed(monkeypatch, f"http://127.0.0.1:{s.getsockname()[1]}/api/s/identity/v3")
    assert out == [] and took < 2.5
