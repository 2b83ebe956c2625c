"""The climc shell (bare ``climc``) driven through a real pseudo-terminal, as a person types:
the prompt, TAB completing a server's name from the API, a command's output, an error that leaves
the shell alive, Ctrl-C dropping the line being typed, history kept across sessions (Up arrow), and
Ctrl-D leaving with status 0.

pexpect gives the child a pty, so climc takes its terminal path (prompt_toolkit), not the script
path that tests/e2e/test_climc_shell.py covers. Cursor-position requests are off
(PROMPT_TOOLKIT_NO_CPR) because pexpect does not answer them as a terminal emulator would.
"""
from __future__ import annotations

import sys
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.support.controller import REPO, Controller
from tests.support.peers import need

try:
    import pexpect
except ImportError:  # a venv bootstrapped before pexpect joined the dev extra
    pexpect = None

PROMPT = "climc>"
UP, CTRL_C, CTRL_D = "\x1b[A", "\x03", "\x04"


def _shell(controller: Controller, cache: Path) -> Any:
    need(pexpect is not None, "needs pexpect (pip install -e '.[dev]')")
    env = {**controller.env, "XDG_CACHE_HOME": str(cache), "TERM": "xterm", "PROMPT_TOOLKIT_NO_CPR": "1",
           "COLUMNS": "120", "LINES": "40"}
    child = pexpect.spawn(sys.executable, ["-m", "climc"], env=env, cwd=str(REPO), encoding="utf-8",
                          dimensions=(40, 120), timeout=60)
    child.expect(PROMPT)
    return child


@pytest.fixture
def server_name(controller: Controller, cirros_image: dict[str, object]) -> str:
    """A server row to complete (no host here: it stays unscheduled, which is enough for its name)."""
    name = f"pty-{uuid.uuid4().hex[:8]}-completed"
    r = controller.api.post("/api/s/compute_v2/servers", json={"server": {
        "name": name, "vcpu_count": 1, "vmem_size": 64, "disks": ["cirros"]}})
    assert r.status_code == 200, r.text
    return name


def test_shell_in_a_terminal(controller: Controller, server_name: str, tmp_path: Path) -> None:
    child = _shell(controller, tmp_path)
    try:
        child.sendline("zone-list -o value -c name")
        child.expect("zone0")
        child.expect(PROMPT)
        # TAB completes the server's name (asked from the API); a second TAB if the first lookup
        # ran out of its time bound on a loaded machine (the completer is silent then, by design)
        prefix = server_name[:-len("-completed")]
        child.send(f"server-show {prefix}")
        child.expect(prefix)  # the echo of what was typed
        for _ in range(5):
            child.send("\t")
            if child.expect(["-completed", pexpect.TIMEOUT], timeout=10) == 0:
                break
        else:
            pytest.fail(f"TAB never completed {prefix!r}: {child.before!r}")
        child.send("\r")
        child.expect(r"vmem_size\s*\|\s*64M")  # the object, sizes with units
        child.expect(PROMPT)
        # an error is one line and the shell stays
        child.sendline(f"server-show no-such-{server_name}")
        child.expect(f"Error: .*no-such-{server_name}")
        child.expect(PROMPT)
        # Ctrl-C drops the line being typed, not the shell
        child.send("server-delete everything")
        child.send(CTRL_C)
        child.expect(PROMPT)
        child.sendline("zone-list -o value -c name")
        child.expect("zone0")
        child.expect(PROMPT)
        child.send(CTRL_D)
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0
    history = (tmp_path / "cloudpods-one" / "climc_history").read_text()
    assert f"+server-show {server_name}" in history and "server-delete everything" not in history

    # a new session recalls the last session's lines with the Up arrow
    child = _shell(controller, tmp_path)
    try:
        child.send(UP + UP + "\r")  # two lines back: the failed server-show, run again
        child.expect(f"Error: .*no-such-{server_name}")
        child.expect(PROMPT)
        child.sendline("exit")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0
