"""Imports every service's models so Base.metadata is complete (migrations, tests).

A static list on purpose: scanning breaks a PyInstaller binary (STYLE.md pitfall 2).
"""
from __future__ import annotations

import core.audit  # noqa: F401
import core.db.lease  # noqa: F401
import core.keystone.models  # noqa: F401
import core.glance.models  # noqa: F401
