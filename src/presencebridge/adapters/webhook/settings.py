"""A `[[publish]] kind = "webhook"` table (docs/webhooks.md), checked when the
configuration file is read: `ValueError` naming the field, never echoing the secret."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

KIND = "webhook"
SECRET = "secret"  # noqa: S105 - the key the secret arrives under (adapters/connectors.py)
_GROUP = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$")
_KNOWN = {
    "name", "url", "groups", "timeout_seconds", "max_attempts", "give_up_after_seconds",
    "first_retry_seconds", "max_retry_seconds", "concurrency", "language", SECRET,
}  # fmt: skip


@dataclass(frozen=True)
class WebhookSettings:
    """One webhook: where it posts, for whom, how long it keeps trying."""

    name: str
    url: str
    secret: str = field(repr=False)  # the HMAC key; never logged or shown
    groups: tuple[str, ...] = ()  # configuration groups whose users it gets; () = everyone
    timeout_seconds: float = 10.0
    max_attempts: int = 20  # a change is dead-lettered after this many failed attempts
    give_up_after_seconds: float = 86_400.0  # ... or when it is older than this
    first_retry_seconds: float = 1.0  # backoff: doubled per failure up to the maximum
    max_retry_seconds: float = 300.0
    concurrency: int = 8  # requests in flight at once (each for another user)
    language: str = "en"  # of the texts in the presence resource

    def wants(self, group: str | None) -> bool:
        return not self.groups or group in self.groups

    @property
    def shown_url(self) -> str:
        """The URL without credentials or query (which may carry a token) for screens."""
        parts = urlsplit(self.url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{host}{port}{parts.path}"


def _number(table: Mapping[str, Any], key: str, default: float, low: float, high: float) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{key} must be a number")
    if not low <= value <= high:
        raise ValueError(f"{key} must be between {low:g} and {high:g}")
    return float(value)


def _url(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError('url is required: url = "https://receiver.example/hook"')
    parts = urlsplit(value)
    try:
        parts.port  # noqa: B018 - raises on a port that is no number
    except ValueError:
        raise ValueError("url has an invalid port") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("url must be an http:// or https:// URL with a host")
    if any(c.isspace() for c in value):
        raise ValueError("url must not contain spaces")
    return value


def _groups(value: Any) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise ValueError('groups must be a list of configuration groups, e.g. ["sales"]')
    for group in value:
        if not isinstance(group, str) or not _GROUP.match(group):
            raise ValueError("groups holds something that is no configuration group id")
    return tuple(value)


def _check_keys(table: Mapping[str, Any]) -> None:
    unknown = sorted(set(table) - _KNOWN)
    if unknown:
        raise ValueError(f"unknown setting(s) {', '.join(unknown)}; see docs/webhooks.md")
    secret = table.get(SECRET)
    if not isinstance(secret, str) or not secret:
        raise ValueError("the HMAC secret is missing: name secret_env or secret_file")


def parse(table: Mapping[str, Any]) -> WebhookSettings:
    """The table's settings; the secret arrives under "secret" (read from `secret_env`
    or `secret_file`)."""
    name = str(table.get("name") or KIND)
    try:
        _check_keys(table)
        language = table.get("language", "en")
        if language not in ("en", "de"):
            raise ValueError('language must be "en" or "de"')
        return WebhookSettings(
            name=name,
            url=_url(table.get("url")),
            secret=table[SECRET],
            groups=_groups(table.get("groups", [])),
            timeout_seconds=_number(table, "timeout_seconds", 10.0, 0.1, 300),
            max_attempts=int(_number(table, "max_attempts", 20, 1, 1000)),
            give_up_after_seconds=_number(table, "give_up_after_seconds", 86_400.0, 1, 30 * 86_400),
            first_retry_seconds=_number(table, "first_retry_seconds", 1.0, 0.01, 3600),
            max_retry_seconds=_number(table, "max_retry_seconds", 300.0, 0.01, 86_400),
            concurrency=int(_number(table, "concurrency", 8, 1, 256)),
            language=language,
        )
    except ValueError as error:
        raise ValueError(f"[[publish]] {name}: {error}") from None
