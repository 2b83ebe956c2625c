"""Imports every service's models so Base.metadata is complete (migrations, tests).

A static list on purpose: scanning breaks a PyInstaller binary (STYLE.md pitfall 2).
"""
from __future__ import annotations

import core.audit
import core.console.models
import core.db.lease
import core.glance.models
import core.keystone.models
import core.metrics.models
import core.region.models  # noqa: F401  (region + task tables)
