"""How every adapter's settings errors read: `field: what is wrong`, never the value
given (it may be a password), so a config file's mistake can be printed and logged."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import ValidationError

_NONE: Mapping[str, str] = {}


def describe(
    error: ValidationError,
    *,
    by_type: Mapping[str, str] = _NONE,
    when_missing: Mapping[str, str] = _NONE,
) -> str:
    """Each error of `error` in one line joined by "; ". `by_type` replaces pydantic's
    message for an error type (a regex pattern says little to an administrator);
    `when_missing` says what to do about a missing field."""
    lines = []
    for item in error.errors(include_input=False, include_url=False):
        where = ".".join(str(part) for part in item["loc"])
        message = by_type.get(item["type"]) or str(item["msg"]).removeprefix("Value error, ")
        if item["type"] == "missing" and where in when_missing:
            message = when_missing[where]
        lines.append(f"{where}: {message}" if where else message)
    return "; ".join(lines)
