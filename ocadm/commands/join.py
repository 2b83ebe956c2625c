"""ocadm join: enroll this host with a controller (one use of a join token) and write the agent's config."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from ocadm.commands.agent import AGENT_DIR

if TYPE_CHECKING:
    from core.agent.config import WireConfig


def _wire(value: str) -> WireConfig:
    """``WIRE=BRIDGE[:UPLINK][@ADDRESS/LEN]``."""
    from core.agent.config import WireConfig
    from core.errors import InputParameterError

    wire, sep, rest = value.partition("=")
    if not sep or not wire or not rest:
        raise InputParameterError(f"--wire {value!r}: expected WIRE=BRIDGE[:UPLINK][@ADDRESS/LEN]")
    rest, _, address = rest.partition("@")
    bridge, _, uplink = rest.partition(":")
    return WireConfig(wire=wire, bridge=bridge, uplink=uplink or None, address=address or None)


@click.command("join")
@click.option("--controller", required=True, help="The controller's URL, e.g. http://10.0.0.2:30300")
@click.option("--token", required=True, help="The join token from `ocadm token create`")
@click.option("--name", "host_name", default=None, help="Host name [default: this machine's]")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), envvar="CLOUDPODS_AGENT_DIR",
              default=AGENT_DIR, show_default=True, help="Agent directory")
@click.option("--driver", default="kvm", show_default=True,
              help="The driver this host's agent runs, by its name in drivers/registry.py")
@click.option("--libvirt-uri", default="qemu:///system", show_default=True,
              help="Hypervisor (test:///<node.xml> simulates one)")
@click.option("--domain-type", type=click.Choice(["auto", "kvm", "qemu", "test"]), default="auto", show_default=True,
              help="Guest domain type (auto: kvm when /dev/kvm works, else qemu)")
@click.option("--wire", "wires", multiple=True, metavar="WIRE=BRIDGE[:UPLINK][@ADDR/LEN]",
              help="A region wire on this host (repeatable)")
@click.option("--network-mode", type=click.Choice(["host", "none"]), default=None,
              help="host: make bridges, serve DHCP (root) [default; none for test:///]")
@click.option("--storage-capacity-mb", type=click.IntRange(0), default=0,
              help="Storage to offer [default: the data dir's filesystem size]")
@click.option("--migrate-uri", default="", help="The libvirt URI other hosts reach this host by, for live "
              "migrations into it (e.g. qemu+tcp://10.0.0.2/system) [default: none, no live migration here]")
@click.option("--migrate-address", default="", help="Where qemu streams migrating guests to (tcp://10.0.0.2) "
              "[default: libvirt's choice]")
@click.option("--metrics-listen", default="", metavar="IP:PORT",
              help="Serve this host's and its guests' Prometheus /metrics here, without a token: a loopback or "
              "management address (e.g. 127.0.0.1:9101) [default: off]")
@click.option("--force", is_flag=True, help="Replace an existing agent config")
def join(controller: str, token: str, host_name: str | None, data_dir: Path, driver: str, libvirt_uri: str,
         domain_type: str, wires: tuple[str, ...], network_mode: str | None, storage_capacity_mb: int,
         migrate_uri: str, migrate_address: str, metrics_listen: str, force: bool) -> None:
    """Enroll this host: spend a join token, write the agent config, register the host."""
    import os

    from core.agent.config import CONFIG_NAME, AgentConfig
    from core.agent.link import join as redeem
    from core.agent.local import local_host_name
    from core.errors import CloudpodsError

    os.umask(0o077)
    d = data_dir.expanduser().resolve()
    if (d / CONFIG_NAME).exists() and not force:
        # idempotent, so an init container may run it on every start; the token stays unspent
        have = AgentConfig.load(d)
        click.echo(f"Already joined as host {have.host_name} ({have.host_id}); nothing to do "
                   f"(--force re-joins with a new token).")
        return
    wire_cfgs = tuple(_wire(w) for w in wires)  # bad input fails before the token is spent
    from core.agent.config import check_migration

    check_migration(migrate_uri, migrate_address)
    if metrics_listen:
        from core.agent.config import metrics_address

        metrics_address(metrics_listen)
    from drivers.registry import get_driver

    get_driver(driver)  # an unknown driver or a missing SDK: one line, token unspent
    mode = network_mode or ("none" if libvirt_uri.startswith("test:") else "host")
    ident = redeem(controller, token, host_name or local_host_name())
    base = controller.rstrip("/")
    cfg = AgentConfig(auth_url=f"{base}/api/s/identity/v3", username=ident["username"], password=ident["password"],
                      project_name=ident["project_name"], domain_name=ident["domain_name"],
                      host_id=ident["host_id"], host_name=ident["host_name"], data_dir=str(d), driver=driver,
                      libvirt_uri=libvirt_uri, domain_type=domain_type, network_mode=mode, wires=wire_cfgs,
                      storage_capacity_mb=storage_capacity_mb, migrate_uri=migrate_uri,
                      migrate_address=migrate_address, metrics_listen=metrics_listen)
    path = cfg.save()
    click.echo(f"Joined as host {cfg.host_name} ({cfg.host_id}); agent user {cfg.username}; config {path}")
    try:
        from core.agent.agent import Agent

        a = Agent(cfg)
        try:
            host = a.register()
        finally:
            a.link.close()
            a.driver.close()
    except (CloudpodsError, ImportError, OSError) as e:
        click.echo(f"Not registered yet ({e}); `ocadm agent --data-dir {d}` registers when it starts.", err=True)
        return
    except Exception as e:  # a driver error: the config is written, say what to fix
        click.echo(f"Not registered yet ({type(e).__name__}: {e}); fix it, then run `ocadm agent`.", err=True)
        return
    click.echo(f"Registered: zone {host['zone_id']}, {host.get('cpu_free')} vCPU and "
               f"{host.get('mem_free')} MB free, status {host['host_status']}")
    click.echo(f"Next: ocadm agent --data-dir {d}   (or ocadm install-service agent)")
