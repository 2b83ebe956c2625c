"""Checks every service's input edge shares: 64-bit integers, numbers in JSON bodies, names.

The databases hold 64-bit integers: a larger one reached SQLite as an OverflowError and PostgreSQL
as a DataError (a 500 either way). Query parameters and headers go through ``int64``; JSON bodies
are checked once by the gateway (``json_number_error``) before any route parses them.

Names are shown to people and pasted into shells: characters that reorder or hide text
(bidirectional overrides and isolates, zero-width characters) make one name look like another,
so every service refuses them (``display_text_error``).
"""
from __future__ import annotations

import re
from typing import Any, get_args

from core.errors import InputParameterError

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1

# bidirectional marks/embeddings/overrides/isolates, zero-width and other invisible formatting
_HIDDEN = re.compile("[\u061c\u115f\u1160\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f"
                     "\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff9-\ufffb]")
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")

# a JSON body can only hold an out-of-range number as a long run of digits or a long exponent
_LONG_NUMBER = re.compile(rb"\d{19}|[eE][+-]?\d{3}")
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\[\s\S][^"\\]*)*"?')
_NUMBER = re.compile(rb"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")


def int64(value: Any, what: str, lo: int = INT64_MIN, hi: int = INT64_MAX) -> int:
    """``value`` (an int or its decimal text) as an integer in ``lo..hi`` (a 64-bit range by
    default); anything else is a 400 naming ``what``."""
    if isinstance(value, bool):
        raise InputParameterError(f"{what}: expected an integer, not a boolean")
    if isinstance(value, int):
        n = value
    else:
        s = str(value).strip()
        if len(s) > 40:
            raise InputParameterError(f"{what}: {s[:24]!r}... is out of range")
        try:
            n = int(s)
        except ValueError:
            raise InputParameterError(f"{what}: {s!r} is not an integer") from None
    if n < lo or n > hi:
        raise InputParameterError(f"{what}: {n} is out of range ({lo}..{hi})")
    return n


def json_number_error(raw: bytes) -> InputParameterError | None:
    """A 400 if the JSON text ``raw`` holds a number no 64-bit column can store (an integer beyond
    64 bits, or a float that overflows to infinity). Cheap for ordinary bodies: one C-speed search
    for a 19-digit run or a 3-digit exponent, and only then are strings cut out and numbers read."""
    if not _LONG_NUMBER.search(raw):
        return None
    for m in _NUMBER.finditer(_JSON_STRING.sub(b'""', raw)):
        tok = m.group()
        if not _LONG_NUMBER.search(tok):
            continue
        if b"." in tok or b"e" in tok or b"E" in tok:
            if float(tok) in (float("inf"), float("-inf")):
                return InputParameterError(f"number {tok[:24].decode()}...: out of range (overflows a double)")
        elif len(tok) > 21 or not INT64_MIN <= int(tok) <= INT64_MAX:
            return InputParameterError(f"integer {tok[:24].decode()}...: out of range (64-bit integers only)")
    return None


def display_text_error(text: str, what: str) -> str | None:
    """Why ``text`` cannot name something (control, bidirectional or invisible characters), or None."""
    if _CONTROL.search(text):
        return f"{what}: must not contain control characters"
    m = _HIDDEN.search(text)
    if m:
        return f"{what}: must not contain invisible or bidirectional-control characters (U+{ord(m.group()):04X})"
    return None


def check_display_name(name: Any, what: str = "name", max_len: int = 255) -> str:
    """A name people read: a non-empty string of at most ``max_len`` characters without control,
    bidirectional-control or invisible characters."""
    if not isinstance(name, str) or name == "":
        raise InputParameterError(f"{what}: must be a non-empty string")
    if len(name) > max_len:
        raise InputParameterError(f"{what}: longer than {max_len} characters")
    err = display_text_error(name, what)
    if err:
        raise InputParameterError(err)
    return name


def reject_bool_numbers(model: Any, data: Any) -> None:
    """pydantic's lax mode reads ``true`` as 1 for a number field (``disk_size: true`` made a 1 MB
    disk): a boolean where the pydantic ``model`` wants a number or a string is a 400."""
    if not isinstance(data, dict):
        return
    for name, f in model.model_fields.items():
        for k in {name, f.alias} if f.alias else {name}:
            if isinstance(data.get(k), bool) and not _admits_bool(f.annotation):
                raise InputParameterError(f"{k}: expected {'a string' if f.annotation is str else 'a number'}, "
                                          "not a boolean")


def _admits_bool(ann: Any) -> bool:
    if ann is bool or ann is Any:
        return True
    args = get_args(ann)
    if args:
        return any(_admits_bool(a) for a in args if a is not type(None))
    return not (isinstance(ann, type) and issubclass(ann, int | float | str))
