"""Sizes as users type them: ``2g``, ``512m``, ``100G``, ``1t``, or a bare number of MB."""
from __future__ import annotations

import re

from core.errors import InputParameterError

_SIZE = re.compile(r"^\s*(\d+)\s*([mMgGtT]?)[bB]?\s*$")
_MULT = {"": 1, "m": 1, "g": 1024, "t": 1024 * 1024}

MAX_DISKS = 64  # per server: disk indexes 0..63 (the host contract's bound)
MAX_NICS = 8  # per server


def to_mb(value: object, what: str) -> int:
    if isinstance(value, bool):
        raise InputParameterError(f"{what}: {value!r} is not a size")
    if isinstance(value, int):
        n = value
    elif isinstance(value, str):
        m = _SIZE.match(value)
        if not m:
            raise InputParameterError(f"{what}: {value!r} is not a size (e.g. 2048, 512m, 2g, 1t)")
        n = int(m.group(1)) * _MULT[m.group(2).lower()]
    else:
        raise InputParameterError(f"{what}: {value!r} is not a size")
    if n <= 0:
        raise InputParameterError(f"{what}: must be positive")
    return n
