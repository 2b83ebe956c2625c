"""This machine's host name for an agent, and the simulated host of in-process agents: a node file for
libvirt's test driver (the real libvirt library, no hypervisor needed). The in-process agents
themselves enroll their hosts in the controller's database, so they sit above the region:
core/hostapi/local_agent.py (``ocadm serve --with-agent``) and core/hostapi/hollow.py.
"""
from __future__ import annotations

import re
import socket
from pathlib import Path

NODE_XML = """<node>
  <cpu><mhz>2400</mhz><model>x86_64</model><active>{cpus}</active>
       <nodes>1</nodes><sockets>1</sockets><cores>{cpus}</cores><threads>1</threads></cpu>
  <memory>{memory_kib}</memory>
</node>
"""


def local_host_name() -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", socket.gethostname()).strip("-.") or "localhost"
    return name if name[0].isalpha() else f"host-{name}"[:63]


def write_node_xml(path: Path, *, cpus: int = 16, memory_mb: int = 65536) -> None:
    """A simulated host for libvirt's test driver (only written once: the operator may edit it)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(NODE_XML.format(cpus=cpus, memory_kib=memory_mb * 1024))
