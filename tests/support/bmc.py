"""Real BMC peers for tests (PEERS.md "IPMI", "Redfish"): OpenIPMI's ``ipmi_sim`` and
sushy-tools' ``sushy-emulator --fake``, each on a free loopback port, stopped by PID.

    with IpmiSim(tmp_path) as bmc:           # admin/password, cipher suite 3 only
        bmc.port, bmc.power_state(), bmc.boot_device()   # what its chassis program recorded
    with SushyEmulator(tmp_path) as rf:      # Basic auth admin/password, two fake systems
        rf.url, rf.systems

``ipmi_sim`` answers FRU reads above 34 bytes with 0xC8; our driver shrinks its reads for it.
"""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.support import ports
from tests.support.peers import need, need_binary
from tests.support.procs import stop_process

SUSHY_VENV = Path(os.environ.get("CLOUDPODS_PEER_CACHE", "/var/cache/cloudpods-ci")) / "sushy-venv"
USER, PASSWORD = "admin", "password"

_CHASSIS = r"""#!/bin/sh
# ipmi_sim's chassis_control program: records power and boot device in files (PEERS.md)
# With an executable $D/vm.sh (start|stop|status), power drives a real machine (a qemu VM).
D=$(dirname "$0"); STATE=$D/power.state; BOOT=$D/boot.state; VM=$D/vm.sh
[ -f $STATE ] || echo 0 > $STATE; [ -f $BOOT ] || echo default > $BOOT
power() { if [ -x $VM ]; then $VM status; else cat $STATE; fi; }
setpower() { echo $1 > $STATE; [ -x $VM ] || return 0
  if [ "$1" = 1 ]; then [ "$($VM status)" = 1 ] || $VM start; else $VM stop; fi; }
dev=$1; op=$2; shift 2
case $op in
get) for p in "$@"; do case $p in
        power) echo "power:$(power)";; boot) echo "boot:$(cat $BOOT)";;
        *) echo "bad parm $p"; exit 1;; esac; done;;
set) while [ $# -ge 2 ]; do p=$1; v=$2; shift 2; case $p in
        power) setpower $v;; reset) echo reset >> $D/resets; [ -x $VM ] && { $VM stop; $VM start; };;
        boot) echo $v > $BOOT;;
        identify) [ $# -ge 1 ] && shift;; *) echo "bad parm $p"; exit 1;; esac; done;;
check) exit 0;;
*) exit 1;;
esac
exit 0
"""


def _tl(s: str) -> bytes:
    b = s.encode()
    return bytes([0xC0 | len(b)]) + b


