"""JSON bodies under ``/api/s/image`` with a size cap.

The gateway exempts the image prefix from its body cap (uploads stream), so the metadata routes
cap their own JSON bodies at the controller's ``max_body_bytes``.
"""
from __future__ import annotations

import json
from typing import Any

from fastapi import Request

from core.api.inputs import json_number_error
from core.api.middleware import json_too_deep, too_deep_error
from core.errors import InputParameterError, RequestTooLargeError


async def read_json(request: Request) -> Any:
    limit = int(request.app.state.settings.max_body_bytes)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestTooLargeError(f"request body exceeds {limit} bytes")
    buf = bytearray()
    async for chunk in request.stream():
        buf += chunk
        if len(buf) > limit:
            raise RequestTooLargeError(f"request body exceeds {limit} bytes")
    if json_too_deep(bytes(buf)):  # a body that did not say it is JSON skipped the gateway's check
        raise too_deep_error()
    err = json_number_error(bytes(buf))
    if err is not None:
        raise err
    try:
        return json.loads(buf) if buf else None
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise InputParameterError("malformed JSON body") from None
