"""Bare metal end to end through climc against a controller, with real BMCs: OpenIPMI's ipmi_sim
(ipmitool as a second client checks what we set) and sushy-tools' Redfish emulator.

Registration by BMC address + credentials (the password encrypted, never returned), power on/off/
reset, boot device, sensors, IPMI info, baremetal-list; faults: a wrong password, a BMC that stops
answering (clear error on the host, nothing transient, back online when it returns); RBAC."""
from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.bmc import USER, IpmiSim, SerialPort, SushyEmulator
from tests.support.controller import Controller
from tests.support.pty import climc_in_terminal
from tests.support.waiting import wait_for

B = "/api/s/compute_v2"
SECRET = "Bm-s3cret-91"  # the BMC password: must never come back from any API


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("bm")


@pytest.fixture(scope="module")
def sim(work: Path) -> Iterator[IpmiSim]:
    with IpmiSim(work, name="bm-sim1", serial="BM-SN-0001", password=SECRET) as s:
        yield s


@pytest.fixture(scope="module")
def ctl(work: Path, sim: IpmiSim) -> Iterator[Controller]:
    with Controller.serving(work / "ctl", {"CLOUDPODS_EXECUTOR_HEARTBEAT_S": "2"}) as c:
        yield c


def climc_json(ctl: Controller, *args: str) -> Any:
    r = ctl.climc(*args, "-o", "json")
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def create_ipmi(ctl: Controller, name: str, sim: IpmiSim, password: str = SECRET) -> Any:
    return climc_json(ctl, "host-create", name, "--zone", "zone0", "--host-type", "baremetal", "--ipmi-addr",
                      "127.0.0.1", "--ipmi-port", str(sim.port), "--ipmi-user", USER, "--ipmi-passwd", password)


def host(ctl: Controller, name: str) -> Any:
    r = ctl.api.get(f"{B}/hosts/{name}")
    assert r.status_code == 200, r.text
    return r.json()["host"]


def test_register_by_ipmi_power_boot_sensors_and_the_password_never_returned(ctl: Controller, sim: IpmiSim) -> None:
    h = create_ipmi(ctl, "bm1", sim)
    assert h["host_type"] == "baremetal" and h["driver"] == "baremetal" and h["target"] == "executor"
    assert h["host_status"] == "online" and h["ipmi_status"] == "ok", h
    assert h["power_status"] == "off" and h["health"] == "ok"
    assert {"bmc_power", "boot_device", "sensors", "inventory"} <= set(h["capabilities"])
    # the inventory read over IPMI (FRU): the machine's serial and model
    facts = h["sys_info"]["facts"]
    assert facts["hostname"] == "BM-SN-0001" and "SimServer 1000" in facts["cpu_model"]

    assert ctl.climc("host-power-on", "bm1").returncode == 0
    assert sim.ipmitool("chassis", "power", "status").stdout.strip() == "Chassis Power is on"
    assert host(ctl, "bm1")["power_status"] == "on"

    r = ctl.climc("host-boot-device", "bm1", "pxe")
    assert r.returncode == 0, r.stderr
    assert sim.boot_device() == "pxe"  # what the chassis recorded (ipmi_sim never reads it back as valid)

    r = ctl.climc("host-sensors", "bm1", "-o", "json")
    assert r.returncode == 0, r.stderr
    sensors = {s["name"]: s for s in json.loads(r.stdout)["data"]}
    assert sensors["CPU Temp"]["value"] == 40.0 and sensors["CPU Temp"]["unit"] == "°C"
    assert sensors["FAN1"]["health"] == "ok"

    assert ctl.climc("host-power-reset", "bm1").returncode == 0
    assert sim.resets() == 1
    assert ctl.climc("host-power-off", "bm1").returncode == 0
    assert sim.ipmitool("chassis", "power", "status").stdout.strip() == "Chassis Power is off"
    assert host(ctl, "bm1")["power_status"] == "off"

    h = climc_json(ctl, "host-ipmi-probe", "bm1")  # power, health and the FRU inventory read again
    assert h["ipmi_status"] == "ok" and h["power_status"] == "off"
    assert h["sys_info"]["facts"]["hostname"] == "BM-SN-0001"
    assert ctl.climc("host-power-on", "bm1").returncode == 0
    r = ctl.climc("host-power-off", "--soft", "bm1")  # ipmi_sim has no ACPI soft off: a clear refusal
    assert r.returncode != 0 and "without --soft" in r.stderr and sim.power_state() == "on", r.stderr
    assert ctl.climc("host-power-off", "bm1").returncode == 0 and sim.power_state() == "off"

    info = climc_json(ctl, "host-ipmi-info", "bm1")
    assert info["ip"] == "127.0.0.1" and info["port"] == sim.port and info["username"] == USER
    assert info["protocol"] == "ipmi" and info["ipmi_status"] == "ok" and "password" not in info

    listed = climc_json(ctl, "baremetal-list")
    assert [x["name"] for x in listed["data"]] == ["bm1"] and listed["data"][0]["power_status"] == "off"

    # the password: never in any answer, encrypted at rest
    for args in (("host-show", "bm1"), ("host-list",), ("baremetal-list",), ("host-ipmi-info", "bm1"),
                 ("action-list", "--limit", "200")):
        r = ctl.climc(*args, "-o", "json")
        assert r.returncode == 0 and SECRET not in r.stdout, args
    assert h["driver_config"]["ipmi_password"] == "******"
    for path in ("/hosts?details=true", "/hosts/bm1", "/hosts/bm1/ipmi", "/hosts/bm1/spec"):
        assert SECRET not in ctl.api.get(f"{B}{path}").text, path
    if ctl.db_url.startswith("sqlite"):
        assert SECRET.encode() not in (ctl.data_dir / "cloudpods.db").read_bytes()


