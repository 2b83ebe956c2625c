"""Usage history of servers and hosts: ``server-metrics``, ``host-metrics`` (a sparkline per metric)."""
from __future__ import annotations

from typing import Any

import click

from climc.commands.compute_common import S
from climc.output import _dump, _rich_table, _settings, output_options

BARS = "▁▂▃▄▅▆▇█"
WIDTH = 40


def sparkline(values: list[float], width: int = WIDTH) -> str:
    """``values`` squeezed into ``width`` cells (each the mean of its slice), one bar per cell."""
    if not values:
        return ""
    if len(values) > width:
        step = len(values) / width
        values = [sum(s) / len(s) for i in range(width)
                  if (s := values[int(i * step):max(int((i + 1) * step), int(i * step) + 1)])]
    lo, hi = min(values), max(values)
    span = hi - lo
    return "".join(BARS[0 if span == 0 else min(len(BARS) - 1, int((v - lo) / span * len(BARS)))] for v in values)


def _fmt(v: float) -> str:
    return f"{v:.1f}" if abs(v) < 1e6 else f"{v:.3g}"


def _show(data: dict[str, Any]) -> None:
    fmt, _cols = _settings()
    if fmt in ("json", "yaml"):
        _dump(data, fmt)
        return
    rows = []
    for s in data["series"]:
        vals = [float(p[1]) for p in s["points"]]
        if not vals:
            rows.append([s["name"], "-", "-", "-", "-", "(no samples yet)"])
            continue
        rows.append([s["name"], _fmt(vals[-1]), _fmt(min(vals)), _fmt(sum(vals) / len(vals)), _fmt(max(vals)),
                     sparkline(vals)])
    res = "1 min" if data["resolution"] == 60 else "1 h"
    click.echo(f"{data['res_type']} {data.get('name') or data['id']}: last {_since(data['since'])}, {res} buckets")
    _rich_table(["metric", "last", "min", "avg", "max", "trend"], rows)


def _since(secs: int) -> str:
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if secs % n == 0:
            return f"{secs // n}{unit}"
    return f"{secs}s"


def _command(name: str, plural: str, what: str) -> click.Command:
    @click.command(name)
    @click.argument("ident", metavar=what.upper())
    @click.option("--since", default="1h", show_default=True,
                  help="How far back: 30m, 1h, 24h (1-minute buckets), up to 30d (1-hour buckets)")
    @click.option("--metric", "metrics", multiple=True, help="Only this metric (repeatable)")
    @output_options
    @click.pass_obj
    def cmd(obj: Any, ident: str, since: str, metrics: tuple[str, ...]) -> None:
        params: dict[str, Any] = {"since": since}
        if metrics:
            params["metric"] = list(metrics)
        _show(obj.client().get(S, f"/{plural}/{ident}/metrics", params=params)["metrics"])

    cmd.help = f"Show a {what}'s usage history (cpu, memory, disk, network) with a trend line"
    return cmd


server_metrics = _command("server-metrics", "servers", "server")
host_metrics = _command("host-metrics", "hosts", "host")
