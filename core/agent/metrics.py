"""The agent's host and guest metrics: a Prometheus exposition (``metrics_listen``) and the usage
samples its pings carry to the region's history (core/metrics/history.py).

Host figures come from /proc and statvfs (this is Linux-only, like the agent); guest figures from
the hypervisor driver's optional ``guest_stats()`` (libvirt's bulk domain stats for kvm). The
exposition reads them fresh at each scrape; the samples turn counters into rates between pings.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from drivers.base import GuestStats

log = logging.getLogger("cloudpods.agent.metrics")


def read_cpu_times(path: str = "/proc/stat") -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs since boot."""
    with open(path) as f:
        parts = [float(x) for x in f.readline().split()[1:]]
    idle = parts[3] + (parts[4] if len(parts) > 4 else 0.0)  # idle + iowait
    total = sum(parts[:8])  # guest time is already inside user
    return total - idle, total


def read_meminfo(path: str = "/proc/meminfo") -> dict[str, int]:
    out = {}
    with open(path) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = int(v.split()[0])  # kB
    return out


def read_net(path: str = "/proc/net/dev") -> dict[str, tuple[int, int]]:
    """Per interface (rx bytes, tx bytes), loopback left out."""
    out = {}
    with open(path) as f:
        for line in f.readlines()[2:]:
            name, _, rest = line.partition(":")
            cols = rest.split()
            if name.strip() != "lo" and len(cols) >= 9:
                out[name.strip()] = (int(cols[0]), int(cols[8]))
    return out


def host_figures(data_dir: str) -> dict[str, float]:
    busy, total = read_cpu_times()
    mem = read_meminfo()
    st = os.statvfs(data_dir)
    net = read_net()
    return {"cpu_busy_jiffies": busy, "cpu_total_jiffies": total, "cpus": float(os.cpu_count() or 1),
            "mem_total_kib": float(mem.get("MemTotal", 0)),
            "mem_available_kib": float(mem.get("MemAvailable", mem.get("MemFree", 0))),
            "disk_total_bytes": float(st.f_blocks * st.f_frsize), "disk_free_bytes": float(st.f_bavail * st.f_frsize),
            "net_rx_bytes": float(sum(v[0] for v in net.values())),
            "net_tx_bytes": float(sum(v[1] for v in net.values())), "load_1m": os.getloadavg()[0]}


def guest_stats(driver: Any) -> list[GuestStats]:
    fn = getattr(driver, "guest_stats", None)
    return list(fn()) if fn is not None else []


class AgentCollector:
    """Prometheus families of this host and its guests, read at scrape time."""

    def __init__(self, host_name: str, data_dir: str, driver: Any) -> None:
        self.host_name, self.data_dir, self.driver = host_name, data_dir, driver

    def collect(self) -> Iterator[Metric]:
        h = host_figures(self.data_dir)
        lbl = [self.host_name]

        def gauge(name: str, doc: str, value: float) -> Metric:
            g = GaugeMetricFamily(name, doc, labels=["host"])
            g.add_metric(lbl, value)
            return g

        def counter(name: str, doc: str, value: float) -> Metric:
            c = CounterMetricFamily(name, doc, labels=["host"])
            c.add_metric(lbl, value)
            return c

        hz = float(os.sysconf("SC_CLK_TCK"))
        yield counter("cloudpods_host_cpu_busy_seconds", "CPU time the host spent busy (all CPUs)",
                      h["cpu_busy_jiffies"] / hz)
        yield counter("cloudpods_host_cpu_seconds", "CPU time elapsed on the host (all CPUs)",
                      h["cpu_total_jiffies"] / hz)
        yield gauge("cloudpods_host_cpus", "CPUs of the host", h["cpus"])
        yield gauge("cloudpods_host_load1", "1-minute load average", h["load_1m"])
        yield gauge("cloudpods_host_memory_total_bytes", "Host memory", h["mem_total_kib"] * 1024)
        yield gauge("cloudpods_host_memory_available_bytes", "Host memory available", h["mem_available_kib"] * 1024)
        yield gauge("cloudpods_host_disk_total_bytes", "Size of the agent's data filesystem", h["disk_total_bytes"])
        yield gauge("cloudpods_host_disk_free_bytes", "Free space on the agent's data filesystem", h["disk_free_bytes"])
        yield counter("cloudpods_host_network_receive_bytes", "Bytes received (all interfaces but lo)",
                      h["net_rx_bytes"])
        yield counter("cloudpods_host_network_transmit_bytes", "Bytes sent (all interfaces but lo)", h["net_tx_bytes"])
        yield from self._guests()

    def _guests(self) -> Iterator[Metric]:
        try:
            stats = guest_stats(self.driver)
        except Exception as exc:  # a hypervisor hiccup costs the guest families of one scrape, not the host's
            log.warning("guest stats unavailable: %s", exc)
            return
        labels = ["host", "server_id", "name"]
        fams: dict[str, Any] = {
            "up": GaugeMetricFamily("cloudpods_guest_running", "1 if the guest is running", labels=labels),
            "vcpus": GaugeMetricFamily("cloudpods_guest_vcpus", "vCPUs of the guest", labels=labels),
            "cpu": CounterMetricFamily("cloudpods_guest_cpu_seconds", "CPU time the guest used", labels=labels),
            "mem": GaugeMetricFamily("cloudpods_guest_memory_bytes", "Memory the guest has", labels=labels),
            "rss": GaugeMetricFamily("cloudpods_guest_memory_rss_bytes", "Host memory the guest uses", labels=labels),
            "rd": CounterMetricFamily("cloudpods_guest_disk_read_bytes", "Bytes the guest read from its disks",
                                      labels=labels),
            "wr": CounterMetricFamily("cloudpods_guest_disk_write_bytes", "Bytes the guest wrote to its disks",
                                      labels=labels),
            "rx": CounterMetricFamily("cloudpods_guest_network_receive_bytes", "Bytes the guest received",
                                      labels=labels),
            "tx": CounterMetricFamily("cloudpods_guest_network_transmit_bytes", "Bytes the guest sent", labels=labels),
        }
        for g in stats:
            lbl = [self.host_name, g.id, g.name]
            fams["up"].add_metric(lbl, 1.0 if g.running else 0.0)
            fams["vcpus"].add_metric(lbl, g.vcpus)
            for key, value, scale in (("cpu", g.cpu_time_ns, 1e-9), ("mem", g.memory_kib, 1024),
                                      ("rss", g.memory_rss_kib, 1024), ("rd", g.disk_read_bytes, 1),
                                      ("wr", g.disk_write_bytes, 1), ("rx", g.net_rx_bytes, 1),
                                      ("tx", g.net_tx_bytes, 1)):
                if value is not None:  # unknown stays absent, never a made-up 0
                    fams[key].add_metric(lbl, value * scale)
        yield from fams.values()


