"""Guest counters from libvirt's bulk domain stats (one call for every guest), for the agent's
``/metrics`` and its usage samples.

qemu gives ``cpu.time``, ``balloon.*``, ``block.N.*`` and ``net.N.*``. libvirt's test driver gives
only ``state.*`` there, so cpu time, vCPUs and memory fall back to virDomainGetInfo (on test:///
a running guest's cpu time advances with the wall clock; a stopped one has none); disk and
network stay unknown (None) rather than invented.
"""
from __future__ import annotations

from typing import Any

import libvirt

from drivers.base import GuestStats

_STATS = (libvirt.VIR_DOMAIN_STATS_STATE | libvirt.VIR_DOMAIN_STATS_CPU_TOTAL | libvirt.VIR_DOMAIN_STATS_BALLOON
          | libvirt.VIR_DOMAIN_STATS_VCPU | libvirt.VIR_DOMAIN_STATS_INTERFACE | libvirt.VIR_DOMAIN_STATS_BLOCK)


def _sum(st: dict[str, Any], prefix: str, key: str) -> int | None:
    n = st.get(f"{prefix}.count")
    if not n:
        return None
    vals = [int(v) for i in range(int(n)) if (v := st.get(f"{prefix}.{i}.{key}")) is not None]
    return sum(vals) if vals else None


def guest_stats(conn: Any) -> list[GuestStats]:
    try:
        rows = conn.getAllDomainStats(_STATS, 0)
    except libvirt.libvirtError:  # an older libvirt refusing a group: ask for what every driver has
        rows = conn.getAllDomainStats(libvirt.VIR_DOMAIN_STATS_STATE, 0)
    out = []
    for dom, st in rows:
        try:
            running = int(st.get("state.state", 0)) == libvirt.VIR_DOMAIN_RUNNING
            cpu = st.get("cpu.time")
            vcpus = st.get("vcpu.current")
            mem = st.get("balloon.current")
            if cpu is None or vcpus is None or mem is None:
                state, _max_kib, mem_kib, nr_vcpu, cpu_ns = dom.info()
                # a stopped domain has no cpu time to speak of (the test driver answers the clock)
                cpu = cpu if cpu is not None else (cpu_ns if state == libvirt.VIR_DOMAIN_RUNNING else None)
                vcpus = vcpus if vcpus is not None else nr_vcpu
                mem = mem if mem is not None else mem_kib
                running = state == libvirt.VIR_DOMAIN_RUNNING
            out.append(GuestStats(
                id=dom.UUIDString(), name=dom.name(), running=running, vcpus=int(vcpus or 0),
                cpu_time_ns=int(cpu) if cpu is not None else None, memory_kib=int(mem) if mem is not None else None,
                memory_rss_kib=int(st["balloon.rss"]) if "balloon.rss" in st else None,
                disk_read_bytes=_sum(st, "block", "rd.bytes"), disk_write_bytes=_sum(st, "block", "wr.bytes"),
                net_rx_bytes=_sum(st, "net", "rx.bytes"), net_tx_bytes=_sum(st, "net", "tx.bytes")))
        except libvirt.libvirtError:
            continue  # the guest vanished between the list and its info
    return out
