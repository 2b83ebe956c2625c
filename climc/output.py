"""The one output layer: every list or show command hands its data here.

Formats: table (rich), kv, json, yaml, flatten-table, flatten-kv, value. ``-c/--column`` picks
columns. JSON lists are ``{"data": [...], "total", "limit", "offset"}``; with -o json nothing else
goes to stdout. rich and yaml are imported only when used (start-up time).
"""
from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Iterable, Sequence
from functools import wraps
from typing import Any

import click


def output_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``-o`` and ``-c`` to a command; they override the global ``-o``."""
    from climc.main import OUTPUT_FORMATS

    @click.option("-o", "--output-format", "output_format_", type=click.Choice(OUTPUT_FORMATS), default=None,
                  help="Output format")
    @click.option("-c", "--column", "columns_", multiple=True, metavar="COLUMN",
                  help="Show only this column (repeatable)")
    @wraps(f)
    def wrapper(*args: Any, output_format_: str | None, columns_: tuple[str, ...], **kwargs: Any) -> Any:
        ctx = click.get_current_context()
        if ctx.obj is not None:
            if output_format_:
                ctx.obj.output_format = output_format_
            if columns_:
                ctx.obj.columns = tuple(c for col in columns_ for c in col.split(",") if c)
        return f(*args, **kwargs)

    return wrapper


def _settings() -> tuple[str, tuple[str, ...]]:
    ctx = click.get_current_context(silent=True)
    if ctx is None or ctx.obj is None:
        return "table", ()
    return getattr(ctx.obj, "output_format", "table"), tuple(getattr(ctx.obj, "columns", ()))


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    if isinstance(obj, dict):
        if not obj and prefix:
            out[prefix] = ""
        for k, v in obj.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(obj, list) and obj and any(isinstance(v, dict | list) for v in obj):
        for i, v in enumerate(obj):
            out.update(flatten(v, f"{prefix}.{i}" if prefix else str(i)))
    else:
        out[prefix] = obj
    return out


def cell(v: Any) -> str:
    """Human form of a value for tables: dicts as k=v, lists joined, None as empty."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dict):
        return ", ".join(f"{k}={cell(x)}" for k, x in v.items())
    if isinstance(v, list):
        return ", ".join(cell(x) for x in v)
    return str(v)


def check_columns(items: Sequence[dict[str, Any]], chosen: Sequence[str]) -> None:
    """``-c`` naming a column no row has is a usage error listing the ones there are."""
    if not chosen or not items:
        return
    have: dict[str, None] = {}
    for it in items:
        for k in (*it, *flatten(it)):
            have.setdefault(k, None)
    unknown = [c for c in chosen if c not in have]
    if unknown:
        top = [k for k in have if "." not in k] or list(have)
        raise click.UsageError(f"unknown column {', '.join(unknown)} (-c); available: {', '.join(top)}")


def _pick(item: dict[str, Any], cols: Sequence[str]) -> dict[str, Any]:
    flat = None
    out: dict[str, Any] = {}
    for c in cols:
        if c in item:
            out[c] = item[c]
        else:
            flat = flat if flat is not None else flatten(item)
            out[c] = flat.get(c)
    return out


def _columns_for(items: Iterable[dict[str, Any]], default: Sequence[str] | None, chosen: Sequence[str]) -> list[str]:
    if chosen:
        return list(chosen)
    if default:
        return list(default)
    seen: dict[str, None] = {}
    for it in items:
        for k in it:
            seen.setdefault(k, None)
    return list(seen)


def _dump(data: Any, fmt: str) -> None:
    if fmt == "yaml":
        import yaml

        click.echo(yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False).rstrip())
    else:
        click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def _rich_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    t = Table(box=box.ASCII, show_lines=False, header_style="bold")
    for h in headers:
        t.add_column(h, overflow="fold")
    for r in rows:
        t.add_row(*[_escape(x) for x in r])
    Console(width=None if sys.stdout.isatty() else 200, soft_wrap=False).print(t)


def _escape(s: str) -> str:
    from rich.markup import escape

    return escape(s)


def show_list(items: list[dict[str, Any]], *, columns: Sequence[str] | None = None, total: int | None = None,
              limit: int | None = None, offset: int = 0) -> None:
    fmt, chosen = _settings()
    check_columns(items, chosen)
    cols = _columns_for(items, columns, chosen)
    total = len(items) if total is None else total
    if fmt in ("json", "yaml"):
        data = [_pick(i, chosen) for i in items] if chosen else items
        _dump({"data": data, "total": total, "limit": limit or len(items), "offset": offset}, fmt)
        return
    if fmt == "value":
        for it in items:
            click.echo(" ".join(cell(v) for v in _pick(it, cols).values()))
        return
    if fmt in ("kv", "flatten-kv"):
        for it in items:
            show_object(it if not chosen else _pick(it, chosen), _in_list=True)
            click.echo("")
        return
    if fmt == "flatten-table":
        flat = [flatten(i) for i in items]
        cols = _columns_for(flat, None, chosen)
        _rich_table(cols, ([cell(f.get(c)) for c in cols] for f in flat))
    else:
        _rich_table(cols, ([cell(v) for v in _pick(i, cols).values()] for i in items))
    if limit:
        pages = max(1, math.ceil(total / limit))
        page = offset // limit + 1
        click.echo(f"***  Total: {total} Pages: {pages} Limit: {limit} Offset: {offset} Page: {page}  ***")
    else:
        click.echo(f"***  Total: {total}  ***")


def show_object(obj: dict[str, Any], *, _in_list: bool = False) -> None:
    fmt, chosen = _settings()
    if chosen and not _in_list:
        check_columns([obj], chosen)
        obj = _pick(obj, chosen)
    if fmt in ("json", "yaml") and not _in_list:
        _dump(obj, fmt)
        return
    if fmt in ("flatten-kv", "flatten-table", "value") or (fmt == "kv" and _in_list):
        flat = flatten(obj) if fmt != "kv" else obj
        if fmt == "value":
            click.echo(" ".join(cell(v) for v in flat.values()))
            return
        if fmt == "flatten-table":
            _rich_table(["Field", "Value"], ([k, cell(v)] for k, v in flat.items()))
            return
        for k, v in flat.items():
            click.echo(f"{k}: {cell(v)}")
        return
    _rich_table(["Field", "Value"], ([k, cell(v)] for k, v in obj.items()))