def _area(fields: bytes) -> bytes:
    body = b"\x01\x00" + fields + b"\xC1"
    body += b"\x00" * (-(len(body) + 1) % 8)
    body = body[:1] + bytes([(len(body) + 1) // 8]) + body[2:]
    return body + bytes([(-sum(body)) & 0xFF])


def _fru(serial: str) -> bytes:
    ch = _area(bytes([0x17]) + _tl("CHS-PN-1") + _tl("CHS-" + serial))
    bd = _area(b"\x19\x00\x00\x00" + _tl("Acme Boards") + _tl("AB-9000") + _tl("BRD-" + serial) + _tl("BRD-PN-7")
               + _tl(""))
    pr = _area(b"\x19" + _tl("Acme Corp") + _tl("SimServer 1000") + _tl("SS1000") + _tl("v1") + _tl(serial)
               + _tl("ASSET-1") + _tl(""))
    hdr = [1, 0, 1, 1 + len(ch) // 8, 1 + (len(ch) + len(bd)) // 8, 0, 0]
    data = bytes(hdr + [(-sum(hdr)) & 0xFF]) + ch + bd + pr
    return data + b"\x00" * (256 - len(data))


def _sdr(rid: int, num: int, entity: int, stype: int, unit: int, m: int, name: str, nominal: int, unc: int,
         uc: int, unr: int) -> bytes:
    body = bytes([0x20, 0, num, entity, 1, 0x67, 0x88, stype, 0x01, 0xc0, 0x0f, 0xc0, 0x7f, 0x38, 0x38,
                  0x00, unit, 0, 0, m, 0, 0, 0, 0, 0, 0x01, nominal, 0, 0, 0xff, 0, unr, uc, unc,
                  0, 0, 0, 0, 0, 0, 0, 0]) + _tl(name)
    return bytes([rid & 0xff, rid >> 8, 0x51, 0x01, len(body)]) + body


def _hx(b: bytes) -> str:
    return " ".join(f"0x{x:02x}" for x in b)


def _emu(serial: str, cpu_temp: int) -> str:
    out = ["mc_setbmc 0x20", "mc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02 persist_sdr",
           "sel_enable 0x20 1000 0x0a"]
    for i, (num, ent, st, unit, m, name, nom, unc, uc, unr, val) in enumerate([
            (1, 0x03, 0x01, 0x01, 1, "CPU Temp", 40, 0x50, 0x5a, 0x64, cpu_temp),
            (2, 0x1d, 0x04, 0x12, 50, "FAN1", 100, 0xf0, 0xf5, 0xfa, 100)]):
        out += [f"sensor_add 0x20 0 {num} 0x{st:02x} 0x01",
                f"main_sdr_add 0x20 {_hx(_sdr(i, num, ent, st, unit, m, name, nom, unc, uc, unr))}",
                f"sensor_set_threshold 0x20 0 {num} settable 111000 0x{unr:02x} 0x{uc:02x} 0x{unc:02x} 00 00 00",
                f"sensor_set_value 0x20 0 {num} 0x{val:02x} 0",
                f"sensor_set_event_support 0x20 0 {num} enable scanning per-state "
                "000111111000000 000111111000000 000111111000000 000111111000000"]
    f = _fru(serial)
    out += [f"mc_add_fru_data 0x20 0 0x{len(f):x} data {_hx(f)}", "mc_enable 0x20"]
    return "\n".join(out) + "\n"


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    return ports.free_port(kind)


class IpmiSim:
    """One ipmi_sim BMC on 127.0.0.1:<free UDP port>, users admin/password (admin)."""

    def __init__(self, workdir: Path, name: str = "bm-sim", serial: str = "PROD-SN-1234", cpu_temp: int = 40,
                 password: str = PASSWORD, sol_port: int = 0) -> None:
        need_binary("ipmi_sim", "openipmi")
        self.dir = Path(workdir) / name
        self.name, self.serial, self.cpu_temp, self.password = name, serial, cpu_temp, password
        # serial-over-LAN: ipmi_sim connects (and keeps reconnecting) to the machine's serial port on this TCP port
        self.sol = f'  sol "tcp:127.0.0.1:{sol_port}" 115200\n' if sol_port else ""
        self.port = 0
        self.proc: subprocess.Popen[Any] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> IpmiSim:
        """Start (or start again on the same port, after ``stop``)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        chassis = self.dir / "chassis.sh"
        chassis.write_text(_CHASSIS)
        chassis.chmod(0o755)
        state = self.dir / "state"
        shutil.rmtree(state, ignore_errors=True)  # persist_sdr: a restart would add the SDRs twice
        state.mkdir()
        (self.dir / "sim.emu").write_text(_emu(self.serial, self.cpu_temp))
        for _ in range(5):
            self.port = self.port or free_port()
            auths = "none md2 md5 straight"
            (self.dir / "lan.conf").write_text(
                f'name "{self.name}"\nset_working_mc 0x20\n  startlan 1\n    addr 127.0.0.1 {self.port}\n'
                f"    priv_limit admin\n    allowed_auths_callback {auths}\n    allowed_auths_user {auths}\n"
                f"    allowed_auths_operator {auths}\n    allowed_auths_admin {auths}\n"
                "    guid a123456789abcdefa123456789abcdef\n  endlan\n"
                f'{self.sol}  chassis_control "{chassis} 0x20"\n'
                f'  user 2 true  "{USER}" "{self.password}" admin 10 none md2 md5 straight\n')
            log = open(self.dir / "sim.out", "wb")  # noqa: SIM115 (kept for the life of the process)
            self.proc = subprocess.Popen(["ipmi_sim", "-c", str(self.dir / "lan.conf"), "-f", str(self.dir / "sim.emu"),
                                          "-s", str(state), "-n"], stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, start_new_session=True)
            log.close()
            if self._wait_up():
                return self
            stop_process(self.proc)
            self.port = 0
        raise RuntimeError(f"ipmi_sim did not start: {(self.dir / 'sim.out').read_text()[-500:]}")

    def _wait_up(self, timeout: float = 60.0) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc is None or self.proc.poll() is not None:
                return False
            try:  # a busy machine (load 40 here) can take more than one try's 3 s to answer: try again
                if self.ipmitool("chassis", "power", "status", check=False, timeout=3).returncode == 0:
                    return True
            except subprocess.TimeoutExpired:
                continue
            time.sleep(0.1)
        return False

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None

    def __enter__(self) -> IpmiSim:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def ipmitool(self, *args: str, password: str | None = None, check: bool = True,
                 timeout: float = 15) -> subprocess.CompletedProcess[str]:
        """ipmitool as a second client (``-C 3``: the only cipher suite ipmi_sim has)."""
        need_binary("ipmitool", "ipmitool")
        return subprocess.run(["ipmitool", "-I", "lanplus", "-C", "3", "-H", "127.0.0.1", "-p", str(self.port),
                               "-U", USER, "-P", password or self.password, *args], capture_output=True, text=True,
                              timeout=timeout,
                              check=check)

    def power_state(self) -> str:
        """What the simulated chassis recorded: "on" / "off"."""
        p = self.dir / "power.state"
        return "on" if p.exists() and p.read_text().strip() == "1" else "off"

    def attach_vm(self, script: str) -> None:
        """Make power on/off/reset start/stop a real machine: ``script`` is a shell program taking
        start | stop | status (status prints 1 or 0); it must return at once (ipmi_sim waits for it)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        vm = self.dir / "vm.sh"
        vm.write_text(script)
        vm.chmod(0o755)

    def stop_vm(self) -> None:
        """The attached machine stopped (its script's ``stop``), if one is attached."""
        vm = self.dir / "vm.sh"
        if vm.exists():
            subprocess.run([str(vm), "stop"], check=False)

    def boot_device(self) -> str:
        p = self.dir / "boot.state"
        return p.read_text().strip() if p.exists() else "default"

    def resets(self) -> int:
        p = self.dir / "resets"
        return len(p.read_text().split()) if p.exists() else 0


class SerialPort:
    """The serial port of a machine behind ``IpmiSim(sol_port=...)``: a TCP server ipmi_sim connects to.
    It answers each line it is sent with ``<name>: <LINE IN UPPER CASE>``, as a machine's shell would
    answer a command: what a serial-over-LAN client types reaches it, its answer comes back."""

    def __init__(self, name: str = "SOL-MACHINE") -> None:
        import threading

        self.name = name
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(4)
        self.port = int(self.srv.getsockname()[1])
        self.lines: list[str] = []
        self.connects = 0
        self._stop = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        import threading

        while not self._stop:
            try:
                conn, _ = self.srv.accept()
            except OSError:
                return
            self.connects += 1  # ipmi_sim connects once per SOL activation
            threading.Thread(target=self._talk, args=(conn,), daemon=True).start()

    def _talk(self, conn: socket.socket) -> None:
        buf = b""
        with conn:
            while True:
                try:
                    data = conn.recv(4096)
                except OSError:
                    return
                if not data:
                    return
                buf += data
                while (cut := min((i for i in (buf.find(b"\r"), buf.find(b"\n")) if i >= 0), default=-1)) >= 0:
                    line, buf = buf[:cut].decode(errors="replace").strip(), buf[cut + 1:]
                    if line:
                        self.lines.append(line)
                        conn.sendall(f"{self.name}: {line.upper()}\r\n".encode())

    def close(self) -> None:
        self._stop = True
        self.srv.close()

    def __enter__(self) -> SerialPort:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SushyEmulator:
    """sushy-emulator with the fake driver on http://127.0.0.1:<free port>, Basic auth admin/password."""

    SYSTEMS = ({"uuid": "11111111-1111-1111-1111-111111111111", "name": "node-1", "power_state": "Off",
                "nics": [{"mac": "52:54:00:00:00:01", "ip": "127.0.0.11"}]},
               {"uuid": "22222222-2222-2222-2222-222222222222", "name": "node-2", "power_state": "On",
                "nics": [{"mac": "52:54:00:00:00:02", "ip": "127.0.0.12"}]})

    def __init__(self, workdir: Path) -> None:
        exe = SUSHY_VENV / "bin" / "sushy-emulator"
        need(exe.exists(), f"needs sushy-emulator in {SUSHY_VENV} (scripts/setup-peers.d/baremetal.sh)")
        self.exe = exe
        self.dir = Path(workdir) / "sushy"
        self.port = 0
        self.proc: subprocess.Popen[Any] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> SushyEmulator:
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "state").mkdir(exist_ok=True)
        # the htpasswd line is hashed with the emulator venv's bcrypt (ours does not carry it)
        hashed = subprocess.run([str(SUSHY_VENV / "bin" / "python"), "-c",
                                 "import bcrypt,sys; "
                                 "print(bcrypt.hashpw(sys.argv[1].encode(), bcrypt.gensalt()).decode())",
                                 PASSWORD], capture_output=True, text=True, check=True, timeout=30).stdout.strip()
        (self.dir / "htpasswd").write_text(f"{USER}:{hashed}\n")
        self.port = free_port(socket.SOCK_STREAM)
        (self.dir / "emulator.conf").write_text(
            f"SUSHY_EMULATOR_LISTEN_IP = '127.0.0.1'\nSUSHY_EMULATOR_LISTEN_PORT = {self.port}\n"
            f"SUSHY_EMULATOR_AUTH_FILE = '{self.dir / 'htpasswd'}'\nSUSHY_EMULATOR_FAKE_DRIVER = True\n"
            f"SUSHY_EMULATOR_STATE_DIR = '{self.dir / 'state'}'\n"
            f"SUSHY_EMULATOR_FAKE_SYSTEMS = {list(self.SYSTEMS)!r}\n")
        log = open(self.dir / "sushy.out", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen([str(self.exe), "--config", str(self.dir / "emulator.conf")],
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        log.close()
        import httpx

        end = time.monotonic() + 90  # a Python app: its imports alone took > 20 s at load 30
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                break
            try:
                if httpx.get(f"{self.url}/redfish/v1/", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"sushy-emulator did not start: {(self.dir / 'sushy.out').read_text()[-800:]}")

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None

    def __enter__(self) -> SushyEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