def test_serial_over_lan_console_of_a_machine_through_climc(ctl: Controller, work: Path) -> None:
    """webconsole-baremetal: the terminal reaches the machine's serial port through ipmi_sim's SOL
    (what is typed arrives, the machine's answer comes back), again after leaving; audited."""
    import os

    tag = os.urandom(3).hex()
    name = f"bm-sol-{tag}"
    with SerialPort(f"SOL-{tag}") as port, IpmiSim(work, name=f"bm-simsol-{tag}", password=SECRET,
                                                   sol_port=port.port) as bmc:
        h = create_ipmi(ctl, name, bmc)
        assert "serial_console" in h["capabilities"], h["capabilities"]
        for attempt in (1, 2):  # a second session after the first one left: the BMC takes it again
            with climc_in_terminal(ctl.env, "webconsole-baremetal", name) as term:
                term.until(b"escape character is ^]")
                term.type(f"uname-{tag}-{attempt}\r".encode())
                term.until(f"SOL-{tag}: UNAME-{tag.upper()}-{attempt}".encode())
                term.type(b"\x1d")  # Ctrl-]
                assert term.proc.wait(30) == 0
        assert port.lines == [f"uname-{tag}-1", f"uname-{tag}-2"]
        hid = h["id"]
        acts = ctl.api.get("/api/s/identity/v3/actions", params={"limit": 300}).json()["actions"]
        mine = [a["action"] for a in acts if a["obj_id"] == hid]
        assert {"console-token-serial", "console-open-serial", "console-close-serial"} <= set(mine), mine
        assert ctl.climc("host-disable", name).returncode == 0 and ctl.climc("host-delete", name).returncode == 0


def test_serial_over_lan_refusals_name_the_fix(ctl: Controller, work: Path, sim: IpmiSim) -> None:
    """A BMC without SOL: the console closes with the BMC's reason; a Redfish machine or a KVM host has no
    serial_console capability: a one-line refusal."""
    import os

    tag = os.urandom(3).hex()
    name = f"bm-nosol-{tag}"
    create_ipmi(ctl, name, sim)  # the module's ipmi_sim has no sol line
    with climc_in_terminal(ctl.env, "webconsole-baremetal", name) as term:
        term.until(b"refused serial-over-LAN")
        assert term.proc.wait(30) == 1  # the reason, and a non-zero exit
    assert b"console closed:" in term.out and b"enable SOL" in term.out, bytes(term.out)
    assert ctl.climc("host-disable", name).returncode == 0 and ctl.climc("host-delete", name).returncode == 0


