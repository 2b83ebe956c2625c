"""Security groups written into clouds: what a cloud zone's host must enforce, pushed by the executor.

A cloud's zone is an executor host. Every change that alters what a host enforces already bumps
its ``secgroup_version`` (core/region/secgroups.py); for a host whose driver pushes security groups
(drivers.base ``SecgroupPushing``, e.g. AWS: each group an EC2 security group in the instances'
VPC), one replica (DB lease ``executor:secgroups``) builds the groups of the host's servers, calls
the driver outside any transaction and records the version it pushed on the host
(``sys_info.secgroup_pushed``), so a replica taking the lease over does not push it again. Servers
still deploying (no instance yet) make it try again shortly; a cloud error is kept on the host
(``sys_info``) and retried with a back-off. A replica that finds the lease held waits a lease
period before asking again.
"""
from __future__ import annotations

import logging
import time
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.db.engine import begin_write
from core.region.models import GuestSecgroup, Host, Secgroup, SecgroupRule, Server
from drivers.base import CloudSecgroupRule, SecgroupPushing, SecgroupSpec

log = logging.getLogger("cloudpods.cloudsecgroups")

PUSHED_KEY = "secgroup_pushed"  # in Host.sys_info: the secgroup_version last pushed to the cloud
RETRY_S = 5.0  # a push that failed or found instances still deploying is tried again after this
DEPLOYING = ("allocating", "scheduling", "deploying", "creating", "starting")


def push_spec(session: Session, host_id: str) -> tuple[list[SecgroupSpec], dict[str, list[str]], dict[str, str]]:
    """(groups, server id -> its group ids, server id -> status) of the host's servers; groups
    named as peers by their rules come along (without rules of their own unless a server here has them)."""
    servers = dict(session.execute(select(Server.id, Server.status).where(Server.host_id == host_id)).tuples().all())
    members: dict[str, list[str]] = {sid: [] for sid in servers}
    for gid, sgid in session.execute(select(GuestSecgroup.guest_id, GuestSecgroup.secgroup_id).where(
            GuestSecgroup.guest_id.in_(list(servers))).order_by(GuestSecgroup.created_at, GuestSecgroup.id)):
        members[gid].append(sgid)
    used = {g for v in members.values() for g in v}
    rules: dict[str, list[CloudSecgroupRule]] = {g: [] for g in used}
    peers: set[str] = set()
    for r in session.scalars(select(SecgroupRule).where(SecgroupRule.secgroup_id.in_(used)).order_by(
            SecgroupRule.priority.desc(), SecgroupRule.created_at, SecgroupRule.id)):
        rules[r.secgroup_id].append(CloudSecgroupRule(
            direction=r.direction, protocol=r.protocol, ports=r.ports, cidr=r.cidr, action=r.action,
            priority=r.priority, description=r.description, peer=r.peer_secgroup_id or ""))
        if r.peer_secgroup_id:
            peers.add(r.peer_secgroup_id)
    manager = session.scalar(select(Host.manager_id).where(Host.id == host_id))
    rows = {r.id: r for r in session.scalars(select(Secgroup).where(Secgroup.id.in_(used | peers)))}
    groups = [SecgroupSpec(id=g, name=rows[g].name, rules=tuple(rules.get(g, ())),
                           external_id=rows[g].external_id if rows[g].manager_id == manager else "")
              for g in sorted(used | peers) if g in rows]
    return groups, members, servers


class Pusher:
    """The executor's loop body: push each cloud host whose version moved (one replica at a time)."""

    def __init__(self, rt: Any, holder: str) -> None:
        self.rt = rt
        self.holder = holder
        # host id -> the version this replica pushed, or found its driver pushes nothing for
        # (the pushed version is also on the host row: what another replica pushed counts)
        self.pushed: dict[str, int] = {}
        self.retry_at: dict[str, float] = {}
        self.lease_wait_until = 0.0  # another replica held the lease: not asked again before this

    def run_once(self, lease_s: float = 10.0) -> int:
        from core.db.lease import try_acquire
        from core.region.hosted import TARGET_EXECUTOR

        with self.rt.db.session() as s:
            rows = s.scalars(select(Host).where(Host.target == TARGET_EXECUTOR, Host.manager_id.is_not(None)))
            hosts = [(h.id, h.name, h.driver, h.driver_config, int(h.secgroup_version or 0)) for h in rows
                     if (h.sys_info or {}).get(PUSHED_KEY) != int(h.secgroup_version or 0)]
        now = time.monotonic()
        hosts = [h for h in hosts if self.pushed.get(h[0]) != h[4] and self.retry_at.get(h[0], 0.0) <= now]
        if not hosts or now < self.lease_wait_until:
            return 0  # nothing moved: no write (the lease is taken only when there is work)
        with self.rt.db.session() as s:
            if not try_acquire(s, "executor:secgroups", self.holder, lease_s):
                self.lease_wait_until = now + lease_s
                return 0
        n = 0
        for hid, name, driver, blob, version in hosts:
            try:
                hosted = self.rt.drivers.get(hid, driver, blob)
            except Exception:
                continue  # the heartbeat says why the host is offline
            if not isinstance(hosted, SecgroupPushing):
                self.pushed[hid] = version
                continue
            n += 1
            self._push(hid, name, hosted, version)
        return n

    def _push(self, hid: str, name: str, hosted: Any, version: int) -> None:
        with self.rt.db.session() as s:
            groups, members, status = push_spec(s, hid)
        problem = ""
        try:
            missing = hosted.push_secgroups(groups, members)
        except Exception as exc:
            problem = getattr(exc, "details", None) or str(exc) or type(exc).__name__
            log.warning("host %s: pushing security groups failed: %s", name, problem)
            missing = ()
        if problem or any(status.get(sid) in DEPLOYING for sid in missing):
            self.retry_at[hid] = time.monotonic() + RETRY_S
        else:
            self.pushed[hid] = version
            self.retry_at.pop(hid, None)
        with self.rt.db.session() as s:
            begin_write(s, background=True)
            h = s.get(Host, hid)
            if h is None:
                return
            info = dict(h.sys_info or {})
            if problem:
                info["secgroup_error"] = problem[:2000]
            else:
                info.pop("secgroup_error", None)
            if self.pushed.get(hid) == version:
                info[PUSHED_KEY] = version
            if info != (h.sys_info or {}):
                h.sys_info = info
            s.commit()
