"""Shell completion of resource names and ids from the API: short, bounded, silent on failure.

    @click.argument("servers", nargs=-1, shell_complete=resource_completer("compute_v2", "/servers"))
    @click.option("--image", type=ResourceName("image", "/images"))

Pressing TAB must never hang a shell or print a traceback into it: the lookup runs in a daemon
thread that is abandoned after ``timeout`` seconds, and every error yields no candidates. Auth
comes from the same options and OS_* variables as the command itself; the client's token cache
makes repeated TABs one HTTP request each.
"""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import click
from click.shell_completion import CompletionItem

from climc.context import ClimcContext

DEFAULT_TIMEOUT = 1.5  # seconds for the whole lookup, login included
DEFAULT_LIMIT = 200

Completer = Callable[[click.Context, click.Parameter, str], list[CompletionItem]]


def _client(ctx: click.Context, timeout: float) -> Any:
    root = ctx.find_root()
    obj = root.obj if isinstance(root.obj, ClimcContext) else ClimcContext(**root.params)
    opts = dict(obj.opts)
    opts["timeout"] = timeout
    return ClimcContext(**opts).client()


CACHE_S = 5.0  # repeated TABs within this many seconds answer from the cache file, not the API


def _cache_file(ctx: click.Context, service: str, path: str) -> Any:
    import hashlib
    import os

    from core.client import cache_dir

    root = ctx.find_root()
    opts = getattr(root.obj, "opts", None) or root.params or {}
    who = "|".join(str(opts.get(k) or os.environ.get(e, "")) for k, e in (
        ("os_auth_url", "OS_AUTH_URL"), ("os_username", "OS_USERNAME"), ("os_project_name", "OS_PROJECT_NAME"),
        ("os_region_name", "OS_REGION_NAME")))
    return cache_dir() / "completion" / hashlib.sha256(f"{who}|{service}|{path}".encode()).hexdigest()[:32]


def fetch_items(ctx: click.Context, service: str, path: str, key: str, timeout: float,
                limit: int = DEFAULT_LIMIT) -> list[dict[str, Any]]:
    """The first ``limit`` items of a list call, cached ``CACHE_S`` seconds per user and path
    (raises on any failure; callers stay silent)."""
    import json
    import os
    import time

    f = _cache_file(ctx, service, path)
    try:
        if time.time() - f.stat().st_mtime < CACHE_S:
            return [i for i in json.loads(f.read_text()) if isinstance(i, dict)]
    except (OSError, ValueError):
        pass
    data = _client(ctx, timeout).get(service, path, params={"limit": limit})
    items = data.get(key, []) if isinstance(data, dict) else []
    items = [{k: i.get(k) for k in ("id", "name")} for i in items if isinstance(i, dict)]
    try:
        f.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = f.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(items, out)
        os.replace(tmp, f)
    except OSError:
        pass  # no cache: the next TAB asks again
    return items


def candidates(items: list[dict[str, Any]], incomplete: str, fields: tuple[str, ...]) -> list[CompletionItem]:
    """Names (then ids) starting with what was typed; the other field as the help text."""
    out: list[CompletionItem] = []
    seen: set[str] = set()
    for f in fields:
        for item in items:
            value = item.get(f)
            if not isinstance(value, str) or not value.startswith(incomplete) or value in seen:
                continue
            seen.add(value)
            other = next((str(item[g]) for g in fields if g != f and item.get(g)), None)
            out.append(CompletionItem(value, help=other))
    return out


def bounded(fn: Callable[[], list[CompletionItem]], timeout: float) -> list[CompletionItem]:
    """Run ``fn`` for at most ``timeout`` seconds; [] on timeout or any error."""
    result: list[list[CompletionItem]] = []

    def run() -> None:
        try:
            result.append(fn())
        except BaseException:  # completion must stay silent whatever happens
            pass

    t = threading.Thread(target=run, daemon=True, name="climc-complete")
    t.start()
    t.join(timeout)
    return result[0] if result else []


def resource_completer(service: str, path: str, key: str | None = None, *,
                       fields: tuple[str, ...] = ("name", "id"), timeout: float = DEFAULT_TIMEOUT) -> Completer:
    """A ``shell_complete=`` callback listing ``path`` of ``service`` (envelope ``key``, default the
    last path segment, e.g. "/servers" -> "servers")."""
    envelope = key or path.rstrip("/").rsplit("/", 1)[-1]

    def complete(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
        return bounded(lambda: candidates(fetch_items(ctx, service, path, envelope, timeout), incomplete, fields),
                       timeout)

    return complete


class ResourceName(click.ParamType):
    """A name-or-id parameter whose TAB completion asks the API (the value itself passes unchanged)."""

    name = "name-or-id"

    def __init__(self, service: str, path: str, key: str | None = None, **kw: Any) -> None:
        self._complete = resource_completer(service, path, key, **kw)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        return value

    def shell_complete(self, ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
        return self._complete(ctx, param, incomplete)
