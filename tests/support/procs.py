"""Stopping the processes tests start (controllers, agents, simulators, DHCP clients): one way; and
reading what CPU one of them used."""
from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Any


def cpu_seconds(pid: int, *, children: bool = False) -> float:
    """User + system CPU seconds a process used (with ``children``, also its waited-for children's,
    e.g. qemu-img). Unlike wall time it barely moves with the machine's load: the figure tests and
    benches compare on a busy box."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = fields[11:15] if children else fields[11:13]  # utime stime (cutime cstime)
    return sum(int(x) for x in ticks) / os.sysconf("SC_CLK_TCK")


def stop_process(proc: subprocess.Popen[Any] | None, timeout: float = 5, *, group: bool = False,
                 sig: int = signal.SIGTERM, kill_wait: float = 5) -> None:
    """``sig`` (SIGTERM) to ``proc`` — to its whole process group with ``group`` (one started with
    ``start_new_session``) — then SIGKILL if it has not exited within ``timeout``, and wait ``kill_wait``
    for that. A process that has exited already (or None) is left alone."""
    if proc is None or proc.poll() is not None:
        return

    def send(s: int) -> None:
        if group:
            os.killpg(proc.pid, s)
        else:
            proc.send_signal(s)

    send(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        send(signal.SIGKILL)
        proc.wait(kill_wait)
