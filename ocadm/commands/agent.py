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
@click.option("--hollow", type=click.IntRange(1, 1000), default=None, metavar="N",
              help="Scale testing: run N simulated hosts (libvirt test:///) in this process, under DATA_DIR")
@click.option("--controller-data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              envvar="CLOUDPODS_DATA_DIR", help="--hollow: the controller's data dir, to enroll new hollow hosts")
@click.option("--hollow-prefix", default="hollow", show_default=True, help="--hollow: host name prefix")
@click.option("--hollow-cpus", type=click.IntRange(1, 1024), default=16, show_default=True,
              help="--hollow: vCPUs of each simulated host")
@click.option("--hollow-memory-mb", type=click.IntRange(256), default=65536, show_default=True,
              help="--hollow: memory of each simulated host")
def agent(data_dir: Path, log_level: str, hollow: int | None, controller_data_dir: Path | None,
          hollow_prefix: str, hollow_cpus: int, hollow_memory_mb: int) -> None:
    """Run the host agent until SIGTERM/SIGINT."""
    import logging
    import os
    import signal
    import threading

    from core.agent.config import AgentConfig

    os.umask(0o077)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    if hollow:
        _hollow(data_dir.expanduser().resolve(), hollow, controller_data_dir, hollow_prefix, hollow_cpus,
                hollow_memory_mb, log_level, done)
        return
    cfg = AgentConfig.load(data_dir.expanduser().resolve())
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from core.agent.agent import Agent

    a = Agent(cfg)
    a.start()
    click.echo(f"agent of host {cfg.host_name} ({cfg.host_id}) on {cfg.libvirt_uri}, controller {cfg.auth_url}",
               err=True)
    try:
        while not done.wait(1):
            pass
    finally:
        a.stop()


def _hollow(root: Path, n: int, controller_data_dir: Path | None, prefix: str, cpus: int, memory_mb: int,
            log_level: str, done: object) -> None:
    import logging
    import threading

    from core.hostapi.hollow import hollow_configs, start_hollow

    assert isinstance(done, threading.Event)
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = None
    if controller_data_dir is not None:
        from ocadm.commands import load_settings

        settings = load_settings(controller_data_dir.expanduser().resolve())
    cfgs = hollow_configs(root, n, settings=settings, prefix=prefix, cpus=cpus, memory_mb=memory_mb)
    agents, stop = start_hollow(cfgs)
    click.echo(f"{n} hollow host(s) {cfgs[0].host_name}..{cfgs[-1].host_name} under {root}, "
               f"controller {cfgs[0].auth_url}", err=True)
    try:
        while not done.wait(1):
            pass
    finally:
        stop()
