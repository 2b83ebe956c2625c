"""A second libvirtd on this machine: a second "hypervisor host" for migration tests.

libvirtd keeps its sockets, state and config at fixed paths (/run/libvirt, /var/lib/libvirt,
/etc/libvirt ...). The second daemon runs in its own mount namespace with those paths bind-mounted
from a private directory, its own host UUID (libvirt refuses to migrate a guest to "the same
host") and no cgroups of its own (both daemons would name a guest's cgroup the same). Clients
reach it at ``qemu+unix:///system?socket=<dir>/run/libvirt-sock``. Root only.

    with second_libvirtd(tmp_path / "lv2") as uri:
        conn = libvirt.open(uri)
"""
from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.procs import stop_process

_MOUNTS = {"run": "/run/libvirt", "lib": "/var/lib/libvirt", "cache": "/var/cache/libvirt",
           "log": "/var/log/libvirt", "etc": "/etc/libvirt"}


@contextmanager
def second_libvirtd(root: Path) -> Iterator[str]:
    import libvirt

    root.mkdir(parents=True, exist_ok=True)
    for sub, target in _MOUNTS.items():
        (root / sub).mkdir(exist_ok=True)
        Path(target).mkdir(parents=True, exist_ok=True)
    etc = root / "etc"
    for f in Path("/etc/libvirt").iterdir():  # the host's config files, then ours on top
        if f.is_file():
            shutil.copy(f, etc / f.name)
    (etc / "libvirtd.conf").write_text(f'host_uuid = "{uuid.uuid4()}"\n')
    (etc / "qemu.conf").write_text('user = "root"\ngroup = "root"\nstdio_handler = "file"\n'
                                   "cgroup_controllers = [ ]\nnamespaces = [ ]\n")
    script = root / "start.sh"
    binds = "\n".join(f"mount --bind {root / sub} {target}" for sub, target in _MOUNTS.items())
    script.write_text(f"#!/bin/sh\nset -e\nmount --make-rprivate /\n{binds}\n"
                      "exec libvirtd -f /etc/libvirt/libvirtd.conf -p /run/libvirt/libvirtd2.pid\n")
    script.chmod(0o700)
    sock = root / "run" / "libvirt-sock"
    uri = f"qemu+unix:///system?socket={sock}"
    log = open(root / "libvirtd.log", "ab")  # noqa: SIM115 - open while the daemon runs
    proc = subprocess.Popen(["unshare", "-m", str(script)], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        libvirt.registerErrorHandler(lambda c, e: None, None)
        deadline = time.monotonic() + 60
        while True:
            try:
                libvirt.open(uri).close()
                break
            except libvirt.libvirtError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    log = (root / "libvirtd.log").read_text()[-2000:]
                    raise RuntimeError(f"the second libvirtd did not start: {log}") from None
                time.sleep(0.2)
        yield uri
    finally:
        try:
            conn = libvirt.open(uri)
            for dom in conn.listAllDomains():  # its guests end with it
                try:
                    if dom.isActive():
                        dom.destroy()
                    dom.undefine()
                except libvirt.libvirtError:
                    pass
            conn.close()
        except libvirt.libvirtError:
            pass
        stop_process(proc, 15)
        log.close()
