"""The in-process agent of ``ocadm serve --with-agent`` (the embedded default).

Its host is simulated by libvirt's test driver on ``<data_dir>/agent/node.xml`` (the real libvirt
library, no hypervisor needed; core/agent/local.py). The first start enrolls the host straight in
the database (the same ``enroll_host`` a join token ends in) and writes
``<data_dir>/agent/agent.json``; later starts reuse it. It talks to the controller over HTTP like
any other agent. It lives here, above the region and the agent library, because it is both.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.agent.config import AgentConfig, WireConfig
from core.agent.local import local_host_name, write_node_xml

log = logging.getLogger("cloudpods.agent")


def local_config(settings: Any, db: Any) -> AgentConfig:
    """The in-process agent's config, enrolling its host on first use."""
    from sqlalchemy import select

    from core.db.engine import begin_write
    from core.keystone.service_users import service_user_id
    from core.region.defaults import DEFAULTS
    from core.region.enroll import binding_host, enroll_host
    from core.region.models import Zone

    data = Path(settings.data_dir) / "agent"
    if (data / "agent.json").exists():
        cfg = AgentConfig.load(data)
        with db.session() as s:
            user = service_user_id(s, cfg.username)
            if user is not None and binding_host(s, user) == cfg.host_id:
                return cfg
        log.info("the in-process agent's host is not in this database (re-initialised?): enrolling it again")
    node = data / "node.xml"
    write_node_xml(node)
    with db.session() as s:
        begin_write(s)
        zone = s.scalar(select(Zone).where(Zone.name == DEFAULTS.zone))
        if zone is None:
            raise RuntimeError(f"zone {DEFAULTS.zone} is missing: run `ocadm init` (it creates the defaults)")
        creds = enroll_host(s, zone_id=zone.id, host_name=local_host_name())
    cfg = AgentConfig(auth_url=f"{settings.public_url}/api/s/identity/v3", username=creds.user_name,
                      password=creds.password, host_id=creds.host_id, host_name=creds.host_name,
                      region=settings.region_id, data_dir=str(data), libvirt_uri=f"test://{node}",
                      network_mode="none", wires=(WireConfig(wire=DEFAULTS.wire, bridge="br-sim"),),
                      storage_name=DEFAULTS.storage, storage_capacity_mb=1024 * 1024,
                      ping_interval_s=30.0, sync_interval_s=60.0)
    cfg.save()
    return cfg


def start_local_agent(settings: Any, db: Any) -> Callable[[], None]:
    """Start the in-process agent's threads; returns its stop callable."""
    from core.agent.agent import Agent

    cfg = local_config(settings, db)
    agent = Agent(cfg)
    agent.start()
    log.info("in-process agent for host %s on %s", cfg.host_name, cfg.libvirt_uri)
    return agent.stop
