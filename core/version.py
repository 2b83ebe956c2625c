"""Version string and build facts; kept import-free so `climc --version` stays fast.

``VERSION`` is the release (setup.cfg reads it). ``build_info()`` adds the git commit and build
date: a frozen binary carries them in a ``BUILD_INFO`` file written by the build next to this
module; a source checkout reads the commit straight from ``.git`` (a few small file reads, no
``git`` process); anything else says "unknown".
"""
import os

VERSION = "0.1.0"
BUILD_INFO_FILE = "BUILD_INFO"  # "key=value" lines: commit, date (written by packaging/pyinstaller)

_cache: dict[str, str] = {}


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    except OSError:
        return ""


def _git_dir(root: str) -> str:
    dot_git = os.path.join(root, ".git")
    if os.path.isdir(dot_git):
        return dot_git
    text = _read(dot_git)  # a worktree: ".git" is a file "gitdir: PATH"
    if text.startswith("gitdir:"):
        return os.path.join(root, text[len("gitdir:"):].strip())
    return ""


def _git_commit(root: str) -> str:
    gd = _git_dir(root)
    if not gd:
        return ""
    head = _read(os.path.join(gd, "HEAD"))
    if not head.startswith("ref:"):
        return head  # detached HEAD holds the hash itself
    ref = head[len("ref:"):].strip()
    common = _read(os.path.join(gd, "commondir"))
    dirs = [gd] + ([os.path.normpath(os.path.join(gd, common))] if common else [])
    for d in dirs:
        h = _read(os.path.join(d, ref))
        if h:
            return h
    for d in dirs:
        for line in _read(os.path.join(d, "packed-refs")).splitlines():
            if line.endswith(" " + ref):
                return line.split(" ", 1)[0]
    return ""


def build_info() -> dict[str, str]:
    """{"version", "commit", "date"}; commit/date are "unknown" when nothing records them."""
    if _cache:
        return _cache
    here = os.path.dirname(os.path.abspath(__file__))
    info = {"version": VERSION, "commit": "", "date": ""}
    for line in _read(os.path.join(here, BUILD_INFO_FILE)).splitlines():
        key, _, value = line.partition("=")
        if key.strip() in ("commit", "date"):
            info[key.strip()] = value.strip()
    if not info["commit"]:
        info["commit"] = _git_commit(os.path.dirname(here))[:40]
        if info["commit"] and not info["date"]:
            info["date"] = "source checkout"
    for k in ("commit", "date"):
        info[k] = info[k] or "unknown"
    _cache.update(info)
    return _cache


def version_text() -> str:
    """``0.1.0 (commit 0e66aef1c2d3, built 2026-11-01T10:00:00Z)``: what --version prints."""
    i = build_info()
    commit = i["commit"][:12] + ("-dirty" if i["commit"].endswith("-dirty") else "")
    date = i["date"] if i["date"] in ("unknown", "source checkout") else f"built {i['date']}"
    return f"{i['version']} (commit {commit}, {date})"
