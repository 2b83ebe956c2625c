"""ocadm agent: run the host agent (libvirt guests, bridges, DHCP) with the config `ocadm join` wrote."""
from __future__ import annotations

from pathlib import Path

import click

AGENT_DIR = Path("/var/lib/cloudpods-one-agent")


@click.command("agent")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), envvar="CLOUDPODS_AGENT_DIR",
              default=AGENT_DIR, show_default=True, help="Agent directory (agent.json, instances, image cache)")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="info",
              show_default=True)
def agent(data_dir: Path, log_level: str) -> None:
    """Run the host agent until SIGTERM/SIGINT."""
    import logging
    import os
    import signal
    import threading

    from core.agent.config import AgentConfig

    os.umask(0o077)
    cfg = AgentConfig.load(data_dir.expanduser().resolve())
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from core.agent.agent import Agent

    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    a = Agent(cfg)
    a.start()
    click.echo(f"agent of host {cfg.host_name} ({cfg.host_id}) on {cfg.libvirt_uri}, controller {cfg.auth_url}",
               err=True)
    try:
        while not done.wait(1):
            pass
    finally:
        a.stop()
