"""Scheduler API (``/api/s/scheduler``)."""
from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
