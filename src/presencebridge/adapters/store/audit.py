"""The audit log's rows (issue 18): appended, listed newest first, pruned.

Synchronous, like the store: the service runs it on the hub's store thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from presencebridge.adapters.store import tables as t

DETAILS_MAX = 4000  # characters of `details` kept: it is a summary, never a dump


@dataclass(frozen=True, slots=True)
class AuditEntry:
    at: datetime
    actor_kind: str  # "admin-token", "session", "personal-token", "agent-token", "cli"
    actor: str  # who: a name, an e-mail address, a user id; never a token
    action: str  # a stable code, e.g. "group.settings.changed"
    target: str  # what: a group id, a user id, a directory source
    details: str = "{}"  # short JSON text; secrets only as "changed"
    id: int | None = None  # given by the store


@dataclass(frozen=True, slots=True)
class AuditQuery:
    """Rows whose actor, action and target contain these texts (case-insensitive),
    newest first, `limit` of them, older than the row `before` (its id) if given."""

    actor: str = ""
    action: str = ""
    target: str = ""
    limit: int = 100
    before: int | None = None
    exact_target: bool = False  # `target` is the whole target (a user page's own rows)


@dataclass(frozen=True, slots=True)
class AuditPage:
    entries: list[AuditEntry]
    total: int  # every row the filters match, on all pages
    more: bool  # older rows follow: ask again with `before` = the last entry's id


def append(c: Connection, entry: AuditEntry) -> None:
    c.execute(
        t.audit_log.insert().values(
            at=entry.at, actor_kind=entry.actor_kind[:16], actor=entry.actor[:256],
            action=entry.action[:64], target=entry.target[:300],
            details=entry.details[:DETAILS_MAX],
        )
    )  # fmt: skip


def _contains(column: sa.ColumnElement[str], text: str) -> sa.ColumnElement[bool]:
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return sa.func.lower(column).like(f"%{escaped}%", escape="\\")


def page(c: Connection, query: AuditQuery) -> AuditPage:
    log = t.audit_log
    texts = (query.actor, query.action, query.target)
    if any("\x00" in text for text in texts):
        # No row holds NUL (every written text is checked); PostgreSQL cannot even be
        # asked for one: whoever searches for it finds nothing, not an error.
        return AuditPage([], 0, False)
    where: list[sa.ColumnElement[bool]] = []
    for column, text in (
        (log.c.actor, query.actor),
        (log.c.action, query.action),
        (log.c.target, "" if query.exact_target else query.target),
    ):
        if text:
            where.append(_contains(column, text))
    if query.exact_target:
        where.append(log.c.target == query.target)
    total = c.execute(sa.select(sa.func.count()).select_from(log).where(*where)).scalar_one()
    if query.before is not None:
        where.append(log.c.id < query.before)
    rows = c.execute(
        sa.select(log).where(*where).order_by(log.c.id.desc()).limit(query.limit + 1)
    ).all()
    entries = [
        AuditEntry(r.at, r.actor_kind, r.actor, r.action, r.target, r.details, r.id)
        for r in rows[: query.limit]
    ]
    return AuditPage(entries, int(total), len(rows) > query.limit)


def prune(c: Connection, before: datetime) -> int:
    result = c.execute(t.audit_log.delete().where(t.audit_log.c.at < before))
    return result.rowcount or 0
