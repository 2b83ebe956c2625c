"""Another cloudpods-one controller as a cloud (the Cloudpods provider) end to end through climc.

The other controller runs servers on an executor host of the real KVM driver (libvirt's
test:///default). Here: an account on it (a wrong password is one clear line), a sync that
brings its zones (as executor hosts of the cloudpods driver), networks, images and servers; a
server made there is operable from here; a server created here with its image and network is a
server there, stopped, started and deleted from here.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.test_agent_support import libvirt_or_skip, upload_tiny_image
from tests.support.cloud import B, climc_json, drop_account, server_status, wait_for
from tests.support.controller import Controller


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Controller, Controller]]:
    libvirt_or_skip()
    root = tmp_path_factory.mktemp("cp-pair")
    there = Controller.init(root / "there")
    there.serve()
    here = Controller.init(root / "here")
    here.env["CLOUDPODS_JOB_CLOUDSYNC"] = "0"
    try:
        here.serve()
        upload_tiny_image(there)
        r = there.climc("host-create", "rk", "--zone", "zone0", "--driver", "kvm", "--config", "uri=test:///default",
                        "--wire", "default")
        assert r.returncode == 0, r.stderr
        yield here, there
    finally:
        here.stop()
        there.stop()


def create(here: Controller, there: Controller, name: str, password: str | None = None) -> Any:
    return here.climc("cloud-account-create-cloudpods", name, "--auth-url", there.url, "--user",
                      there.env["OS_USERNAME"], "--no-sync", "-o", "json",
                      env={**here.env, "CLOUDPODS_CLOUD_SECRET": password or there.env["OS_PASSWORD"]})


def test_a_wrong_password_is_one_clear_line_and_nothing_is_stored(pair: tuple[Controller, Controller]) -> None:
    here, there = pair
    r = create(here, there, "cp-bad", password="not-the-password-1")
    assert r.returncode == 1 and "refused the credentials" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert here.api.get(f"{B}/cloudaccounts/cp-bad").status_code == 404


def test_the_other_controllers_servers_appear_here_and_obey_climc(pair: tuple[Controller, Controller]) -> None:
    here, there = pair
    r = there.climc("server-create", "far-vm", "--ncpu", "1", "--mem-spec", "256m", "--disk", "tiny", "--net",
                    "default", "--host", "rk", "--auto-start")
    assert r.returncode == 0, r.stderr
    wait_for(lambda: there.api.get(f"{B}/servers/far-vm").json()["server"]["status"] == "running", 90, "far-vm up")
    far = there.api.get(f"{B}/servers/far-vm").json()["server"]
    r = create(here, there, "cp")
    assert r.returncode == 0, r.stderr
    r = here.climc("cloud-account-sync", "cp", "--wait", "--timeout", "120")
    assert r.returncode == 0, (r.stdout, r.stderr)
    hosts = here.api.get(f"{B}/hosts", params={"host_type": "cloudpods"}).json()["hosts"]
    assert [h["name"] for h in hosts] == ["cp-zone0"] and hosts[0]["target"] == "executor"
    srv = server_status(here, "far-vm", "running")
    assert srv["external_id"] == far["id"] and far["ips"] and far["ips"] in json.dumps(srv)
    assert here.climc("server-stop", "far-vm").returncode == 0
    server_status(here, "far-vm", "ready")
    assert there.api.get(f"{B}/servers/far-vm").json()["server"]["status"] == "ready"
    # deleted there: gone here after the next sync
    assert there.climc("server-delete", "-f", "far-vm").returncode == 0
    wait_for(lambda: there.api.get(f"{B}/servers/far-vm").status_code == 404, 60, "far-vm gone there")
    assert here.climc("cloud-account-sync", "cp", "--wait").returncode == 0
    server_status(here, "far-vm", "gone")


def test_a_server_created_here_is_a_server_there(pair: tuple[Controller, Controller]) -> None:
    here, there = pair
    if here.api.get(f"{B}/cloudaccounts/cp").status_code == 404:
        assert create(here, there, "cp").returncode == 0
    assert here.climc("cloud-account-sync", "cp", "--wait").returncode == 0
    far_net = there.api.get(f"{B}/networks/default").json()["network"]["id"]
    nets = here.api.get(f"{B}/networks", params={"limit": 100}).json()["networks"]
    net = next(n for n in nets if n.get("external_id") == far_net)
    images = here.api.get(f"{B}/cachedimages").json()["cachedimages"]
    assert [i["name"] for i in images] == ["tiny"]
    # the cloudprovider named: the scheduler places it in that cloud, the hypervisor follows it
    r = here.climc("server-create", "near-vm", "--ncpu", "1", "--mem-spec", "256m", "--disk", "tiny", "--net",
                   net["id"], "--manager", "cp", "--auto-start")
    assert r.returncode == 0, r.stderr
    srv = server_status(here, "near-vm", "running", timeout=120)
    assert srv["host"] == "cp-zone0" and srv["hypervisor"] == "cloudpods", srv
    theirs = there.api.get(f"{B}/servers", params={"search": "near-vm"}).json()["servers"]
    assert len(theirs) == 1 and theirs[0]["status"] == "running" and theirs[0]["ips"] == srv["ips"], (theirs, srv)
    assert theirs[0]["description"] == f"cloudpods:server-id={srv['id']}"
    assert here.climc("server-stop", "near-vm").returncode == 0
    server_status(here, "near-vm", "ready")
    assert there.api.get(f"{B}/servers/{theirs[0]['id']}").json()["server"]["status"] == "ready"
    assert here.climc("server-delete", "-f", "near-vm").returncode == 0
    server_status(here, "near-vm", "gone", timeout=120)
    assert there.api.get(f"{B}/servers/{theirs[0]['id']}").status_code == 404
    assert climc_json(here, "cloud-account-show", "cp")["status"] == "connected"
    drop_account(here, "cp")
