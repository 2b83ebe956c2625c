"""climc: the user's command line (entry point).

Kept import-free until it knows what was asked: ``climc --version`` answers without loading click,
whose import is most of a start-up; every other command line goes to climc.group. ``cli``,
``ClimcContext``... are climc.group's, still importable from here.
"""
from __future__ import annotations

import sys
from typing import Any


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else list(argv)
    if args == ["--version"]:
        from core.version import version_text

        sys.stdout.write(f"climc {version_text()}\n")
        return
    from climc.group import run

    run(args)


def __getattr__(name: str) -> Any:
    if name in ("cli", "ClimcContext", "ClimcGroup", "OUTPUT_FORMATS"):
        from climc import group

        return getattr(group, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