def test_a_host_without_a_bmc_refuses_power_with_the_capability_named(ctl: Controller) -> None:
    r = ctl.api.post(f"{B}/hosts", json={"host": {"name": "plain", "zone": "zone0", "cpu_count": 2,
                                                  "mem_size": 1024}})
    assert r.status_code == 200, r.text
    r = ctl.climc("host-power-on", "plain")
    assert r.returncode != 0 and "bmc_power" in r.stderr and "Traceback" not in r.stderr
    r = ctl.climc("host-update", "plain", "--ipmi-password", "x-secret-1")  # no BMC to give a password to
    assert r.returncode != 0 and "not a bare-metal machine" in r.stderr and "Traceback" not in r.stderr
    r = ctl.climc("webconsole-baremetal", "plain")
    assert r.returncode != 0 and "serial_console" in r.stderr and "Traceback" not in r.stderr
    for bad in ({"ipmi_port": "not-a-port"}, {"ipmi_password": ["a"]}):
        r = ctl.api.put(f"{B}/hosts/plain", json={"host": bad})
        assert r.status_code == 400, r.text


def test_wrong_password_leaves_a_clear_error_on_the_host(ctl: Controller, sim: IpmiSim) -> None:
    h = create_ipmi(ctl, "bm-badpw", sim, password="wrong-one")
    assert h["host_status"] == "offline" and h["ipmi_status"] == "auth_failed", h
    assert "password" in h["ipmi_reason"] and h["status"] == "running"
    t0 = time.monotonic()
    r = ctl.climc("host-power-on", "bm-badpw")
    assert r.returncode != 0 and "password" in r.stderr and len(r.stderr.strip().splitlines()) <= 2, r.stderr
    assert time.monotonic() - t0 < 45  # not retried into pyghmi's ~30 s per call; room for climc's start under load
    assert sim.power_state() == "off"
    h = host(ctl, "bm-badpw")
    assert h["ipmi_status"] == "auth_failed" and h["host_status"] == "offline" and h["status"] == "running"


def test_bmc_credentials_change_is_tried_on_the_bmc_stored_encrypted_and_audited(ctl: Controller, work: Path) -> None:
    """host-update --ipmi-username/--ipmi-password (Cloudpods' names): the BMC's password was rotated; a
    wrong new one is refused with the reason and changes nothing; the right one brings the host back."""
    import os

    tag = os.urandom(3).hex()
    name, rotated = f"bm-cred-{tag}", f"Rot-{tag}-pw"
    with IpmiSim(work, name=f"bm-simcred-{tag}", password=SECRET) as bmc:
        h = create_ipmi(ctl, name, bmc)
        assert h["ipmi_status"] == "ok"
        bmc.stop()
        bmc.password = rotated  # the BMC's password is changed on the BMC
        bmc.start()
        assert ctl.climc("host-power-on", name).returncode != 0
        assert host(ctl, name)["ipmi_status"] == "auth_failed"

        r = ctl.climc("host-update", name, "--ipmi-password", "Not-the-one-1")
        assert r.returncode != 0 and "were not saved" in r.stderr and "refused user" in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) <= 2, r.stderr
        r = ctl.climc("host-ipmi-info", name, "-o", "json")  # the old config is still the one in use
        assert r.returncode == 0 and json.loads(r.stdout)["username"] == USER

        r = ctl.climc("host-update", name, "--ipmi-username", USER, "--ipmi-password", rotated,
                      "--description", f"rotated {tag}", "-o", "json")
        assert r.returncode == 0, r.stderr
        out = json.loads(r.stdout)
        assert rotated not in r.stdout and out["description"] == f"rotated {tag}"
        h = host(ctl, name)
        assert h["ipmi_status"] == "ok" and h["host_status"] == "online", h
        assert ctl.climc("host-power-on", name).returncode == 0 and bmc.power_state() == "on"
        for path in (f"/hosts/{name}", f"/hosts/{name}/ipmi", "/hosts?details=true"):
            assert rotated not in ctl.api.get(f"{B}{path}").text
        acts = ctl.api.get("/api/s/identity/v3/actions", params={"limit": 300}).json()["actions"]
        notes = [a.get("notes", "") for a in acts if a["obj_id"] == h["id"] and a["action"] == "update"]
        assert any("ipmi_password" in n for n in notes) and not any(rotated in str(a) for a in acts), notes
        if ctl.db_url.startswith("sqlite"):
            assert rotated.encode() not in (ctl.data_dir / "cloudpods.db").read_bytes()
        assert ctl.climc("host-power-off", name).returncode == 0
        assert ctl.climc("host-disable", name).returncode == 0 and ctl.climc("host-delete", name).returncode == 0


