"""The one capacity formula (Cloudpods'): what a host or storage offers is
``(total - reserved) * commit bound``.

Used by the scheduler's snapshot, the host capacity figures the region shows, and the SQL guard of a
change-config claim: the arithmetic works on numbers and on SQLAlchemy column expressions alike.
"""
from __future__ import annotations

from typing import TypeVar

T = TypeVar("T")


def offered(total: T, reserved: T, cmtbound: T | float) -> T:
    """Capacity a placement may use: total minus reserved, times the over-commit bound."""
    return (total - reserved) * cmtbound  # type: ignore[operator, no-any-return]
