"""Host facts (from the driver) → the region's host registration body, and ping usage."""
from __future__ import annotations

import dataclasses
import os
from typing import Any

from core.agent.config import AgentConfig
from core.version import VERSION
from drivers.base import Guest, GuestStatus, HostedDriver


def registration(cfg: AgentConfig, hosted: HostedDriver) -> dict[str, Any]:
    """The host row the agent registers: facts, and the driver's name, version and capabilities."""
    facts = hosted.driver.host_facts()
    storage_mb = cfg.storage_capacity_mb or _fs_total_mb(cfg.data_dir)
    nics = [n for n in facts.nics if n.kind == "physical" and n.mac] or [n for n in facts.nics if n.mac]
    return {
        "name": cfg.host_name,
        "host_type": "hypervisor",
        "access_mac": nics[0].mac if nics else "",
        "cpu_arch": facts.arch,
        "cpu_count": facts.cpu_count,
        "mem_size": facts.memory_mb,
        "cpu_cmtbound": cfg.cpu_cmtbound,
        "mem_cmtbound": cfg.mem_cmtbound,
        "storage_size": storage_mb,
        "version": VERSION,
        "driver": hosted.name,
        "driver_version": hosted.version,
        "capabilities": sorted(c.value for c in hosted.capabilities),
        "sys_info": {"facts": dataclasses.asdict(facts), "libvirt_uri": cfg.libvirt_uri,
                     "network_mode": cfg.network_mode},
        "storages": [{"name": cfg.storage, "storage_type": "local", "medium_type": "ssd", "capacity": storage_mb,
                      "mount_point": cfg.instances_dir}],
        "wires": [{"wire": w.wire, "bridge": w.bridge, "interface": w.uplink or ""} for w in cfg.wires],
    }


def usage(cfg: AgentConfig, guests: list[Guest]) -> dict[str, Any]:
    running = [g for g in guests if g.status is GuestStatus.RUNNING]
    free_mb = _fs_free_mb(cfg.data_dir)
    return {"guests": len(guests), "running": len(running),
            "vcpu_running": sum(int(g.extra.get("vcpu", 0)) for g in running),
            "memory_mb_running": sum(int(g.extra.get("memory_mb", 0)) for g in running),
            "storage_free_mb": free_mb, "load_1m": round(os.getloadavg()[0], 2)}


def _fs_total_mb(path: str) -> int:
    os.makedirs(path, exist_ok=True)
    st = os.statvfs(path)
    return st.f_blocks * st.f_frsize >> 20


def _fs_free_mb(path: str) -> int:
    try:
        st = os.statvfs(path)
    except OSError:
        return 0
    return st.f_bavail * st.f_frsize >> 20
