"""The in-process agent of ``ocadm serve --with-agent`` (the embedded default).

Its host is simulated by libvirt's test driver on ``<data_dir>/agent/node.xml`` (the real libvirt
library, no hypervisor needed). The first start enrolls the host straight in the database (the
same ``enroll_host`` a join token ends in) and writes ``<data_dir>/agent/agent.json``; later
starts reuse it. It talks to the controller over HTTP like any other agent.
"""
from __future__ import annotations

import logging
import re
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.agent.config import AgentConfig, WireConfig

log = logging.getLogger("cloudpods.agent")

NODE_XML = """<node>
  <cpu><mhz>2400</mhz><model>x86_64</model><active>{cpus}</active>
       <nodes>1</nodes><sockets>1</sockets><cores>{cpus}</cores><threads>1</threads></cpu>
  <memory>{memory_kib}</memory>
</node>
"""


def local_host_name() -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", socket.gethostname()).strip("-.") or "localhost"
    return name if name[0].isalpha() else f"host-{name}"[:63]


def write_node_xml(path: Path, *, cpus: int = 16, memory_mb: int = 65536) -> None:
    """A simulated host for libvirt's test driver (only written once: the operator may edit it)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(NODE_XML.format(cpus=cpus, memory_kib=memory_mb * 1024))


def local_config(settings: Any, db: Any) -> AgentConfig:
    """The in-process agent's config, enrolling its host on first use."""
    from sqlalchemy import select

    from core.db.engine import begin_write
    from core.hostapi.enroll import binding_host, enroll_host
    from core.keystone.service_users import service_user_id
    from core.region.defaults import DEFAULTS
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
