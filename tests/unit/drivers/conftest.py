from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

NODE_XML = textwrap.dedent(
    """\
    <node>
      <cpu><mhz>2400</mhz><model>x86_64</model><active>8</active>
           <nodes>1</nodes><sockets>1</sockets><cores>4</cores><threads>2</threads></cpu>
      <memory>16777216</memory>
      <domain type='test'>
        <name>preexisting</name><uuid>aaaaaaaa-0000-0000-0000-000000000001</uuid>
        <memory unit='MiB'>512</memory><vcpu>2</vcpu><os><type arch='x86_64'>hvm</type></os>
      </domain>
    </node>
    """
)


@pytest.fixture
def node_uri(tmp_path: Path) -> str:
    """A libvirt test:/// URI on a fresh node file: every connection starts from this state."""
    pytest.importorskip("libvirt", reason="libvirt-python not installed (pip install '.[kvm]')")
    node = tmp_path / "node.xml"
    node.write_text(NODE_XML)
    return f"test://{node}"
