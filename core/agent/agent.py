"""The host agent: register, long-poll work items, run them, report; ping; sync guest status.

    agent = Agent(AgentConfig.load(Path("/var/lib/cloudpods-one-agent")))
    agent.start()            # threads: poller, heartbeat (ping + full status sync), event sender
    ...
    agent.stop()

Threads, and why each: the poller holds one long-poll open and hands items to a small pool
(deploys of one batch run side by side); the heartbeat pings every ``ping_interval_s`` and
sends every guest's status every ``sync_interval_s`` (fixes drift the events missed); libvirt
lifecycle events are queued by libvirt's event thread and sent by a sender thread (never block
libvirt's loop on HTTP).
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from core.agent.config import AgentConfig, metrics_address
from core.agent.console import ConsoleBridge
from core.agent.facts import registration, usage
from core.agent.firewall import FirewallSync, firewall_backend
from core.agent.handlers import handle
from core.agent.images import ImageStore
from core.agent.link import ControllerLink, DiskTransfer
from core.agent.metrics import AgentCollector, MetricsServer, Sampler
from core.agent.network import GuestNetwork
from core.errors import CloudpodsError, ConnectionFailedError
from core.host_protocol import ContractError, error_result, guest_state
from core.loops import Loops
from drivers.base import DriverError, GuestEvent, GuestStatus, HostedDriver, HostEnv

log = logging.getLogger("cloudpods.agent")
logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per long-poll drowns the agent's log


class Backoff:
    """Exponential delays after consecutive failures: base, 2*base, ... up to ``cap``; a success
    starts over. An agent whose credentials stopped working (its user or project deleted, the
    controller's keys rotated) waits up to ``cap`` between attempts instead of hammering the
    controller (and the login rate limits) several times a second."""

    def __init__(self, base: float = 1.0, cap: float = 60.0) -> None:
        self.base, self.cap = base, cap
        self.failures = 0

    def failed(self) -> float:
        self.failures += 1
        return min(self.cap, self.base * 2.0 ** min(self.failures - 1, 32))

    def reset(self) -> None:
        self.failures = 0


def host_driver(cfg: AgentConfig, images: Any, network: Any, exchange: Any = None) -> HostedDriver:
    """The driver named in the agent's config, as this host runs it (drivers/registry.py)."""
    from drivers.registry import get_driver

    env = HostEnv(uri=cfg.libvirt_uri, data_dir=cfg.data_dir, instances_dir=cfg.instances_dir, images=images,
                  network=network, domain_type=cfg.libvirt_domain_type(), stop_timeout_s=cfg.stop_timeout_s,
                  exchange=exchange,
                  options={"console_listen": cfg.console_listen, "console_standin": dict(cfg.console_standin),
                           "migrate_uri": cfg.migrate_uri, "migrate_address": cfg.migrate_address})
    hosted: HostedDriver = get_driver(cfg.driver).for_host(env)
    hosted.validate()
    return hosted


# the region's last record of a server -> the guest state reconcile restores ("unknown:<power>":
# a server the region lost track of, e.g. while this host was offline, by its last power status)
_WANTED: dict[str, GuestStatus] = {
    "running": GuestStatus.RUNNING, "suspend": GuestStatus.SUSPENDED,
    "unknown:on": GuestStatus.RUNNING, "unknown:suspend": GuestStatus.SUSPENDED,
}


class Agent:
    def __init__(self, cfg: AgentConfig, *, link: ControllerLink | None = None) -> None:
        self.cfg = cfg
        self.link = link or ControllerLink(cfg)
        self.network = GuestNetwork(cfg)
        self.firewall = FirewallSync(firewall_backend(cfg.firewall, cfg.network_mode, cfg.firewall_table,
                                                      cfg.firewall_netns),
                                     cfg.firewall_table, self.link.secgroups, None)
        self.images = ImageStore(cfg, self.link.image)
        self.hosted = host_driver(cfg, self.images, self.network, DiskTransfer(self.link))
        self.driver = self.hosted.driver
        self.consoles = ConsoleBridge(self.hosted, self.link)
        # the name of a guest nic's port on this host (a tap), for rules bound to ports
        self.firewall.port_name = getattr(self.hosted, "port_name", None) or self.firewall.port_name
        if not self.firewall.backend.enforcing:
            log.warning("security groups are NOT enforced on this host: %s", self.firewall.backend.reason)
        self.pool = ThreadPoolExecutor(max_workers=cfg.workers, thread_name_prefix="agent-work")
        # the agent's threads (poll, heartbeat, events, firewall) and their one stop event
        self.loops = Loops(log)
        self._stop = self.loops.stopping
        self._events: queue.Queue[GuestEvent] = queue.Queue(maxsize=10000)
        self._inflight = threading.BoundedSemaphore(cfg.workers * 2)
        # what the hypervisor says and what reports say must reach the region in the order they
        # were true: a status read (sync, event) and its post hold this lock, and so does a report
        self._order = threading.Lock()
        # guests with a work item running or being reported: their events wait until the report is in
        # (it carries the guest's state after the item; an event POST in between only delays it)
        self._busy: dict[str, int] = {}
        self._deferred: set[str] = set()
        self._busy_lock = threading.Lock()
        # delivery is at least once (core.host_protocol, WorkAck): the ids of items held here (queued
        # or running) and the results of the last ones finished, so that a redelivered item is not run twice
        self._held: set[str] = set()
        self._finished: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._held_lock = threading.Lock()
        self.registered = threading.Event()
        self.heartbeat_backoff = Backoff(1.0, cfg.backoff_max_s)
        self.handled = 0  # work items reported (tests, bench)
        self.restore_problems: dict[str, str] = {}  # server id -> why restore() could not bring it back
        self.sampler = Sampler(cfg.data_dir, self.driver)  # usage samples each ping carries (history)
        self.metrics: MetricsServer | None = None

    # --- lifecycle -----------------------------------------------------------------------------

    def start(self) -> None:
        import os

        os.makedirs(self.cfg.instances_dir, mode=0o700, exist_ok=True)
        os.makedirs(self.cfg.image_dir, mode=0o700, exist_ok=True)
        # guests the hypervisor lost are re-defined (stopped) now; what runs is decided at
        # registration, with the region's record (reconcile)
        self.restore_problems = dict(self.hosted.restore())
        try:
            self.driver.watch_events(self._on_event)
        except DriverError as exc:
            log.warning("no lifecycle events (%s); relying on the periodic sync", exc)
        for name, fn in (("agent-poll", self._poll_loop), ("agent-heartbeat", self._heartbeat_loop),
                         ("agent-events", self._event_loop),
                         ("agent-firewall", lambda: self.firewall.run(self._stop, self.registered))):
            self.loops.loop(name, fn)
        if self.cfg.metrics_listen:
            self.metrics = MetricsServer(metrics_address(self.cfg.metrics_listen),
                                         AgentCollector(self.cfg.host_name, self.cfg.data_dir, self.driver))
            log.info("metrics on http://%s:%d/metrics", metrics_address(self.cfg.metrics_listen)[0], self.metrics.port)

    def stop(self) -> None:
        self._stop.set()
        if self.metrics is not None:
            self.metrics.stop()
            self.metrics = None
        self.firewall.kick()  # its thread wakes and sees the stop (the ruleset stays: guests stay protected)
        self.loops.stop(1)  # daemon threads: a long poll in flight is abandoned, not waited for
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.network.close()
        self.link.close()
        self.hosted.close()

    def wait(self) -> None:
        while not self._stop.wait(1):
            pass

    # --- registration and heartbeat --------------------------------------------------------------

    def register(self) -> dict[str, Any]:
        host = self.link.register(registration(self.cfg, self.hosted))
        log.info("registered as host %s (%s) in zone %s", host["name"], host["id"], host["zone_id"])
        self.reconcile()  # before work items flow: no start of ours races a user's action
        self.firewall.kick()  # the host's rules as the region has them now
        self.registered.set()
        return host

    def reconcile(self) -> dict[str, list[str]]:
        """Make the hypervisor match what the region last recorded for this host's guests.

        Guests the region has as running (or suspended) that are stopped here — re-defined by
        ``restore`` after the hypervisor lost them, or a host that rebooted — are started (and
        suspended); a guest the region expects that this host cannot produce is reported absent
        with the reason, which the server keeps (``status_reason``). Servers a task holds are
        left to that task. Returns {"started": [...], "lost": [...]} (server ids).
        """
        out: dict[str, list[str]] = {"started": [], "lost": []}
        try:
            expected = self.link.guests_expected()
        except (CloudpodsError, OSError) as exc:
            log.warning("cannot ask the region which guests this host holds (%s); not reconciling", exc)
            return out
        present = {g.id: g.status for g in self.driver.list_guests()}
        lost = []
        for e in expected:
            sid = str(e["id"])
            if e.get("active_task_id"):
                continue
            if sid not in present:
                why = (self.restore_problems.get(sid)
                       or "the hypervisor has no such guest and this host kept nothing to re-define it from")
                lost.append({"id": sid, "status": "absent",
                             "reason": f"guest lost on host {self.cfg.host_name}: {why}"})
                continue
            status = str(e.get("status"))
            want = _WANTED.get(f"unknown:{e.get('power_status')}" if status == "unknown" else status)
            if want and present[sid] in (GuestStatus.STOPPED, GuestStatus.CRASHED):
                try:
                    self.driver.start_guest(sid)
                    if want is GuestStatus.SUSPENDED:
                        self.driver.suspend_guest(sid)
                    out["started"].append(sid)
                    log.info("started guest %s (%s): the region last recorded it %s", e.get("name"), sid,
                             e.get("status"))
                except DriverError as exc:
                    lost.append({"id": sid, "status": guest_state(self.driver.get_guest(sid).status).value,
                                 "reason": f"cannot start it again on host {self.cfg.host_name}: {exc}"})
        if lost:
            for g in lost:
                log.warning("guest %s: %s", g["id"], g["reason"])
            try:
                with self._order:
                    self.link.guests(lost, full=False)
                out["lost"] = [g["id"] for g in lost]
            except (CloudpodsError, OSError) as exc:
                log.warning("cannot report %d lost guest(s): %s", len(lost), exc)
        return out

    def _heartbeat_loop(self) -> None:
        backoff = self.heartbeat_backoff
        while not self._stop.is_set() and not self.registered.is_set():
            try:
                self.register()
                backoff.reset()
            except (CloudpodsError, DriverError, OSError) as exc:
                delay = backoff.failed()
                log.warning("cannot register yet (%s); retrying in %.0f s", exc, delay)
                self._stop.wait(delay)
        next_ping = next_sync = 0.0
        while not self._stop.is_set():
            now = time.monotonic()
            try:
                if now >= next_sync:
                    self.sync_all()
                    self.firewall.kick(full=True)  # repairs a ruleset changed behind the agent's back
                    next_sync = now + self.cfg.sync_interval_s
                if now >= next_ping:
                    use = {**usage(self.cfg, self.driver.list_guests()), "firewall": self.firewall.status()}
                    if self.link.ping(use, self.sampler.sample()).get("register"):
                        self.register()  # the region lacks our driver and capabilities (upgraded controller)
                    next_ping = now + self.cfg.ping_interval_s
                backoff.reset()
            except (CloudpodsError, DriverError, OSError) as exc:
                # a failed sync or ping is retried after a growing delay, never in a tight loop
                delay = backoff.failed()
                log.warning("heartbeat failed (%d in a row; next try in %.0f s): %s", backoff.failures, delay, exc)
                next_ping = now + delay  # the ping is what tells us we are back
                next_sync = max(next_sync, now + delay)
            self._stop.wait(max(0.05, min(next_ping, next_sync) - time.monotonic()))

    def sync_all(self) -> list[dict[str, Any]]:
        """Every guest's status to the region; servers of this host it lacks become unknown."""
        with self._order:
            guests = [{"id": g.id, "status": guest_state(g.status).value} for g in self.driver.list_guests()]
            changed = self.link.guests(guests, full=True)
        for c in changed:
            log.info("status of %s (%s) corrected to %s", c["name"], c["id"], c["status"])
        return changed

    # --- lifecycle events ------------------------------------------------------------------------

    def _on_event(self, ev: GuestEvent) -> None:
        try:
            self._events.put_nowait(ev)
        except queue.Full:  # the periodic sync repairs what is dropped here
            log.warning("event queue full; dropping %s of %s", ev.event, ev.name)

    def _event_loop(self) -> None:
        while not self._stop.is_set():
            try:
                ev = self._events.get(timeout=0.5)
            except queue.Empty:
                continue
            batch = {ev.guest_id: ev}
            while len(batch) < 100:  # coalesce a burst; the latest status per guest wins
                try:
                    e = self._events.get_nowait()
                except queue.Empty:
                    break
                batch[e.guest_id] = e
            if not self.registered.is_set():
                continue
            with self._busy_lock:
                later = {gid for gid in batch if gid in self._busy}
                self._deferred |= later
            self._post_status([gid for gid in batch if gid not in later])

    def _post_status(self, ids: list[str]) -> None:
        """The current status of these guests to the region (after events, or a deferred event)."""
        if ids:
            try:
                with self._order:
                    # the guest's status now, not the event's: a late event must not undo a newer report
                    now = []
                    for gid in ids:
                        try:
                            now.append({"id": gid, "status": guest_state(self.driver.get_guest(gid).status).value})
                        except DriverError:
                            continue  # deleted meanwhile: the delete task settles that server
                    if now:
                        self.link.guests(now, full=False)
            except (CloudpodsError, DriverError) as exc:
                log.warning("cannot report %d guest event(s): %s", len(ids), exc)

    # --- work items ------------------------------------------------------------------------------

    def _poll_loop(self) -> None:
        self.registered.wait()
        backoff = Backoff(0.5, self.cfg.backoff_max_s)
        seen: int | None = None  # the secgroup_version the last poll returned
        while not self._stop.is_set():
            try:
                items, consoles, version, rules = self.link.poll(wait=self.cfg.poll_wait_s, limit=self.cfg.workers,
                                                                 secgroup_version=seen)
                if self._stop.is_set():  # stopping: what came is not acknowledged, so it goes out again soon
                    return
                seen = version
                if version is not None and version != self.firewall.applied_version:
                    self.firewall.kick(spec=rules)  # the region changed this host's security groups
                backoff.reset()
            except ConnectionFailedError as exc:
                delay = backoff.failed()
                log.warning("controller unreachable (%s); retrying in %.1f s", exc, delay)
                self._stop.wait(delay)
                continue
            except CloudpodsError as exc:
                delay = backoff.failed()
                log.warning("polling work items failed (%s); retrying in %.1f s", exc, delay)
                self._stop.wait(delay)
                continue
            for c in consoles:  # each session its own thread: a console lives long, work items do not
                threading.Thread(target=self.consoles.serve, args=(c,), name=f"console-{str(c.get('id'))[:8]}",
                                 daemon=True).start()
            for wi in self._accept(items):
                self._inflight.acquire()  # at most 2x workers items fetched and not yet done
                self.pool.submit(self._run_item, wi)

    FINISHED_KEPT = 512  # results remembered for redeliveries (an item is redelivered within minutes at most)

    def _accept(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Acknowledge what a poll brought; the items to run. An id already held is skipped and one
        already finished is reported again (its report was lost), never run twice."""
        if not items:
            return []
        new, again = [], []
        with self._held_lock:
            for wi in items:
                wid = str(wi["id"])
                if wid in self._held:
                    continue
                if wid in self._finished:
                    again.append((wi, self._finished[wid]))
                    continue
                self._held.add(wid)
                new.append(wi)
        try:
            self.link.ack([str(wi["id"]) for wi in items])
        except (CloudpodsError, OSError) as exc:  # unacknowledged: they come again and are skipped then
            log.warning("cannot acknowledge %d work item(s) (%s); the region will hand them out again", len(items), exc)
        for wi, result in again:
            log.info("%s for task %s came again: reporting its result again", wi["kind"], wi["task_id"])
            self.pool.submit(self._report, wi, result, False)
        return new

    def _run_item(self, wi: dict[str, Any]) -> None:
        result: dict[str, Any] | None = None
        payload = wi.get("payload")
        server = payload.get("server") if isinstance(payload, dict) else None
        sid = str(server.get("id") or "") if isinstance(server, dict) else ""
        if sid:
            with self._busy_lock:
                self._busy[sid] = self._busy.get(sid, 0) + 1
        try:
            t0 = time.monotonic()
            try:
                result = handle(self.hosted, str(wi["kind"]), wi.get("payload"))
                self._persist(wi)
            except Exception as exc:  # every failure becomes the task's reason
                if not isinstance(exc, (DriverError, CloudpodsError, ContractError, ValueError, OSError)):
                    log.exception("work item %s (%s) failed", wi["id"], wi["kind"])
                reason = getattr(exc, "details", None) or str(exc) or type(exc).__name__
                result = error_result(f"{wi['kind']}: {reason}"[:2000])
            log.info("%s for task %s: %s in %.0f ms", wi["kind"], wi["task_id"],
                     "failed" if result.get("__status__") == "error" else "done", (time.monotonic() - t0) * 1000)
            self._report(wi, result)
            # a guest built or gone: its ports' rules (and rate limits) now, from the rules the poll brought
            self.firewall.kick(refetch=False)
        finally:
            with self._held_lock:
                self._held.discard(str(wi["id"]))
                if result is not None:
                    self._finished[str(wi["id"])] = result
                    while len(self._finished) > self.FINISHED_KEPT:
                        self._finished.popitem(last=False)
            self._inflight.release()
            if sid:
                with self._busy_lock:
                    self._busy[sid] -= 1
                    deferred = not self._busy[sid] and sid in self._deferred
                    if not self._busy[sid]:
                        del self._busy[sid]
                        self._deferred.discard(sid)
                if deferred:  # what happened to it after the item's own reading
                    self._post_status([sid])

    def _persist(self, wi: dict[str, Any]) -> None:
        """The guest as it is after this item, kept on the host for restore (a gone guest: no-op)."""
        payload = wi.get("payload")
        server = payload.get("server") if isinstance(payload, dict) else None
        if not isinstance(server, dict) or not server.get("id"):
            return
        try:
            self.hosted.persist(str(server["id"]))
        except (DriverError, OSError) as exc:  # the work is done; only a later restore would miss it
            log.warning("cannot keep the description of guest %s: %s", server["id"], exc)

    def _report(self, wi: dict[str, Any], result: dict[str, Any], first: bool = True) -> None:
        for attempt in range(5):
            try:
                with self._order:
                    self.link.report(str(wi["task_id"]), str(wi["id"]), result)
                self.handled += first
                return
            except ConnectionFailedError as exc:
                log.warning("report of task %s failed (%s); retrying", wi["task_id"], exc)
                if self._stop.wait(0.5 * (attempt + 1)):
                    return
            except CloudpodsError as exc:  # the task moved on (e.g. a redelivered item already reported)
                log.warning("report of task %s refused: %s", wi["task_id"], exc)
                return


__all__ = ["Agent", "host_driver"]
