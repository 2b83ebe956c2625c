"""The one output layer: every list or show command hands its data here.

Formats: table (an ASCII box; rich draws those that must fold), kv, json, yaml, flatten-table,
flatten-kv, value. ``-c/--column`` picks columns. JSON lists are ``{"data": [...], "total", "limit",
"offset"}``; with -o json nothing else goes to stdout. rich and yaml are imported only when used
(start-up time).

Sizes: the formats a person reads (table, kv, flatten-*) show sizes with a unit (``512M``, ``10G``,
``1.5T``); json, yaml and value keep the API's raw numbers for scripts. Which fields are sizes, and
in what unit the API gives them, is the table below (Cloudpods' units: MB in the region, bytes in
glance). Column names stay the API's field names, so ``-c`` takes what a table shows. The CPU and
memory names differ by resource on purpose and are Cloudpods' wire names, which its clients read:
a server's ``vcpu_count``/``vmem_size`` (virtual), a host's ``cpu_count``/``mem_size`` (physical), a
quota's ``cpu``/``memory``. One vocabulary is a display matter here (one size format everywhere;
options take ``512m``/``2g``/MB alike), not a rename of the wire.
"""
from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable, Iterable, Sequence
from functools import wraps
from typing import Any

import click

MB = 1024 * 1024
# Region fields counted in MB (Cloudpods' units), looked up by the last part of a (flattened) key.
MB_FIELDS = frozenset({
    "vmem_size", "mem_size", "mem_reserved", "mem_used", "mem_free", "mem_commit", "memory", "used_memory",
    "host_memory", "memory_mb", "mem_mb", "total_mb", "free_mb", "disk_size", "disk", "size", "storage",
    "used_storage", "storage_size", "storage_capacity", "capacity", "used_capacity", "free_capacity",
    "min_disk", "min_ram", "storage_used", "storage_free", "storage_virtual", "actual_storage_used", "storage_waste"})
BYTE_FIELDS = frozenset({"virtual_size", "max_bytes", "used_bytes", "image_size"})
# Commands that show glance's objects, whose ``size`` is in bytes (an image's file size).
BYTE_SIZE_COMMANDS = ("image-",)
HUMAN_FORMATS = ("table", "kv", "flatten-table", "flatten-kv")


def human_size(n: float) -> str:
    """Bytes as a person reads them: 512M, 10G, 1.5T (binary units, one decimal at most)."""
    if n < 0:
        return str(n)  # -1: unlimited (quotas)
    if n == 0:
        return "0"
    for unit in ("B", "K", "M", "G", "T", "P"):
        if n < 1024 or unit == "P":
            break
        n /= 1024
    text = f"{n:.1f}".rstrip("0").rstrip(".")
    return f"{text}{unit}"


def _size_unit(key: str, command: str) -> int | None:
    """How many bytes one unit of field ``key`` is, or None when it is not a size."""
    leaf = key.rsplit(".", 1)[-1]
    if leaf in BYTE_FIELDS or (leaf == "size" and command.startswith(BYTE_SIZE_COMMANDS)):
        return 1
    return MB if leaf in MB_FIELDS else None


def _command() -> str:
    ctx = click.get_current_context(silent=True)
    return (ctx.info_name or "") if ctx is not None else ""


def display(key: str, v: Any, command: str | None = None) -> str:
    """A table cell: ``cell`` with sizes in units (see the module doc)."""
    if isinstance(v, int | float) and not isinstance(v, bool):
        unit = _size_unit(key, _command() if command is None else command)
        if unit is not None:
            return human_size(v * unit)
    if isinstance(v, dict):
        cmd = _command() if command is None else command
        return ", ".join(f"{k}={display(str(k), x, cmd)}" for k, x in v.items())
    if isinstance(v, list) and not any(isinstance(x, dict | list) for x in v):
        return cell(v)
    if isinstance(v, list):
        cmd = _command() if command is None else command
        return ", ".join(display(key, x, cmd) for x in v)
    return cell(v)


def output_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``-o`` and ``-c`` to a command; they override the global ``-o``."""
    from climc.group import OUTPUT_FORMATS

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


def _width() -> int:
    """Columns a table may take: $COLUMNS, else the terminal's, else 200 into a pipe (whole lines)."""
    import os

    env = os.environ.get("COLUMNS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    if sys.stdout.isatty():
        import shutil

        return shutil.get_terminal_size().columns
    return 200


def _rich_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> None:
    rows = [list(r) for r in rows]
    if _plain_table(headers, rows):
        return
    from rich import box
    from rich.console import Console
    from rich.table import Table

    t = Table(box=box.ASCII, show_lines=False, header_style="bold")
    for h in headers:
        t.add_column(h, overflow="fold")
    for r in rows:
        t.add_row(*[_escape(x) for x in r])
    Console(width=_width(), soft_wrap=False).print(t)


def _plain_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> bool:
    """The table exactly as rich draws it (ASCII box, bold header on a terminal) when it is simple:
    it fits the width and every cell is one line of printable ASCII. Most tables are, and importing
    rich costs more than the rest of a ``server-list``. Anything else (folding, wide characters,
    colour settings rich decides): False, and rich draws it."""
    import os

    tty = sys.stdout.isatty()
    if tty and (os.environ.get("TERM", "") in ("", "dumb", "unknown") or any(
            k in os.environ for k in ("FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"))):
        return False
    if not headers or not all(c.isascii() and c.isprintable() for r in [headers, *rows] for c in r):
        return False
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    if sum(widths) + 3 * len(widths) + 1 > _width():
        return False
    edge = "+" + "-" * (sum(widths) + 3 * len(widths) - 1) + "+"
    if tty:  # rich's bold header: each cell's padding and text styled apart
        b, e = "\x1b[1m", "\x1b[0m"
        head = "|" + "|".join(f"{b} {e}{b}{h.ljust(w)}{e}{b} {e}" for h, w in zip(headers, widths, strict=True)) + "|"
    else:
        head = "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"
    lines = [edge, head, "|" + "+".join("-" * (w + 2) for w in widths) + "|"]
    lines += ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows]
    lines.append(edge)
    click.echo("\n".join(lines))
    return True


def _fits(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> bool:
    """Whether a table is narrow enough to print without folding every header letter by letter."""
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    return sum(widths) + 3 * len(widths) + 1 <= _width()


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
        rows = [[display(c, f.get(c)) for c in cols] for f in flat]
        if _fits(cols, rows) or chosen:
            _rich_table(cols, rows)
        else:  # too wide for the terminal: each row as Field/Value, as a show prints one object
            for n, (f, row) in enumerate(zip(flat, rows, strict=True), 1):
                pairs = [(c, v) for c, v in zip(cols, row, strict=True) if c in f]
                click.echo(f"# {n}/{len(rows)} {cell(f.get('name', f.get('id', '')))}".rstrip())
                _rich_table(["Field", "Value"], pairs)
    else:
        _rich_table(cols, ([display(c, v) for c, v in _pick(i, cols).items()] for i in items))
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
            _rich_table(["Field", "Value"], ([k, display(k, v)] for k, v in flat.items()))
            return
        for k, v in flat.items():
            click.echo(f"{k}: {display(k, v)}")
        return
    _rich_table(["Field", "Value"], ([k, display(k, v)] for k, v in obj.items()))
