"""A filter's answer for one host, after Kubernetes' framework statuses.

``unfit`` may pass later (capacity frees up); ``unfit_final`` will not without a config change
(wrong zone, wrong hypervisor); ``error`` is a bug in a filter, reported rather than raised.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Status = Literal["ok", "unfit", "unfit_final", "error"]


@dataclass(frozen=True, slots=True)
class Verdict:
    status: Status
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @staticmethod
    def unfit(reason: str, final: bool = False) -> Verdict:
        return Verdict("unfit_final" if final else "unfit", reason)

    @staticmethod
    def error(exc: BaseException) -> Verdict:
        return Verdict("error", f"filter failed: {type(exc).__name__}: {exc}")


OK = Verdict("ok")
