"""The outbox of the signed outgoing webhooks (issue 17 part 4): rows in, the oldest
undelivered change of each user out, delivered rows deleted, dead letters kept.

Synchronous, like the store: the webhook service runs it on a worker thread.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from presencebridge.adapters.store import tables as t


@dataclass(frozen=True, slots=True)
class NewChange:
    webhook: str
    user_id: str
    event_id: str  # the Idempotency-Key: the same on every attempt
    event: str  # "presence.changed" or "user.deleted"
    body: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class OutboxEntry:
    id: int
    webhook: str
    user_id: str
    event_id: str
    event: str
    body: str
    created_at: datetime
    attempts: int
    last_error: str | None
    dead_at: datetime | None


def _entry(row: sa.Row[tuple[object, ...]]) -> OutboxEntry:
    m = row._mapping
    return OutboxEntry(
        m["id"], m["webhook"], m["user_id"], m["event_id"], m["event"], m["body"],
        m["created_at"], m["attempts"], m["last_error"], m["dead_at"],
    )  # fmt: skip


class WebhookOutbox:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def add(self, changes: Sequence[NewChange]) -> None:
        """Many changes in one transaction, in their order (their ids keep it)."""
        if not changes:
            return
        rows = [
            {
                "webhook": c.webhook, "user_id": c.user_id, "event_id": c.event_id,
                "event": c.event, "body": c.body, "created_at": c.created_at, "attempts": 0,
            }
            for c in changes
        ]  # fmt: skip
        try:
            with self.engine.begin() as c:
                c.execute(t.webhook_outbox.insert(), rows)
        except sa.exc.IntegrityError:
            # A batch retried after its commit was in fact made (the connection broke
            # after it): the rows already there are skipped one by one.
            for row in rows:
                try:
                    with self.engine.begin() as c:
                        c.execute(t.webhook_outbox.insert(), [row])
                except sa.exc.IntegrityError:
                    continue

    def heads(self, webhook: str, limit: int, skip: Collection[str] = ()) -> list[OutboxEntry]:
        """The oldest change of each user still to deliver, oldest first, leaving out the
        users in `skip` (in flight, waiting): only a user's first change may go out, so
        each user's changes arrive in their order."""
        o = t.webhook_outbox
        first = (
            sa.select(sa.func.min(o.c.id))
            .where(o.c.webhook == webhook, o.c.dead_at.is_(None))
            .group_by(o.c.user_id)
        )
        if skip:
            first = first.where(o.c.user_id.not_in(list(skip)))
        with self.engine.begin() as c:
            rows = c.execute(sa.select(o).where(o.c.id.in_(first)).order_by(o.c.id).limit(limit))
            return [_entry(r) for r in rows]

    def delivered(self, entry_ids: Sequence[int]) -> None:
        """The receiver took these: gone, in one transaction."""
        o = t.webhook_outbox
        with self.engine.begin() as c:
            for start in range(0, len(entry_ids), 500):
                c.execute(o.delete().where(o.c.id.in_(entry_ids[start : start + 500])))

    def failed(self, entry_id: int, attempts: int, error: str, dead_at: datetime | None) -> None:
        """An attempt failed: count it; `dead_at` given: it is a dead letter now."""
        o = t.webhook_outbox
        with self.engine.begin() as c:
            c.execute(
                o.update()
                .where(o.c.id == entry_id)
                .values(attempts=attempts, last_error=error[:300], dead_at=dead_at)
            )

    def counts(self, webhook: str) -> tuple[int, int]:
        """(pending, dead) of a webhook."""
        o = t.webhook_outbox
        dead = sa.func.count().filter(o.c.dead_at.is_not(None))
        with self.engine.begin() as c:
            total, dead_count = c.execute(
                sa.select(sa.func.count(), dead).where(o.c.webhook == webhook)
            ).one()
        return int(total) - int(dead_count), int(dead_count)

    def dead_letters(self, webhook: str, limit: int) -> list[OutboxEntry]:
        """The newest dead letters first."""
        o = t.webhook_outbox
        with self.engine.begin() as c:
            rows = c.execute(
                sa.select(o)
                .where(o.c.webhook == webhook, o.c.dead_at.is_not(None))
                .order_by(o.c.id.desc())
                .limit(limit)
            )
            return [_entry(r) for r in rows]

    def revive(self, webhook: str, entry_id: int) -> OutboxEntry | None:
        """A dead letter goes out again (with its own idempotency key), attempts from 0;
        None when there is no such dead letter."""
        o = t.webhook_outbox
        mine = (o.c.id == entry_id, o.c.webhook == webhook, o.c.dead_at.is_not(None))
        with self.engine.begin() as c:
            row = c.execute(sa.select(o).where(*mine)).first()
            if row is None:
                return None
            c.execute(o.update().where(*mine).values(dead_at=None, attempts=0))
            return _entry(row)

    def discard(self, webhook: str, entry_id: int) -> bool:
        """Delete a dead letter; whether there was one."""
        o = t.webhook_outbox
        with self.engine.begin() as c:
            result = c.execute(
                o.delete().where(
                    o.c.id == entry_id, o.c.webhook == webhook, o.c.dead_at.is_not(None)
                )
            )
            return bool(result.rowcount)
