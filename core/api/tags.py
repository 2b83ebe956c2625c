"""``?tags.0.key=k&tags.0.value=v`` on every region list and the image list (Cloudpods' tag filter,
as its climc sends ``--tags k=v;k2``): rows whose metadata (an image's: its properties) has key k
with one of the values given for k (any value when none), all keys required; ``no_tags.N.*``
excludes them. Metadata keys are as stored (user tags are ``user:<key>``)."""
from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Select, not_, or_

from core.api.listing import ListQuery
from core.errors import InputParameterError

_TAG = re.compile(r"^(no_)?tags\.(\d+)\.(key|value)$")


def tag_filter(stmt: Select[Any], model: Any, q: ListQuery, column: str = "meta") -> Select[Any]:
    """``column``: the model's JSON object of string values the tags are (none: no filter)."""
    if not hasattr(model, column):
        return stmt
    entries: dict[tuple[bool, int], dict[str, Any]] = {}
    for k in list(q.extra):
        m = _TAG.match(k)
        if m is None:
            continue
        e = entries.setdefault((bool(m.group(1)), int(m.group(2))), {"key": "", "values": []})
        vals = q.values(k)
        if m.group(3) == "key":
            e["key"] = vals[-1] if vals else ""
        else:
            e["values"] += vals
    wanted: dict[tuple[bool, str], list[str]] = {}
    for (neg, idx), e in sorted(entries.items()):
        if not e["key"]:
            raise InputParameterError(f"{'no_' if neg else ''}tags.{idx}: a tag filter needs a key")
        wanted.setdefault((neg, e["key"]), []).extend(e["values"])
    for (neg, key), values in wanted.items():
        v = getattr(model, column)[key].as_string()
        cond = v.in_(values) if values else v.is_not(None)
        stmt = stmt.where(or_(v.is_(None), not_(cond)) if neg else cond)
    return stmt
