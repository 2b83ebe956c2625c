"""The controller's scrape-only listener (``metrics_listen = "IP:PORT"``): ``GET /metrics`` without a
token, on its own port, so a Prometheus that cannot hold an expiring keystone token scrapes the
controller while the API port keeps asking for one (``monitor:metrics:get``). Kubernetes: the pod
port ``ocadm deploy k8s`` annotates for Prometheus, not exposed by the Service.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

log = logging.getLogger("cloudpods.metrics")


def parse_listen(value: str) -> tuple[str, int]:
    from core.errors import InputParameterError

    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise InputParameterError(f"metrics_listen: expected IP:PORT, not {value!r}")
    return host.strip("[]"), int(port)


def start(app: Any) -> Callable[[], None]:
    listen = app.state.settings.metrics_listen
    if not listen:
        return lambda: None
    from prometheus_client import start_http_server

    from core.metrics.routes import Scrape

    host, port = parse_listen(listen)
    server, thread = start_http_server(port, addr=host, registry=Scrape(app.state.db))  # type: ignore[arg-type]
    log.info("metrics listener on %s:%d", host, port)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    return stop
