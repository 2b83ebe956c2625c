"""An ESXi host run by the controller's executor, end to end through climc, against govmomi's vSphere
simulator (PEERS.md "VMware"; a real peer, so this runs once per CI in the integration tier): the
host is created with its vCenter credentials (validated, stored encrypted), servers on it are real
VMs in the simulator: create from an image (uploaded to the datastore), stop, start, suspend,
resume, restart, change-config, delete."""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.e2e.test_agent_support import upload_tiny_image
from tests.support.controller import Controller
from tests.support.vcsim import Vcsim, need_vcsim

pytest.importorskip("pyVmomi", reason="needs pyvmomi (pip install cloudpods-one[esxi])")

B = "/api/s/compute_v2"
PASSWORD = "vc-Secret-9"


@pytest.fixture(scope="module")
def sim() -> Iterator[Vcsim]:
    need_vcsim()
    with Vcsim(username="admin", password=PASSWORD) as s:
        yield s


@pytest.fixture(scope="module")
def ctl(tmp_path_factory: pytest.TempPathFactory, sim: Vcsim) -> Iterator[Controller]:
    with Controller.serving(tmp_path_factory.mktemp("esxi"), {"CLOUDPODS_EXECUTOR_HEARTBEAT_S": "1"}) as c:
        upload_tiny_image(c)
        yield c


def esxi_host_args(sim: Vcsim, name: str, password: str = PASSWORD) -> list[str]:
    return ["host-create", name, "--zone", "zone0", "--driver", "esxi", "--host-type", "esxi",
            "--config", f"host={sim.host}", "--config", f"port={sim.port}", "--config", "username=admin",
            "--config", f"password={password}", "--config", "insecure=true", "--config", "esxi_host=DC0_H0",
            "--wire", "default:DC0_DVPG0"]


def wait_status(ctl: Controller, name: str, want: str, timeout: float = 60) -> dict[str, Any]:
    end = time.monotonic() + timeout
    srv: dict[str, Any] = {}
    while time.monotonic() < end:
        r = ctl.api.get(f"{B}/servers/{name}")
        if r.status_code == 404 and want == "gone":
            return {"status": "gone"}
        if r.status_code == 200:
            srv = r.json()["server"]
            if srv["status"] == want:
                return srv
        time.sleep(0.2)
    return srv


def vcenter_vms(sim: Vcsim) -> dict[str, Any]:
    """The simulator's VMs by instance UUID, read with pyvmomi as another vCenter client would."""
    from drivers.esxi.inventory import read_inventory
    from drivers.esxi.session import EsxiConfig, Session

    with Session(EsxiConfig.parse(sim.config())) as s:
        return {v.instance_uuid: v for v in read_inventory(s).vms}


def test_wrong_password_is_refused_and_nothing_is_created(ctl: Controller, sim: Vcsim) -> None:
    r = ctl.climc(*esxi_host_args(sim, "esx-bad", password="wrong-one"))
    assert r.returncode != 0
    err = r.stderr.strip()
    assert "wrong username or password" in err and "wrong-one" not in err and "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    assert ctl.api.get(f"{B}/hosts/esx-bad").status_code == 404


def test_an_esxi_host_runs_servers_as_vcenter_vms(ctl: Controller, sim: Vcsim) -> None:
    r = ctl.climc(*esxi_host_args(sim, "esx1"), "-o", "json")
    assert r.returncode == 0, r.stderr
    host = json.loads(r.stdout)
    assert (host["target"], host["driver"], host["host_type"], host["host_status"]) == \
        ("executor", "esxi", "esxi", "online")
    assert host["driver_config"]["password"] == "******" and PASSWORD not in r.stdout
    assert "suspend" in host["capabilities"] and "attach_disk" not in host["capabilities"]
    assert host["cpu_count"] >= 1 and host["mem_size"] > 1000  # the ESXi host's own capacity

    r = ctl.climc("server-create", "vm-e1", "--ncpu", "2", "--mem-spec", "512m", "--disk", "tiny:2g",
                  "--disk", "1g", "--net", "default", "--hypervisor", "esxi", "--host", "esx1", "--auto-start")
    assert r.returncode == 0, r.stderr
    srv = wait_status(ctl, "vm-e1", "running")
    assert srv.get("status") == "running", srv
    sid = srv["id"]
    vm = vcenter_vms(sim)[sid]  # the server IS a VM in vCenter, with the server's id as its instance UUID
    assert vm.name == "vm-e1" and (vm.vcpu, vm.memory_mb) == (2, 512) and vm.host == "host-21"
    assert [d.size_mb for d in vm.disks] == [2048, 1024]
    assert vm.nics and vm.nics[0].network == "DC0_DVPG0"

    for verb, want in (("server-stop", "ready"), ("server-start", "running"), ("server-suspend", "suspend"),
                       ("server-resume", "running"), ("server-restart", "running")):
        r = ctl.climc(verb, "vm-e1")
        assert r.returncode == 0, f"{verb}: {r.stderr}"
        assert wait_status(ctl, "vm-e1", want).get("status") == want, verb
    assert vcenter_vms(sim)[sid].power_state == "poweredOn"

    # change-config of a running VM is refused by the VM; stopped, it applies and vCenter shows it
    assert ctl.climc("server-stop", "vm-e1").returncode == 0
    assert wait_status(ctl, "vm-e1", "ready").get("status") == "ready"
    r = ctl.climc("server-change-config", "vm-e1", "--ncpu", "4", "--vmem", "1g")
    assert r.returncode == 0, r.stderr
    end = time.monotonic() + 60
    while time.monotonic() < end and (vcenter_vms(sim)[sid].vcpu, vcenter_vms(sim)[sid].memory_mb) != (4, 1024):
        time.sleep(0.3)
    assert (vcenter_vms(sim)[sid].vcpu, vcenter_vms(sim)[sid].memory_mb) == (4, 1024)

    # an action the driver does not declare is refused before any task, naming host and capability
    r = ctl.climc("server-rebuild-root", "vm-e1", "--image", "tiny")
    assert r.returncode != 0 and "esx1" in r.stderr and "rebuild_root" in r.stderr, r.stderr

    assert ctl.climc("server-delete", "-f", "vm-e1").returncode == 0
    assert wait_status(ctl, "vm-e1", "gone").get("status") == "gone"
    assert sid not in vcenter_vms(sim)
