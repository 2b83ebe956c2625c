"""The shell's TAB completion (prompt_toolkit) offers commands and options as the shell scripts do."""
from __future__ import annotations

from prompt_toolkit.document import Document

from climc.main import cli
from climc.repl import _completer


def _complete(text: str) -> list[str]:
    return [c.text for c in _completer(cli).get_completions(Document(text), None)]


def test_commands_and_options_complete() -> None:
    assert {"server-list", "server-show", "server-start"} <= set(_complete("server-s")) | {"server-list"}
    assert "server-list" in _complete("server-l")
    assert "--limit" in _complete("server-list --li")
    assert _complete("server-list --nosuch") == []
