"""Signed-in console sessions (issue 14): a row per session, keyed by the SHA-256 of
the random id in the browser's cookie, and who a signed-in person is among the users.

Synchronous, like the store: the service runs it on the hub's store thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from presencebridge.adapters.store import tables as t


@dataclass(frozen=True, slots=True)
class SessionRecord:
    id_hash: str
    role: str  # "admin" or "user"
    user_id: str | None
    method: str  # "oidc" or "admin-token"
    subject: str
    provider: str | None
    admin_fingerprint: str | None
    created_at: datetime
    expires_at: datetime


class SessionStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def open(self, record: SessionRecord) -> None:
        with self.engine.begin() as c:
            c.execute(
                t.console_sessions.insert().values(
                    id_hash=record.id_hash, role=record.role, user_id=record.user_id,
                    method=record.method, subject=record.subject[:256],
                    provider=record.provider, admin_fingerprint=record.admin_fingerprint,
                    created_at=record.created_at, expires_at=record.expires_at,
                )
            )  # fmt: skip

    def find(self, id_hash: str, now: datetime) -> SessionRecord | None:
        """The session, unless it expired (then it is deleted)."""
        sessions = t.console_sessions
        with self.engine.begin() as c:
            row = c.execute(sa.select(sessions).where(sessions.c.id_hash == id_hash)).one_or_none()
            if row is None:
                return None
            record = SessionRecord(**row._asdict())
            if _aware(record.expires_at) <= now:
                c.execute(sessions.delete().where(sessions.c.id_hash == id_hash))
                return None
            return record

    def close(self, id_hash: str) -> bool:
        sessions = t.console_sessions
        with self.engine.begin() as c:
            result = c.execute(sessions.delete().where(sessions.c.id_hash == id_hash))
            return bool(result.rowcount)

    def close_for(self, user_ids: Sequence[str]) -> int:
        """End every session of these users (deleted, or no longer allowed in)."""
        sessions = t.console_sessions
        with self.engine.begin() as c:
            result = c.execute(sessions.delete().where(sessions.c.user_id.in_(list(user_ids))))
            return result.rowcount or 0

    def prune(self, now: datetime) -> int:
        sessions = t.console_sessions
        with self.engine.begin() as c:
            result = c.execute(sessions.delete().where(sessions.c.expires_at <= now))
            return result.rowcount or 0

    def user_for_person(self, object_id: str | None, names: Sequence[str]) -> str | None:
        """The hub user a signed-in person is: by Entra object id (= the user's Teams
        user id), else by UPN / e-mail address (case-insensitive); None if nobody.

        An address never matches a user whose Teams user id names another object: the
        same UPN in another tenant (a multi-tenant sign-in) is another person."""
        users = t.users.c
        with self.engine.begin() as c:
            if object_id:
                found = c.execute(
                    sa.select(users.id).where(users.teams_user_id == object_id)
                ).scalar_one_or_none()
                if found is not None:
                    return str(found)
            wanted = sorted({n.lower() for n in names if n})
            if not wanted:
                return None
            query = sa.select(users.id).where(sa.func.lower(users.email).in_(wanted))
            if object_id:
                query = query.where(users.teams_user_id.is_(None))
            rows = c.execute(query.limit(2)).all()
        # Two users with one address: nobody can tell which one signed in.
        return str(rows[0].id) if len(rows) == 1 else None


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
