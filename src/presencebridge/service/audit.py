"""The audit log (issue 18): who changed what, when.

Whoever takes a request in says who is acting (`acting`): the API for a token
(`api/auth.py`), the console for a signed-in session (`web/forms.py`), the command line
through the API. The service records each administrative change it made for them with
`entry` (the hub's `audit`), right after the change is stored; a refused change raises
before and records nothing. Work nobody asked for (timers, the scheduled directory sync,
the desktop agents, PBX and Teams events) has no actor and is not recorded.

Secrets never reach the log: a field whose name says it holds one (token, secret,
password, key) is recorded as "changed", never its value.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from presencebridge.adapters.store.audit import AuditEntry

# How the actor proved who they are (the column `actor_kind`).
ADMIN_TOKEN = "admin-token"  # noqa: S105 (names, not secrets)
SESSION = "session"
PERSONAL_TOKEN = "personal-token"  # noqa: S105
AGENT_TOKEN = "agent-token"  # noqa: S105
CLI = "cli"
KINDS = (ADMIN_TOKEN, SESSION, PERSONAL_TOKEN, AGENT_TOKEN, CLI)

RETENTION = timedelta(days=365)
CHANGED = "changed"  # what the log says of a secret
_SECRET_WORDS = ("token", "secret", "password", "key", "credential")


@dataclass(frozen=True, slots=True)
class Actor:
    kind: str  # one of KINDS
    name: str  # the person's name or e-mail address, a user id, "administrator"


# Who the current request acts for; None: nobody asked (timers, connectors): no record.
acting: ContextVar[Actor | None] = ContextVar("presencebridge_audit_actor", default=None)


@contextmanager
def acting_as(actor: Actor | None) -> Iterator[None]:
    """`actor` acts inside the block (None: the block's changes are not recorded one by
    one, e.g. the users a directory run changes: the run is recorded as a whole)."""
    token = acting.set(actor)
    try:
        yield
    finally:
        acting.reset(token)


def is_secret(field: str) -> bool:
    lowered = field.lower()
    return any(word in lowered for word in _SECRET_WORDS)


def _plain(value: Any) -> Any:
    """A value as JSON shows it (tuples as lists, times as ISO text, enums by value)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(getattr(value, "value", value))


def changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """The fields that differ, each as [old, new] ("changed" for a secret)."""
    found: dict[str, Any] = {}
    for field in sorted({*old, *new}):
        before, after = _plain(old.get(field)), _plain(new.get(field))
        if before != after:
            found[field] = CHANGED if is_secret(field) else [before, after]
    return found


def details_text(details: Mapping[str, Any] | None) -> str:
    """Details as the column keeps them: JSON, secrets replaced by "changed"."""
    shown = {k: CHANGED if is_secret(k) else _plain(v) for k, v in (details or {}).items()}
    return json.dumps(shown, ensure_ascii=False, sort_keys=True, separators=(", ", ": "))


def entry(
    action: str, target: str, details: Mapping[str, Any] | None = None, actor: Actor | None = None
) -> AuditEntry | None:
    """The row for a change the current actor (or `actor`) made; None if nobody acts."""
    who = actor if actor is not None else acting.get()
    if who is None:
        return None
    return AuditEntry(datetime.now(UTC), who.kind, who.name, action, target, details_text(details))
