"""Reading a pseudo-terminal until a marker shows: how the console tests drive climc in a real terminal."""
from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


def read_until(master: int, out: bytearray, marker: bytes, timeout: float = 60) -> None:
    """Append what the terminal prints to ``out`` until ``marker`` is in it; fail with the tail otherwise."""
    end = time.monotonic() + timeout
    while marker not in out and time.monotonic() < end:
        r, _, _ = select.select([master], [], [], 0.2)
        if r:
            try:
                out.extend(os.read(master, 65536))
            except OSError:  # the other side closed
                break
    assert marker in out, bytes(out[-3000:])


@dataclass
class Terminal:
    """A program in a pseudo-terminal: ``until`` reads what it printed (into ``out``) up to a marker."""

    proc: subprocess.Popen[bytes]
    master: int
    out: bytearray = field(default_factory=bytearray)

    def until(self, marker: bytes, timeout: float = 60) -> None:
        read_until(self.master, self.out, marker, timeout)

    def type(self, data: bytes) -> None:
        os.write(self.master, data)


@contextmanager
def climc_in_terminal(env: dict[str, str], *args: str) -> Iterator[Terminal]:
    """climc in a terminal (a pty), as a person runs a console; killed if still running on exit."""
    master, slave = os.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "climc", *args], env=env, stdin=slave, stdout=slave,
                            stderr=slave, start_new_session=True)
    os.close(slave)
    try:
        yield Terminal(proc, master)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
