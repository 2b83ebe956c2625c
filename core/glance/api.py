"""Image API (``/api/s/image``): ``/v1`` (Cloudpods) and ``/v2`` (OpenStack) are added here."""
from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