def test_a_bmc_that_stops_answering_is_marked_and_recovers(ctl: Controller, work: Path) -> None:
    with IpmiSim(work, name="bm-sim2", serial="BM-SN-0002", password=SECRET) as s2:
        assert create_ipmi(ctl, "bm2", s2)["host_status"] == "online"
        s2.stop()
        t0 = time.monotonic()
        r = ctl.climc("host-power-on", "bm2")
        took = time.monotonic() - t0
        assert r.returncode != 0 and "did not answer" in r.stderr and "Traceback" not in r.stderr, r.stderr
        # bounded: 5 s x (1 + 1 retry), not pyghmi's ~30 s per call (60 s for two); the rest is climc's own
        # start on a loaded CI box (25 s left it ~10 s)
        assert took < 45, took
        h = host(ctl, "bm2")
        # (the heartbeat's own probe may have recorded it meanwhile, as "unreachable" or "timeout")
        assert h["ipmi_status"] in ("unreachable", "timeout") and h["host_status"] == "offline", h
        assert h["status"] == "running"
        s2.start()  # same port: the BMC is back
        # the executor heartbeat probes every 30 s; the first probe after the restart may still time out on
        # the old session (a 10 s bounded failure), so allow two heartbeats and a bit
        h = wait_for(lambda: (x := host(ctl, "bm2"))["ipmi_status"] == "ok" and x, timeout=100)  # heartbeat probe
        assert h and h["host_status"] == "online", host(ctl, "bm2")
        assert ctl.climc("host-power-on", "bm2").returncode == 0
        assert s2.power_state() == "on"
    r = ctl.api.post(f"{B}/hosts/bm2/disable")
    assert r.status_code == 200
    assert ctl.climc("host-delete", "bm2").returncode == 0


def test_redfish_machine_power_boot_sensors(ctl: Controller, work: Path) -> None:
    with SushyEmulator(work) as rf:
        # the emulated BMC is a Python web app on this (loaded) machine: it answered a power-on in more than
        # the 5 s a real BMC gets by default (twice at load 20-40), so this machine's BMC gets 30 s
        h = climc_json(ctl, "host-create", "rf1", "--zone", "zone0", "--host-type", "baremetal", "--redfish-url",
                       rf.url, "--ipmi-user", USER, "--ipmi-passwd", "password", "--config", "timeout_s=30")
        assert h["ipmi_status"] == "ok" and h["power_status"] == "off" and h["host_status"] == "online", h
        assert h["driver_config"]["ipmi_password"] == "******"
        system = f"{rf.url}/redfish/v1/Systems/11111111-1111-1111-1111-111111111111"

        def power() -> str:
            return str(httpx.get(system, auth=(USER, "password"), timeout=10).json()["PowerState"])

        r = ctl.climc("host-power-on", "rf1")  # sushy's fake driver applies it 1-11 s later: we wait for it
        assert r.returncode == 0, r.stderr
        assert power() == "On" and host(ctl, "rf1")["power_status"] == "on"
        r = ctl.climc("host-power-off", "--soft", "rf1")  # Redfish GracefulShutdown, applied late: waited for
        assert r.returncode == 0 and power() == "Off" and host(ctl, "rf1")["power_status"] == "off", r.stderr
        assert ctl.climc("host-boot-device", "rf1", "pxe").returncode == 0
        boot = httpx.get(system, auth=(USER, "password"), timeout=10).json()["Boot"]
        assert boot["BootSourceOverrideTarget"] == "Pxe"
        r = ctl.climc("host-sensors", "rf1", "-o", "json")
        assert r.returncode == 0 and "CPU Temp" in r.stdout, r.stderr
        info = climc_json(ctl, "host-ipmi-info", "rf1")
        assert info["protocol"] == "redfish" and info["url"] == rf.url and "password" not in info
        # Redfish has no console a client opens (sushy-emulator has none either): one line saying so
        r = ctl.climc("webconsole-baremetal", "rf1")
        assert r.returncode == 1 and "Redfish defines no console" in r.stderr and "IPMI" in r.stderr, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr
        bad = climc_json(ctl, "host-create", "rf-bad", "--zone", "zone0", "--host-type", "baremetal",
                         "--redfish-url", rf.url, "--ipmi-user", USER, "--ipmi-passwd", "nope")
        assert bad["ipmi_status"] == "auth_failed" and bad["host_status"] == "offline"


