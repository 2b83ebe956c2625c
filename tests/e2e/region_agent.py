"""The tests' host agent: the real ``core.agent.Agent``, in this process, on libvirt's test driver.

Not a double that answers anything: it is the agent ``ocadm agent`` runs (same routes, same
handlers, the real KVM driver on a private ``test://<node.xml>`` hypervisor), acting for a host
an admin created, with the admin's credentials (the agent routes let a cloud admin act for any
host). ``fail_kinds`` makes the hosted driver raise for some work kinds (a driver failure the
agent reports like any other), e.g. ``fail_kinds=("guest-deploy",)``; ``without`` names
capabilities its driver then does not declare (``without=("cold_migrate",)``).

    with TestbedAgent(ctl.env, host_id, tmp_path) as agent:
        ...                      # servers on the host deploy, start, stop ... for real
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from core.agent.agent import Agent
from core.agent.config import AgentConfig
from drivers.base import HypervisorError

NODE_XML = """<node>
  <cpu><mhz>2400</mhz><model>x86_64</model><active>{cpus}</active>
       <nodes>1</nodes><sockets>1</sockets><cores>{cpus}</cores><threads>1</threads></cpu>
  <memory>{kib}</memory>
</node>
"""

# wire kind -> the hosted-driver method it runs (for fault injection)
_KIND_METHOD = {"guest-deploy": "deploy", "guest-delete": "remove", "guest-change-config": "reconfigure",
                "guest-attach-disk": "attach_disk", "guest-detach-disk": "detach_disk",
                "guest-rebuild-root": "rebuild_root", "guest-migrate-out": "migrate_out",
                "guest-migrate-in": "migrate_in", "guest-migrate-cleanup": "migrate_cleanup",
                "guest-live-migrate-prepare": "live_migrate_prepare", "guest-live-migrate": "live_migrate"}


class _Faulty:
    """The hosted driver, except that the methods behind ``fail_kinds`` raise a driver error and
    the capabilities named in ``without`` are not declared (registration reports the rest)."""

    def __init__(self, hosted: Any, fail_kinds: set[str], without: frozenset[str] | set[str] = frozenset()) -> None:
        unknown = fail_kinds - set(_KIND_METHOD)
        if unknown:
            raise ValueError(f"cannot inject a failure into {sorted(unknown)}")
        self._hosted = hosted
        self._fail = {_KIND_METHOD[k]: k for k in fail_kinds}
        self.capabilities = frozenset(c for c in hosted.capabilities if c.value not in without)

    def __getattr__(self, name: str) -> Any:
        if name in self._fail:
            kind = self._fail[name]

            def refuse(*_a: Any, **_k: Any) -> Any:
                raise HypervisorError(f"injected failure of {kind}")
            return refuse
        return getattr(self._hosted, name)


class TestbedAgent:
    __test__ = False  # not a test class

    def __init__(self, env: dict[str, str], host_id: str, root: Path | None = None, *,
                 fail_kinds: tuple[str, ...] = (), without: tuple[str, ...] = (), host_name: str = "",
                 wires: tuple[dict[str, str], ...] = (),
                 cpus: int = 16, memory_mb: int = 65536, storage_capacity_mb: int = 1_000_000) -> None:
        self._tmp = None if root is not None else tempfile.TemporaryDirectory(prefix="cp-agent-")
        self.root = Path(root if root is not None else self._tmp.name)  # type: ignore[union-attr]
        self.root.mkdir(parents=True, exist_ok=True)
        node = self.root / "node.xml"
        node.write_text(NODE_XML.format(cpus=cpus, kib=memory_mb * 1024))
        self.cfg = AgentConfig(
            auth_url=env["OS_AUTH_URL"], username=env["OS_USERNAME"], password=env["OS_PASSWORD"],
            project_name=env.get("OS_PROJECT_NAME", "system"), domain_name=env.get("OS_USER_DOMAIN_NAME", "Default"),
            host_id=host_id, host_name=host_name or host_id, data_dir=str(self.root / "agent"),
            libvirt_uri=f"test://{node}", network_mode="none", wires=tuple(wires),  # type: ignore[arg-type]
            storage_capacity_mb=storage_capacity_mb, ping_interval_s=1.0, sync_interval_s=2.0, poll_wait_s=2)
        self.fail_kinds = set(fail_kinds)
        self.without = set(without)  # capability names this host's driver does not declare
        self.agent: Agent | None = None

    def __enter__(self) -> TestbedAgent:
        self.agent = Agent(self.cfg)
        if self.fail_kinds or self.without:
            self.agent.hosted = _Faulty(self.agent.hosted, self.fail_kinds, self.without)  # type: ignore[assignment]
        self.agent.start()
        end = time.monotonic() + 30
        while not self.agent.registered.wait(0.1):
            if time.monotonic() > end:
                raise AssertionError(f"agent of host {self.cfg.host_id} did not register within 30 s")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.agent is not None:
            self.agent.stop()
            # a long poll still in flight could take the next test's work item for this host:
            # wait until every thread of this agent is really gone
            end = time.monotonic() + 3 * self.cfg.poll_wait_s + 10
            for t in self.agent.loops.threads:
                t.join(max(0.0, end - time.monotonic()))
                assert not t.is_alive(), f"agent thread {t.name} still running"
        if self._tmp is not None:
            self._tmp.cleanup()

    @property
    def handled(self) -> int:
        return self.agent.handled if self.agent else 0
