"""ocadm status: is every service answering, the database reachable, the schema at head?"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from ocadm.commands import data_dir_option, load_settings


@click.command("status")
@data_dir_option
@click.option("-o", "--output-format", type=click.Choice(["table", "json", "yaml"]), default="table")
def status(data_dir: Path | None, output_format: str) -> None:
    """Check services, database and migrations."""
    import httpx

    from climc.output import show_list
    from core.api.app import SERVICE_ROUTERS
    from core.config import redact_url
    from core.db.engine import Database
    from core.db.migrate import schema_state
    from core.version import VERSION

    s = load_settings(data_dir)
    rows: list[dict[str, Any]] = []
    healthy = True
    db = Database(s.database_url)
    try:
        t0 = time.monotonic()
        st = schema_state(db.engine)
        ms = (time.monotonic() - t0) * 1000
        ok = st.state == "current"
        rows.append({"component": "database", "status": "ok" if ok else st.state,
                     "detail": f"{redact_url(s.database_url)} rev {','.join(sorted(st.db)) or '-'}"
                               + ("" if ok else f" — {st.problem()}"), "ms": f"{ms:.0f}"})
        healthy &= ok
    except Exception as e:
        rows.append({"component": "database", "status": "unreachable", "detail": str(e).splitlines()[0][:120],
                     "ms": ""})
        healthy = False
    finally:
        db.dispose()
    base = f"http://{'127.0.0.1' if s.listen_host in ('0.0.0.0', '::') else s.listen_host}:{s.port}"
    with httpx.Client(timeout=3.0) as http:
        for service, prefix, _refs in SERVICE_ROUTERS:
            url = base + prefix
            t0 = time.monotonic()
            try:
                r = http.get(url + "/ping")
                v = http.get(url + "/version").text.strip() if r.status_code < 400 else ""
                ok = r.status_code < 400
                detail = f"{url} version {v}" if ok else f"{url} answered {r.status_code}"
            except httpx.HTTPError as e:
                ok, detail = False, f"{url}: {str(e) or type(e).__name__}"
            rows.append({"component": service, "status": "ok" if ok else "down", "detail": detail,
                         "ms": f"{(time.monotonic() - t0) * 1000:.0f}"})
            healthy &= ok
    ctx = click.get_current_context()
    ctx.obj = type("Out", (), {"output_format": output_format, "columns": ()})()
    show_list(rows, columns=["component", "status", "detail", "ms"])
    click.echo(f"ocadm {VERSION}: {'healthy' if healthy else 'NOT healthy'}", err=True)
    if not healthy:
        ctx.exit(1)