def test_a_baremetal_server_without_image_is_refused_and_without_a_boot_network_fails_with_the_reason(
        ctl: Controller, sim: IpmiSim, work: Path) -> None:
    r = ctl.climc("server-create", "bm-vm", "--hypervisor", "baremetal", "--ncpu", "1", "--mem-spec", "256m")
    assert r.returncode != 0 and "--image" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert ctl.api.get(f"{B}/servers/bm-vm").status_code == 404
    # this controller runs no PXE boot network: the deploy fails saying so, nothing stays transient
    if ctl.api.get(f"{B}/hosts/bm-nopxe").status_code == 404:
        create_ipmi(ctl, "bm-nopxe", sim)
    img = work / "tiny.raw"
    img.write_bytes(b"\0" * (1 << 20))
    climc_json(ctl, "image-upload", "bm-tiny", str(img), "--format", "raw")
    climc_json(ctl, "server-create", "bm-vm", "--hypervisor", "baremetal", "--disk", "bm-tiny")
    srv = wait_for(lambda: (s := ctl.api.get(f"{B}/servers/bm-vm").json()["server"])["status"] in (
        "deploy_fail", "sched_fail", "running") and s, 60)
    assert srv and srv["status"] == "deploy_fail", srv
    tasks = ctl.api.get(f"{B}/servers/bm-vm/tasks").json()["tasks"]
    assert any("baremetal_pxe_interface" in (t["reason"] or "") for t in tasks), tasks
    machine = host(ctl, srv["host"])
    assert machine["host_status"] == "online" and machine["ipmi_status"] == "ok", machine
    assert ctl.climc("server-delete", "-f", "bm-vm").returncode == 0
    assert wait_for(lambda: ctl.api.get(f"{B}/servers/bm-vm").status_code == 404, 60)


def test_the_pxe_mac_is_kept_once_and_prepare_refuses_what_is_not_a_machine(ctl: Controller, sim: IpmiSim) -> None:
    mac = "52:54:00:aa:00:01"
    # Cloudpods' host-create NAME MAC (and its --ipmi-addr/--ipmi-user/--ipmi-passwd); ours below (--access-mac)
    h = climc_json(ctl, "host-create", "bm-mac", mac.upper(), "--zone", "zone0", "--host-type", "baremetal",
                   "--ipmi-addr", "127.0.0.1", "--ipmi-port", str(sim.port), "--ipmi-user", USER, "--ipmi-passwd",
                   SECRET)
    assert h["access_mac"] == mac, h
    r = ctl.climc("host-create", "bm-mac2", "--zone", "zone0", "--host-type", "baremetal", "--ipmi-addr", "127.0.0.1",
                  "--ipmi-port", str(sim.port), "--ipmi-user", USER, "--ipmi-passwd", SECRET,
                  "--access-mac", mac)
    assert r.returncode != 0 and mac in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert ctl.api.get(f"{B}/hosts/bm-mac2").status_code == 404
    # prepare reads a known BMC again; a wrong password is an error that names it, the host keeps its BMC
    assert climc_json(ctl, "baremetal-prepare", "bm-mac")["host_status"] == "online"
    r = ctl.climc("baremetal-prepare", "bm-mac", "--ipmi-username", USER, "--ipmi-password", "wrong-pw")
    assert r.returncode != 0 and "Traceback" not in r.stderr and r.stderr.strip(), r.stderr
    assert climc_json(ctl, "baremetal-prepare", "bm-mac")["host_status"] == "online"
    assert ctl.climc("host-disable", "bm-mac").returncode == 0
    assert ctl.climc("host-delete", "bm-mac").returncode == 0


