"""Small helpers every region module shares: write transactions, names, owners, input models."""
from __future__ import annotations

import re
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from core.api.inputs import check_display_name, reject_bool_numbers
from core.api.jsonio import json_bytes, json_response  # noqa: F401  (re-exported, as begin_write)
from core.db.base import iso  # noqa: F401  (re-exported: region code imports it from here)
from core.db.engine import begin_write  # noqa: F401  (re-exported: region code imports it from here)
from core.errors import InputParameterError

M = TypeVar("M", bound=BaseModel)
_BAD_NAME = re.compile(r"[\x00-\x1f\x7f/]")
MAX_NAME = 255


def check_name(name: Any, what: str = "name") -> str:
    """A usable resource name: 1..255 characters, no control characters or '/' (it goes in URLs)."""
    if not isinstance(name, str) or name == "":
        raise InputParameterError(f"{what}: must be a non-empty string")
    if len(name) > MAX_NAME:
        raise InputParameterError(f"{what}: longer than {MAX_NAME} characters")
    if _BAD_NAME.search(name):
        raise InputParameterError(f"{what}: must not contain '/' or control characters")
    return check_display_name(name, what, MAX_NAME)


def text_field(body: dict[str, Any], key: str, default: str = "", max_len: int = 4096) -> str:
    """``body[key]`` as a string (``default`` when absent or null): any other JSON type is a 400
    instead of its Python spelling (``[]`` stored as the text "[]")."""
    v = body.get(key)
    if v is None:
        return default
    if not isinstance(v, str):
        raise InputParameterError(f"{key}: expected a string, not {type(v).__name__}")
    if len(v) > max_len:
        raise InputParameterError(f"{key}: longer than {max_len} characters")
    return v


def parse(model: type[M], data: Any, what: str = "") -> M:
    """Validate ``data`` with a pydantic model; the first errors become one 400 naming the fields."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InputParameterError(f"{what or 'body'}: expected a JSON object")
    reject_bool_numbers(model, data)
    try:
        return model.model_validate(data)
    except ValidationError as e:
        parts = []
        for err in e.errors()[:5]:
            loc = ".".join(str(p) for p in err.get("loc", ()) if p != "__root__") or (what or "body")
            msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
            parts.append(f"{loc}: {msg}")
        raise InputParameterError("; ".join(parts)) from None


def unwrap(body: Any, keyword: str) -> dict[str, Any]:
    """Bodies come wrapped (``{"server": {...}}``) or bare; return the inner object."""
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise InputParameterError("body: expected a JSON object")
    inner = body.get(keyword)
    if isinstance(inner, dict):
        return inner
    if isinstance(inner, list):  # ``{"zone": [...]}`` is no zone: refused, not read as an empty body
        raise InputParameterError(f"{keyword}: expected a JSON object")
    return body


def owner_of(row: Any) -> dict[str, Any]:
    """RBAC target from a stored row (never from the request)."""
    tenant = getattr(row, "tenant_id", None)
    return {"project_id": tenant or None, "domain_id": getattr(row, "domain_id", None)}
