"""TAB completes resource names from the API (cached a few seconds, silent on failure), and
`climc completion SHELL` prints the script to install."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.mockcloud import MockCloud


def _tab(cloud: MockCloud, words: str, cache: Path) -> Any:
    cword = len(words.split()) - (0 if words.endswith(" ") else 1)
    return cloud.climc(env={"_CLIMC_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": str(cword),
                            "XDG_CACHE_HOME": str(cache)})


def test_server_names_complete_and_are_cached(tmp_path: Path) -> None:
    cloud = MockCloud()
    cloud.route("GET", "/servers", {"servers": [{"id": "s1", "name": "web-1"}, {"id": "s2", "name": "web-2"},
                                                {"id": "s3", "name": "db-1"}], "total": 3})
    r = _tab(cloud, "climc server-stop web", tmp_path)
    assert r.exit_code == 0, r.output
    assert "plain,web-1" in r.stdout and "plain,web-2" in r.stdout and "db-1" not in r.stdout
    r = _tab(cloud, "climc server-show d", tmp_path)
    assert "plain,db-1" in r.stdout
    assert sum(1 for c in cloud.calls if c == ("GET", "/servers")) == 1  # the second TAB used the cache


def test_completion_is_silent_when_the_api_fails(tmp_path: Path) -> None:
    cloud = MockCloud()
    cloud.route("GET", "/networks", lambda req: httpx.Response(500, json={"code": 500, "details": "boom"}))
    r = _tab(cloud, "climc network-show ne", tmp_path)
    assert r.exit_code == 0 and r.stdout.strip() == "" and r.stderr == ""


@pytest.mark.parametrize("shell, marker", [("bash", "complete -o nosort -F"), ("zsh", "compdef"),
                                           ("fish", "complete --no-files --command climc")])
def test_completion_command_prints_the_script(shell: str, marker: str) -> None:
    r = MockCloud().climc("completion", shell)
    assert r.exit_code == 0 and marker in r.stdout and "_CLIMC_COMPLETE" in r.stdout
