"""Image API (``/api/s/image``): ``/v1`` (Cloudpods) and ``/v2`` (OpenStack Glance), plus the version
document at the root that OpenStack clients discover after stripping the catalog URL's ``/v1``."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from core.glance import api_v1, api_v2

router = APIRouter()
router.include_router(api_v1.router)
router.include_router(api_v2.router)

# Glance v2 minor versions a client may ask for; all served by the same v2 routes.
V2_MINORS = ("2.9", "2.8", "2.7", "2.6", "2.5", "2.4", "2.3", "2.2", "2.1", "2.0")


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/api/s/image"


def versions(request: Request) -> dict[str, Any]:
    base = _base(request)
    out = [{"id": f"v{v}", "status": "CURRENT" if i == 0 else "SUPPORTED",
            "links": [{"rel": "self", "href": f"{base}/v2/"}]} for i, v in enumerate(V2_MINORS)]
    out.append({"id": "v1.0", "status": "SUPPORTED", "links": [{"rel": "self", "href": f"{base}/v1/"}]})
    return {"versions": out}


@router.get("/", include_in_schema=False)  # the bare /api/s/image too (the gateway adds the slash)
def version_document(request: Request) -> dict[str, Any]:
    return versions(request)


@router.get("/v2", include_in_schema=False)
@router.get("/v2/", include_in_schema=False)
def v2_document(request: Request) -> dict[str, Any]:
    return {"version": {"id": f"v{V2_MINORS[0]}", "status": "CURRENT",
                        "links": [{"rel": "self", "href": f"{_base(request)}/v2/"}]}}


@router.get("/v1", include_in_schema=False)
@router.get("/v1/", include_in_schema=False)
def v1_document(request: Request) -> dict[str, Any]:
    return {"version": {"id": "v1.0", "status": "SUPPORTED",
                        "links": [{"rel": "self", "href": f"{_base(request)}/v1/"}]}}
