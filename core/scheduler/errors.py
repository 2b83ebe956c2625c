"""Errors the scheduler raises for a request it cannot even evaluate."""
from __future__ import annotations

from core.errors import InputParameterError


class ScheduleInputError(InputParameterError, ValueError):
    """The request names something the snapshot does not know (e.g. an instance group).

    ``field`` names the request field at fault, so the API can answer 400 with it. Part of the one
    error tree (a 400 wherever it surfaces); still a ValueError for callers that catch input errors so.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
