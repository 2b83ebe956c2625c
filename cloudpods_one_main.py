"""The multi-call entry point of the one binary: acts as ``climc`` or ``ocadm``.

    climc ...  /  ocadm ...               (symlinks to the binary: chosen by argv[0])
    cloudpods-one climc ...               (or by the first argument)

Kept tiny and import-free until the choice is made, because every ``climc`` call pays for it.
"""
from __future__ import annotations

import os
import sys

PROGRAMS = ("climc", "ocadm")
USAGE = """usage: cloudpods-one {climc|ocadm} [ARGS]...
       (or call it through a symlink named climc or ocadm)

  climc   manage a cloudpods-one cloud (users)
  ocadm   run and operate a controller (operators)
"""


def choose(argv: list[str]) -> tuple[str | None, list[str]]:
    """The program to act as and its arguments, from argv[0]'s name or else the first argument."""
    name = os.path.basename(argv[0]) if argv else ""
    for prog in PROGRAMS:
        # "climc", "climc.exe", "climc-0.1" (versioned symlinks) all act as climc
        if name == prog or name.startswith((prog + ".", prog + "-")):
            return prog, argv[1:]
    if len(argv) > 1 and argv[1] in PROGRAMS:
        return argv[1], argv[2:]
    return None, argv[1:]


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv if argv is None else argv
    prog, args = choose(argv)
    if prog == "climc":
        from climc.main import main as climc_main

        climc_main(args)
    elif prog == "ocadm":
        from ocadm.main import main as ocadm_main

        ocadm_main(args)
    elif args[:1] in (["--version"], ["version"]):
        from core.version import version_text

        print(f"cloudpods-one {version_text()}")
    else:
        sys.stderr.write(USAGE)
        sys.exit(0 if args[:1] in (["-h"], ["--help"]) else 2)


if __name__ == "__main__":
    main()
