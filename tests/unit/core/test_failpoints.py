"""core/failpoints.py: inert unless CLOUDPODS_FAILPOINTS names a point; then it logs and pauses there."""
from __future__ import annotations

import logging

import pytest

from core import failpoints


def test_inert_by_default_and_pauses_only_the_named_point(monkeypatch: pytest.MonkeyPatch,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    slept: list[float] = []
    monkeypatch.setattr(failpoints.time, "sleep", slept.append)
    monkeypatch.delenv(failpoints.ENV, raising=False)
    failpoints.hit("alerts-before-commit")
    assert slept == []
    monkeypatch.setenv(failpoints.ENV, "other=pause:5, alerts-before-commit=pause:2.5,bad=pause:x,junk")
    with caplog.at_level(logging.WARNING, "cloudpods.failpoints"):
        failpoints.hit("alerts-before-commit")
        failpoints.hit("not-named")
    assert slept == [2.5]
    assert "failpoint alerts-before-commit reached" in caplog.text and "bad=pause:x" in caplog.text
