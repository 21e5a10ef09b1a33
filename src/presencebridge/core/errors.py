"""Why the core refuses a change; the API turns these into 4xx answers."""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum


class Reason(StrEnum):
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    INVALID = "invalid"
    FORBIDDEN = "forbidden"


class Rejected(Exception):
    """A request the model cannot accept; nothing has been changed.

    `message` is the API's English text; `code` and `params` say the same for a
    reader in another language (the console translates them, `web/labels.py`).
    """

    def __init__(
        self,
        reason: Reason,
        message: str,
        code: str = "",
        params: Mapping[str, str | int] | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.code = code
        self.params: dict[str, str | int] = dict(params or {})
