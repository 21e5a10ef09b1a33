"""The group commit's rows handed to the driver directly (adapters/store/bulk.py) are
stored exactly as SQLAlchemy's own `execute` stores them, on every database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from presencebridge.adapters.store import GroupRecord, HistoryEntry, Store
from presencebridge.adapters.store import tables as t
from presencebridge.adapters.store.bulk import BulkStatement
from presencebridge.core.model import User, UserState

NOW = datetime(2024, 3, 4, 8, 30, 15, 123456, tzinfo=UTC)
COLUMNS = ["user_id", "at", "source", "status", "telephony", "text", "change"]


def history_rows() -> list[dict[str, Any]]:
    plus_two = timezone(timedelta(hours=2))
    return [
        {"user_id": "alice", "at": NOW, "source": "pbx", "status": "busy",
         "telephony": "on_the_phone", "text": "Am Telefon – „Müller“", "change": None},
        {"user_id": "alice", "at": NOW.astimezone(plus_two) + timedelta(seconds=1),
         "source": "api", "status": "available", "telephony": "idle", "text": "",
         "change": "kept the forwarding 🙂"},
    ]  # fmt: skip


def stored(engine: Engine) -> list[tuple[Any, ...]]:
    """The rows as the database holds them, without SQLAlchemy's result processing."""
    with engine.connect() as c:
        rows = c.exec_driver_sql(
            "SELECT user_id, at, source, status, telephony, text, change "
            "FROM presence_history ORDER BY id"
        )
        return [tuple(r) for r in rows]


def test_bulk_rows_are_stored_as_sqlalchemy_stores_them(
    engine: Engine, store: Store, group: GroupRecord
) -> None:
    store.create_users([UserState(User("alice", "Alice", group.id))], [], NOW)
    with engine.begin() as c:
        c.execute(t.presence_history.insert(), history_rows())
    by_sqlalchemy = stored(engine)
    with engine.begin() as c:
        c.execute(t.presence_history.delete())
        BulkStatement(t.presence_history.insert(), COLUMNS).run(c, history_rows())
    assert stored(engine) == by_sqlalchemy
    # And read back through the store as the instants they were.
    found = store.history("alice", 10)
    assert [h.at for h in found] == sorted((r["at"] for r in history_rows()), reverse=True)


def test_a_saved_state_and_its_version_and_time_are_written(
    engine: Engine, store: Store, group: GroupRecord
) -> None:
    state = UserState(User("bob", "Bob Bäcker", group.id, email="bob@example.com"))
    store.create_users([state], [], NOW)
    later = NOW + timedelta(minutes=3)
    entry = HistoryEntry("bob", later, "pbx", "busy", "on_the_phone", "x" * 250)
    store.save_users([state, state], [entry], later)
    with engine.connect() as c:
        row = c.execute(sa.select(t.users).where(t.users.c.id == "bob")).one()
    assert row.version == 3  # created, then written twice in one statement
    assert row.updated_at == later
    assert row.display_name == "Bob Bäcker" and row.email == "bob@example.com"
    [kept] = store.history("bob", 5)
    assert kept.text == "x" * 200 and kept.at == later
