"""NIC bandwidth limits (``bw_limit``, Mbps) on the guests' ports, with tc.

    qos = qos_backend(firewall_backend)   # TcQos where the firewall enforces (root, real ports), else NoQos
    qos.apply({"cp0a1b2c3d4e0": 100, ...})  # port -> Mbps (0: no limit); idempotent, cheap when nothing changed

Both directions of the guest's traffic are shaped with ``tbf`` on the host side of its port: what
leaves the port towards the guest (its download) by the port's root qdisc; what the guest sends
arrives on the port's ingress, is redirected (``u32`` + ``mirred``) to the port's own ``ifb`` device
and shaped by that one's root qdisc. (Shaping, not policing: ``act_police`` and ``cls_matchall`` are
missing from many kernels, this CI's among them, and a policer makes TCP saw-tooth well under the
rate.) A port that is not there yet (a stopped guest) is limited when it appears: the agent syncs
after every guest start and nic hot-plug; a port re-created (new ifindex) is limited again.
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
import subprocess
from typing import Any

log = logging.getLogger("cloudpods.agent.qos")


def burst(mbps: int, seconds: float, floor: int) -> int:
    """Bytes a bucket holds: ``seconds`` of traffic at the rate, at least ``floor``."""
    return max(int(mbps * 1_000_000 / 8 * seconds), floor)


def ifb_name(port: str) -> str:
    """The port's own ifb device (15 characters at most, stable)."""
    return "cqb" + hashlib.sha1(port.encode()).hexdigest()[:12]


def tc_lines(ifname: str, mbps: int) -> list[str]:
    """``tc -batch`` lines that put ``mbps`` on ``ifname`` both ways (or take any limit off when 0);
    the port's ifb device must exist for a limit."""
    ifb = ifb_name(ifname)
    if mbps <= 0:
        return [f"qdisc del dev {ifname} root", f"qdisc del dev {ifname} ingress"]
    tbf = f"tbf rate {mbps}mbit burst {burst(mbps, 0.004, 16_000)} latency 50ms"
    return [f"qdisc replace dev {ifname} root {tbf}",
            f"qdisc replace dev {ifname} ingress",
            f"filter replace dev {ifname} parent ffff: protocol all prio 1 handle 800::1 u32 match u32 0 0 "
            f"action mirred egress redirect dev {ifb}",
            f"qdisc replace dev {ifb} root {tbf}"]


class NoQos:
    enforcing = False

    def __init__(self, reason: str) -> None:
        self.reason = reason
        self.error = ""
        self.limited = 0

    def apply(self, want: dict[str, int]) -> None:
        return None


class TcQos:
    """``tc -force -batch -`` (in network namespace ``netns`` when set) for the ports that changed."""

    enforcing = True
    reason = ""

    def __init__(self, netns: str = "", tc: str = "tc") -> None:
        self.netns, self.tc = netns, tc
        self.applied: dict[str, tuple[int, int]] = {}  # port -> (its ifindex, Mbps) as last applied
        self.error = ""
        self.limited = 0

    def _ns(self, cmd: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.netns, *cmd] if self.netns else cmd

    def _links(self) -> dict[str, int]:
        p = subprocess.run(self._ns(["ip", "-j", "link", "show"]), capture_output=True, text=True, timeout=30)
        if p.returncode != 0:
            raise OSError(f"ip link: {p.stderr.strip()[:300]}")
        return {str(x["ifname"]).split("@", 1)[0]: int(x["ifindex"]) for x in json.loads(p.stdout or "[]")}

    def _ip(self, *args: str) -> None:
        p = subprocess.run(self._ns(["ip", *args]), capture_output=True, text=True, timeout=30)
        if p.returncode != 0:
            log.warning("ip %s: %s", " ".join(args), p.stderr.strip()[:300])

    def apply(self, want: dict[str, int]) -> None:
        """Never raises: what failed is ``error`` (and is retried at the next sync)."""
        try:
            links = self._links()
        except (OSError, ValueError, subprocess.TimeoutExpired) as exc:
            self.error = f"qos: {exc}"
            return
        lines: list[str] = []
        done: dict[str, tuple[int, int] | None] = {}
        for ifname, mbps in want.items():
            if ifname not in links:
                self.applied.pop(ifname, None)  # gone or not yet there: limited when it appears
                continue
            key = (links[ifname], mbps)
            if self.applied.get(ifname) == key or (mbps == 0 and ifname not in self.applied):
                continue  # as applied; or never limited by us and no limit wanted
            lines += tc_lines(ifname, mbps)
            done[ifname] = key if mbps else None
        for ifname in [i for i in self.applied if i not in want]:  # a port no longer ours to limit
            if ifname in links:
                lines += tc_lines(ifname, 0)
            done[ifname] = None
        ifbs = {ifb_name(i): k is not None for i, k in done.items()}  # ifb -> wanted
        for ifb, wanted in ifbs.items():  # created before tc redirects to it; deleted after
            if wanted and ifb not in links:
                self._ip("link", "add", ifb, "type", "ifb")
                self._ip("link", "set", ifb, "up")
        if lines:
            p = subprocess.run(self._ns([self.tc, "-force", "-batch", "-"]), input="\n".join(lines) + "\n",
                               capture_output=True, text=True, timeout=60)
            # deleting a qdisc that is not there fails harmlessly; anything else is worth saying
            errs = [x for x in p.stderr.splitlines() if x.strip() and "No such file" not in x
                    and "Cannot find specified qdisc" not in x and "Command failed" not in x
                    and "Invalid handle" not in x]
            self.error = f"qos: {'; '.join(errs)[:500]}" if errs else ""
            if errs:
                log.warning("tc: %s", self.error)
        else:
            self.error = ""
        for ifb, wanted in ifbs.items():
            if not wanted and ifb in links:
                self._ip("link", "del", ifb)
        for ifname, now_applied in done.items():
            if now_applied is None:
                self.applied.pop(ifname, None)
            else:
                self.applied[ifname] = now_applied
        self.limited = len(self.applied)
        if lines:
            log.info("bandwidth limits: %d port(s) changed, %d limited", len(done), self.limited)


def qos_backend(firewall: Any) -> Any:
    """Limits where the agent runs real ports and can enforce (the firewall's conditions), with tc."""
    if not getattr(firewall, "enforcing", False):
        return NoQos(getattr(firewall, "reason", "") or "not enforced")
    tc = shutil.which("tc") or shutil.which("tc", path="/usr/sbin:/sbin")
    if tc is None:
        return NoQos("tc is not installed (apt-get install iproute2): bandwidth limits are not enforced")
    return TcQos(getattr(firewall, "netns", ""), tc)