def test_bad_bmc_config_is_refused_and_nothing_is_created(ctl: Controller) -> None:
    r = ctl.climc("host-create", "bm-x", "--zone", "zone0", "--host-type", "baremetal", "--ipmi-addr", "not an ip!",
                  "--ipmi-user", USER, "--ipmi-passwd", "x")
    assert r.returncode != 0 and "ipmi_ip" in r.stderr and "Traceback" not in r.stderr
    r = ctl.climc("host-create", "bm-x", "--zone", "zone0", "--ipmi-addr", "127.0.0.1")
    assert r.returncode != 0 and "--ipmi-user" in r.stderr
    assert ctl.api.get(f"{B}/hosts/bm-x").status_code == 404


def test_another_projects_users_cannot_see_or_power_machines(ctl: Controller, sim: IpmiSim) -> None:
    from tests.e2e.test_identity_support import admin, grant, login, mk_project, mk_user

    if ctl.api.get(f"{B}/hosts/bm1").status_code != 200:
        create_ipmi(ctl, "bm1", sim)
    ks = admin(ctl)
    p = mk_project(ks)
    u = mk_user(ks, "pw-Secret-1")
    grant(ks, f"projects/{p['id']}", u["id"], "admin")  # a project's admin is no cloud admin
    tok = login(ctl, u["name"], "pw-Secret-1", {"project": {"id": p["id"]}})
    before = sim.power_state()
    with httpx.Client(base_url=ctl.url, headers={"X-Auth-Token": tok}, timeout=30) as c:
        assert "bm1" not in [h["name"] for h in c.get(f"{B}/hosts", params={"limit": 100}).json()["hosts"]]
        for method, path in (("POST", "/hosts/bm1/start"), ("POST", "/hosts/bm1/stop"), ("GET", "/hosts/bm1/ipmi"),
                             ("GET", "/hosts/bm1/sensors"), ("POST", "/hosts/bm1/set-boot-device"),
                             ("POST", "/hosts/bm1/prepare"), ("POST", "/webconsole/baremetal/bm1"),
                             ("PUT", "/hosts/bm1")):
            r = c.request(method, f"{B}{path}", json={"boot_device": "pxe"} if "boot" in path else
                          {"host": {"ipmi_password": SECRET}} if method == "PUT" else None)
            assert r.status_code == 404, (path, r.status_code, r.text)
        r = c.post(f"{B}/hosts", json={"host": {"name": "bm-mine", "zone": "zone0", "host_type": "baremetal",
                                                "ipmi_ip": "127.0.0.1", "ipmi_username": USER,
                                                "ipmi_password": SECRET}})
        assert r.status_code == 403, r.text
    env = dict(ctl.env, OS_USERNAME=u["name"], OS_PASSWORD="pw-Secret-1", OS_PROJECT_NAME=p["name"])
    r = ctl.climc("host-power-on", "bm1", env=env)
    assert r.returncode != 0 and "not found" in r.stderr
    assert sim.power_state() == before


