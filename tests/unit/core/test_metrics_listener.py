"""The controller's scrape-only listener: /metrics without a token on its own port (what
``ocadm deploy k8s`` annotates for Prometheus), parsed with prometheus_client's parser."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.db.engine import Database
from core.errors import InputParameterError
from core.metrics.listener import parse_listen, start
from tests.support.controller import free_port


def test_listener_serves_metrics_without_a_token(tmp_path: Path) -> None:
    import core.db.models  # noqa: F401
    from core.db.base import Base

    db = Database(f"sqlite:///{tmp_path / 'm.db'}")
    Base.metadata.create_all(db.engine)
    port = free_port()
    app = SimpleNamespace(state=SimpleNamespace(settings=SimpleNamespace(metrics_listen=f"127.0.0.1:{port}"), db=db))
    stop = start(app)
    try:
        r = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
        assert r.status_code == 200
        names = {f.name for f in text_string_to_metric_families(r.text)}
        assert "cloudpods_servers" in names and "process_cpu_seconds" in names, names
    finally:
        stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
    assert start(SimpleNamespace(state=SimpleNamespace(settings=SimpleNamespace(metrics_listen=""))))() is None
    assert parse_listen("[::1]:9100") == ("::1", 9100)
    with pytest.raises(InputParameterError, match="metrics_listen"):
        parse_listen("9100")
