"""Hollow agents (like Kubernetes' kubemark): N simulated hosts in one process, for scale tests.

    ocadm agent --hollow 70 --data-dir /tmp/hollow --controller-data-dir ~/.local/share/cloudpods-one

Each hollow host is a full ``core.agent.Agent`` (its own service user and token, long-poll, ping,
status sync, image cache, qcow2 overlays, config drive) whose hypervisor is libvirt's test driver
on its own node file ``<data_dir>/<prefix>-<i>/node.xml``. Only the hypervisor and the host
network are simulated (``network_mode = none``); everything the controller sees is real.

The first start enrolls the hosts straight in the controller's database (as ``ocadm token
create`` + ``ocadm join`` would, and as the in-process agent does), so it needs the controller's
data dir (its config names the database); later starts reuse ``agent.json`` of each host.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.agent.config import AgentConfig, WireConfig
from core.agent.local import write_node_xml
from core.errors import InputParameterError

log = logging.getLogger("cloudpods.agent.hollow")
MAX_HOSTS = 1000


def host_dir(root: Path, prefix: str, i: int) -> Path:
    return root / f"{prefix}-{i:03d}"


def hollow_configs(root: Path, n: int, *, settings: Any | None, prefix: str = "hollow", cpus: int = 16,
                   memory_mb: int = 65536, storage_mb: int = 1024 * 1024, wire: str | None = None,
                   overrides: dict[str, Any] | None = None) -> list[AgentConfig]:
    """The configs of hollow hosts 0..n-1 under ``root``, enrolling the missing ones."""
    if not 1 <= n <= MAX_HOSTS:
        raise InputParameterError(f"--hollow: between 1 and {MAX_HOSTS} hosts, not {n}")
    root.mkdir(parents=True, exist_ok=True)
    missing = [i for i in range(n) if not (host_dir(root, prefix, i) / "agent.json").exists()]
    if missing:
        if settings is None:
            raise InputParameterError("new hollow hosts must be enrolled: pass --controller-data-dir (the "
                                      "controller's data dir, whose config names the database)")
        _enroll(root, missing, settings, prefix=prefix, cpus=cpus, memory_mb=memory_mb, storage_mb=storage_mb,
                wire=wire)
    cfgs = [AgentConfig.load(host_dir(root, prefix, i)) for i in range(n)]
    if overrides:
        import dataclasses

        cfgs = [dataclasses.replace(c, **overrides) for c in cfgs]
    return cfgs


def _enroll(root: Path, which: list[int], settings: Any, *, prefix: str, cpus: int, memory_mb: int,
            storage_mb: int, wire: str | None) -> None:
    from sqlalchemy import select

    import core.db.models  # noqa: F401  (every table mapped)
    from core.db.engine import Database, begin_write
    from core.region.defaults import DEFAULTS
    from core.region.enroll import enroll_host
    from core.region.models import Zone

    db = Database(settings.database_url)
    try:
        for i in which:
            d = host_dir(root, prefix, i)
            write_node_xml(d / "node.xml", cpus=cpus, memory_mb=memory_mb)
            name = f"{prefix}-{i:03d}"
            with db.session() as s:
                begin_write(s)
                zone = s.scalar(select(Zone).where(Zone.name == DEFAULTS.zone))
                if zone is None:
                    raise InputParameterError(f"zone {DEFAULTS.zone} is missing: run `ocadm init` first")
                creds = enroll_host(s, zone_id=zone.id, host_name=name)
            cfg = AgentConfig(auth_url=f"{settings.public_url}/api/s/identity/v3", username=creds.user_name,
                              password=creds.password, host_id=creds.host_id, host_name=creds.host_name,
                              project_name=creds.project_name, domain_name=creds.domain_name,
                              region=settings.region_id, data_dir=str(d), libvirt_uri=f"test://{d / 'node.xml'}",
                              domain_type="test", network_mode="none",
                              wires=(WireConfig(wire=wire or DEFAULTS.wire, bridge="br-hollow"),),
                              storage_name=f"{name}-local", storage_capacity_mb=storage_mb,
                              ping_interval_s=30.0, sync_interval_s=60.0, workers=2)
            cfg.save()
    finally:
        db.dispose()
    log.info("enrolled %d hollow host(s) under %s", len(which), root)


def start_hollow(cfgs: list[AgentConfig]) -> tuple[list[Any], Callable[[], None]]:
    """Start one Agent per config; returns the agents and a stop callable."""
    from concurrent.futures import ThreadPoolExecutor

    from core.agent.agent import Agent

    agents = [Agent(c) for c in cfgs]
    for a in agents:
        a.start()  # registration happens in each agent's heartbeat thread (retrying)

    def stop() -> None:
        with ThreadPoolExecutor(max_workers=16) as ex:  # each stop joins threads: in parallel
            list(ex.map(lambda a: a.stop(), agents))

    return agents, stop
