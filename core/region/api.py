"""Region API (``/api/s/compute_v2``). Resource routers are added here as they land."""
from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