class MetricsServer:
    """``GET /metrics`` of this agent on ``metrics_listen`` (prometheus_client's own HTTP server)."""

    def __init__(self, address: tuple[str, int], collector: AgentCollector) -> None:
        from prometheus_client import start_http_server

        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(collector)
        self._server, self._thread = start_http_server(address[1], addr=address[0], registry=self.registry)
        self.port = int(self._server.server_address[1])

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


_RATES = (("disk_read_bps", "disk_read_bytes"), ("disk_write_bps", "disk_write_bytes"),
          ("net_rx_bps", "net_rx_bytes"), ("net_tx_bps", "net_tx_bytes"))


class Sampler:
    """Usage samples for the region's history: counters turned into rates since the previous call.

    The first call (and a guest seen for the first time) has no rate yet: those fields are left out.
    A counter that went backwards (a guest restarted) starts over rather than giving a negative rate.
    """

    def __init__(self, data_dir: str, driver: Any) -> None:
        self.data_dir, self.driver = data_dir, driver
        self._lock = threading.Lock()
        self._host_prev: tuple[float, dict[str, float]] | None = None
        self._guest_prev: dict[str, tuple[float, GuestStats]] = {}

    def sample(self) -> dict[str, Any]:
        with self._lock:
            now = time.monotonic()
            host = self._host(now)
            try:
                guests = [self._guest(now, g) for g in guest_stats(self.driver)]
            except Exception as exc:
                log.warning("guest stats unavailable: %s", exc)
                guests = []
            self._guest_prev = {k: v for k, v in self._guest_prev.items() if now - v[0] < 600}
            return {"host": host, "guests": guests}

    def _host(self, now: float) -> dict[str, float]:
        h = host_figures(self.data_dir)
        out = {"mem_mb": round((h["mem_total_kib"] - h["mem_available_kib"]) / 1024, 1),  # used
               "mem_total_mb": round(h["mem_total_kib"] / 1024, 1),
               "disk_used_percent": round(100 * (1 - h["disk_free_bytes"] / h["disk_total_bytes"]), 2)
               if h["disk_total_bytes"] else 0.0, "load_1m": round(h["load_1m"], 2)}
        prev = self._host_prev
        self._host_prev = (now, h)
        if prev is not None:
            dt = now - prev[0]
            d_total = h["cpu_total_jiffies"] - prev[1]["cpu_total_jiffies"]
            if d_total > 0:
                out["cpu_percent"] = round(100 * (h["cpu_busy_jiffies"] - prev[1]["cpu_busy_jiffies"]) / d_total, 2)
            if dt > 0:
                for rate, key in (("net_rx_bps", "net_rx_bytes"), ("net_tx_bps", "net_tx_bytes")):
                    d = h[key] - prev[1][key]
                    if d >= 0:
                        out[rate] = round(d / dt, 1)
        return out

    def _guest(self, now: float, g: GuestStats) -> dict[str, Any]:
        out: dict[str, Any] = {"id": g.id, "running": g.running}
        if g.memory_kib is not None:
            out["mem_mb"] = round((g.memory_rss_kib or g.memory_kib) / 1024, 1) if g.running else 0.0
        prev = self._guest_prev.get(g.id)
        self._guest_prev[g.id] = (now, g)
        if prev is None:
            return out
        dt = now - prev[0]
        p = prev[1]
        if dt <= 0:
            return out
        if g.cpu_time_ns is not None and p.cpu_time_ns is not None and g.cpu_time_ns >= p.cpu_time_ns:
            used_s = (g.cpu_time_ns - p.cpu_time_ns) / 1e9
            out["cpu_percent"] = round(min(100.0, 100 * used_s / dt / max(1, g.vcpus)), 2) if g.running else 0.0
        for rate, key in _RATES:
            a, b = getattr(g, key), getattr(p, key)
            if a is not None and b is not None and a >= b:
                out[rate] = round((a - b) / dt, 1)
        return out
