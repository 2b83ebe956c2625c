"""core.api.inputs: the checks every service's edge shares (64-bit integers, numbers in JSON, names)."""
from __future__ import annotations

import pytest
from pydantic import BaseModel

from core.api.inputs import (
    INT64_MAX,
    INT64_MIN,
    check_display_name,
    int64,
    json_number_error,
    reject_bool_numbers,
)
from core.errors import InputParameterError


def test_int64_bounds_and_spellings() -> None:
    assert int64("42", "x") == 42 and int64(INT64_MAX, "x") == INT64_MAX and int64(str(INT64_MIN), "x") == INT64_MIN
    for bad in (INT64_MAX + 1, str(2**70), "1" * 5000, "x", "1.5", True):
        with pytest.raises(InputParameterError):
            int64(bad, "x")
    with pytest.raises(InputParameterError):
        int64(-1, "offset", lo=0)


@pytest.mark.parametrize("raw", [b'{"a": 18446744073709551616}', b'[-9223372036854775809]', b'{"a": 1e400}',
                                 b'{"a": {"b": [1, 123456789012345678901234567890]}}', b'{"a": -1.5e999}'])
def test_json_numbers_no_column_can_store_are_refused(raw: bytes) -> None:
    assert json_number_error(raw) is not None


@pytest.mark.parametrize("raw", [b'{"a": 9223372036854775807}', b'{"a": "123456789012345678901234567890"}',
                                 b'{"a": 1.5e300, "b": "1e999"}', b'{"a": -9223372036854775808}', b"{}",
                                 b'{"s": "\\"99999999999999999999999"}'])
def test_ordinary_json_passes(raw: bytes) -> None:
    assert json_number_error(raw) is None


@pytest.mark.parametrize("name", ["a\u202eb", "a\u200fb", "a\u2066b\u2069", "a\u200bb", "a\ufeffb", "a\x00b",
                                  "a\nb", "a\x85b", "x" * 256, "", 5, None])
def test_names_that_hide_or_reorder_text_are_refused(name: object) -> None:
    with pytest.raises(InputParameterError):
        check_display_name(name)


def test_ordinary_names_pass() -> None:
    for name in ("web-1", "数据库", "café au lait", "x" * 255, "עברית"):  # right-to-left text itself is fine
        assert check_display_name(name) == name


def test_booleans_are_not_numbers() -> None:
    class M(BaseModel):
        size: int
        name: str = ""
        flag: bool = False
        either: int | None = None

    reject_bool_numbers(M, {"size": 1, "flag": True})
    for body in ({"size": True}, {"size": 1, "name": False}, {"size": 1, "either": False}):
        with pytest.raises(InputParameterError):
            reject_bool_numbers(M, body)
