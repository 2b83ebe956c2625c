"""Cloudpods' own Python SDK (python-yunionclient from PyPI, unchanged) against our controller:
log in through keystone, find endpoints in our catalog (internal and public), list with Cloudpods'
filters, create, show by name, delete. It runs in its own venv (scripts/setup-peers.d/compat.sh)."""
from __future__ import annotations

import json
import subprocess
import uuid

from tests.support.controller import Controller
from tests.support.peers import need
from tests.support.tempest import VENV

SCRIPT = r"""
import json, os, sys
from yunionclient.api import client
out = {}
for ep_type in ("internalURL", "publicURL"):
    c = client.Client(os.environ["OS_AUTH_URL"], os.environ["OS_USERNAME"], os.environ["OS_PASSWORD"], "Default",
                      region=os.environ["OS_REGION_NAME"], endpoint_type=ep_type)
    c.set_project(project_name="system")
    out[ep_type] = [z["name"] for z in c.zones.list()[0]]
name = sys.argv[1]
z = c.zones.create(name=name, description="from yunionclient")
out["created"] = z["id"]
out["by_name"] = [x["id"] for x in c.zones.list(name=name)[0]]
out["none"] = c.zones.list(name=name + "-nope")[0]
out["show"] = c.zones.get(name)["description"]
kp = c.keypairs.create(name=name)
out["keypair"] = [k["name"] for k in c.keypairs.list(name=name)[0]]
out["servers"] = len(c.guests.list(limit=5)[0])
c.keypairs.delete(kp["id"])
c.zones.delete(z["id"])
out["after_delete"] = c.zones.list(name=name)[0]
print(json.dumps(out))
"""


def test_python_yunionclient_lists_and_creates(controller: Controller) -> None:
    py = VENV / "bin" / "python"
    need(py.exists() and subprocess.run([str(py), "-c", "import yunionclient.api.client"]).returncode == 0,
         f"needs python-yunionclient in {VENV} (scripts/setup-peers.d/compat.sh)")
    name = f"yc-{uuid.uuid4().hex[:6]}"
    r = subprocess.run([str(py), "-c", SCRIPT, name], env=controller.env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert "zone0" in out["internalURL"] and out["internalURL"] == out["publicURL"]
    assert out["by_name"] == [out["created"]] and out["none"] == []
    assert out["show"] == "from yunionclient" and out["keypair"] == [name]
    assert 0 <= out["servers"] <= 5  # the limit it asked for holds
    assert out["after_delete"] == []