class LossyRelay:
    """A UDP relay between our driver and ipmi_sim that drops chosen replies (a lost packet)."""

    def __init__(self, target_port: int, drop: int) -> None:
        import socket
        import threading

        self.target = ("127.0.0.1", target_port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.up.settimeout(0.2)
        self.client: tuple[str, int] | None = None
        self.to_drop, self.dropped = drop, 0
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._down, daemon=True),
                        threading.Thread(target=self._up, daemon=True)]
        for t in self.threads:
            t.start()

    def _down(self) -> None:  # client -> BMC
        while not self.stop.is_set():
            try:
                data, self.client = self.sock.recvfrom(4096)
            except OSError:
                continue
            self.up.sendto(data, self.target)

    def _up(self) -> None:  # BMC -> client, dropping the first `to_drop` replies after arming
        while not self.stop.is_set():
            try:
                data, _ = self.up.recvfrom(4096)
            except OSError:
                continue
            if self.dropped < self.to_drop:
                self.dropped += 1
                continue
            if self.client is not None:
                self.sock.sendto(data, self.client)

    def close(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(2)
        self.sock.close()
        self.up.close()


def test_a_dropped_udp_reply_is_retried_not_reported(sim: IpmiSim) -> None:
    from drivers.baremetal.driver import BaremetalDriver

    relay = LossyRelay(sim.port, drop=0)
    try:
        d = BaremetalDriver({"ipmi_ip": "127.0.0.1", "ipmi_port": relay.port, "ipmi_username": USER,
                             "ipmi_password": SECRET, "timeout_s": 5})
        assert d.probe()["ipmi_status"] == "ok"  # logged in through the relay
        relay.to_drop = relay.dropped + 1  # the next reply is lost on the way back
        t0 = time.monotonic()
        assert d.bmc.get_power_state().value in ("on", "off")
        assert relay.dropped == relay.to_drop and time.monotonic() - t0 < 10  # retransmitted, answered
        d.close()
    finally:
        relay.close()


def test_a_machine_that_never_reports_fails_the_deploy_with_the_reason_and_is_powered_off(
        sim: IpmiSim, tmp_path: Path) -> None:
    """The driver against the real BMC and the real boot network (on the loopback): the machine behind
    this BMC never boots anything, so its deploy times out naming what was seen, and is left off."""
    from core.agent.pxe import PxeService, PxeSettings
    from drivers.baremetal.driver import BaremetalDriver
    from drivers.base import HostEnv, HypervisorError, InstanceDisk, InstanceSpec, LocalImage
    from tests.support.bmc import free_port

    (tmp_path / "k").write_bytes(b"k")
    (tmp_path / "img.raw").write_bytes(b"\0" * 4096)
    svc = PxeService(PxeSettings(interface="lo", kernel=str(tmp_path / "k"), ramdisk=str(tmp_path / "k"),
                                 ip_range="127.0.0.200-127.0.0.201", dhcp_port=free_port()), tmp_path / "raw")
    svc.start()

    class Images:
        def get(self, image_id: str) -> LocalImage:
            return LocalImage(path=str(tmp_path / "img.raw"), format="raw", properties={}, virtual_size_mb=1)

    class Net:
        def plug(self, nic: Any, hostname: str | None = None) -> str:
            return ""

        def unplug(self, mac: str) -> None:
            return None

    cfg = {"ipmi_ip": "127.0.0.1", "ipmi_port": sim.port, "ipmi_username": USER, "ipmi_password": SECRET,
           "access_mac": "52:54:00:aa:00:09", "deploy_timeout_s": 1}
    env = HostEnv(uri="", data_dir=str(tmp_path), instances_dir=str(tmp_path), images=Images(), network=Net(),
                  options=cfg, pxe=svc)
    drv = BaremetalDriver.for_host(env)
    try:
        spec = InstanceSpec(server_id="s1", name="s1", vcpu=1, memory_mb=1,
                            disks=(InstanceDisk(id="d1", index=0, size_mb=1, image_id="img"),))
        with pytest.raises(HypervisorError, match=r"did not report its deploy within 1 s \(seen: no request"):
            drv.deploy(spec)
        assert sim.ipmitool("chassis", "power", "status").stdout.strip() == "Chassis Power is off"
        assert drv.driver.list_guests() == [] and drv.remove("s1") is False
        assert svc.stage("52:54:00:aa:00:09", "wipe").ip == "127.0.0.200"  # its turn was closed
    finally:
        drv.close()
        svc.stop()
