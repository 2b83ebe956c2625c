"""Parameter types shared by climc commands: one vocabulary for netmasks and sizes."""
from __future__ import annotations

import ipaddress
import re
from typing import Any

import click


class Netmask(click.ParamType):
    """A netmask as a prefix length (24), ``/24`` or dotted (255.255.255.0): the length."""

    name = "netmask"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        v = str(value).strip().lstrip("/")
        if v.isdigit() and 0 <= int(v) <= 32:
            return int(v)
        try:
            return ipaddress.IPv4Network(f"0.0.0.0/{v}").prefixlen
        except ValueError:
            self.fail(f"{value!r} is not a netmask: give a length (24), /24 or 255.255.255.0", param, ctx)


_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgtp]?)i?b?$", re.I)
_MB = {"k": 1 / 1024, "": 1, "m": 1, "g": 1024, "t": 1024 ** 2, "p": 1024 ** 3}


class SizeMB(click.ParamType):
    """A size as Cloudpods writes it: 512m, 2g, 1t, or a bare number of MB: the number of MB."""

    name = "size"

    def __init__(self, unlimited: bool = False) -> None:
        self.unlimited = unlimited  # -1 passes (quota: no limit)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        if self.unlimited and str(value).strip() == "-1":
            return -1
        m = _SIZE.match(str(value).strip())
        if m is None:
            self.fail(f"{value!r} is not a size: give MB (512) or a unit (512m, 2g, 1t)", param, ctx)
        mb = float(m.group(1)) * _MB[m.group(2).lower()]
        if mb != int(mb) or mb < 0:
            self.fail(f"{value!r} is not a whole number of MB", param, ctx)
        return int(mb)


NETMASK = Netmask()
SIZE_MB = SizeMB()
LIMIT_MB = SizeMB(unlimited=True)
