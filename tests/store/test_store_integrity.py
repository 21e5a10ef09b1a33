"""The database refuses what breaks its constraints, and a refused write writes nothing."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from presencebridge.adapters.store import GroupRecord, HistoryEntry, Store
from presencebridge.adapters.store import tables as t
from presencebridge.core.model import ProfileTemplate, Selection, Status, User, UserState
from presencebridge.core.settings import GroupSettings

NOW = datetime(2024, 3, 4, 8, 30, tzinfo=UTC)


def count(store: Store, table: sa.Table) -> int:
    with store.engine.connect() as connection:
        return int(connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def versions(store: Store) -> dict[str, int]:
    with store.engine.connect() as connection:
        rows = connection.execute(sa.select(t.users.c.id, t.users.c.version))
        return {row.id: row.version for row in rows}


def test_a_user_in_a_group_that_does_not_exist_is_refused(store: Store, group: GroupRecord) -> None:
    with pytest.raises(IntegrityError):
        store.create_user(UserState(User("alice", "Alice", "no-such-group")), NOW)

    assert store.load_users() == []
    assert count(store, t.users) == 0


def test_moving_a_user_to_a_group_that_does_not_exist_is_refused(
    store: Store, group: GroupRecord
) -> None:
    alice = UserState(User("alice", "Alice", group.id))
    store.create_user(alice, NOW)

    moved = UserState(User("alice", "Alice", "no-such-group"))
    entry = HistoryEntry("alice", NOW, "directory", "available", "idle", "")
    with pytest.raises(IntegrityError):
        store.update_user(moved, entry, None, NOW)

    assert store.load_users() == [alice]


def test_a_duplicate_teams_user_id_is_refused(store: Store, group: GroupRecord) -> None:
    alice = UserState(User("alice", "Alice", group.id, "teams-1"))
    store.create_user(alice, NOW)

    with pytest.raises(IntegrityError):
        store.create_user(UserState(User("bob", "Bob", group.id, "teams-1")), NOW)

    assert store.load_users() == [alice]
    assert count(store, t.users) == 1


def test_users_without_a_teams_id_do_not_collide(store: Store, group: GroupRecord) -> None:
    alice = UserState(User("alice", "Alice", group.id))
    bob = UserState(User("bob", "Bob", group.id))

    store.create_user(alice, NOW)
    store.create_user(bob, NOW)

    assert store.load_users() == [alice, bob]


def test_a_duplicate_user_id_is_refused(store: Store, group: GroupRecord) -> None:
    alice = UserState(User("alice", "Alice", group.id))
    store.create_user(alice, NOW)

    with pytest.raises(IntegrityError):
        store.create_user(UserState(User("alice", "Other Alice", group.id)), NOW)

    assert store.load_users() == [alice]


def test_a_refused_save_users_writes_nothing_at_all(store: Store, group: GroupRecord) -> None:
    alice = UserState(User("alice", "Alice", group.id, "teams-alice"))
    bob = UserState(User("bob", "Bob", group.id, "teams-bob"))
    store.create_user(alice, NOW)
    store.create_user(bob, NOW)

    changed_alice = replace(alice, selection=Selection("Lunch", NOW))
    changed_bob = replace(bob, selection=Selection("Lunch", NOW))
    # The history of a user who is gone breaks a foreign key after both rows changed.
    history = [
        HistoryEntry("alice", NOW, "manual", "away", "idle", "Lunch"),
        HistoryEntry("gone", NOW, "manual", "away", "idle", "Lunch"),
    ]
    with pytest.raises(IntegrityError):
        store.save_users([changed_alice, changed_bob], history, NOW + timedelta(minutes=1))

    assert store.load_users() == [alice, bob]
    assert versions(store) == {"alice": 1, "bob": 1}
    assert store.history("alice") == []
    assert count(store, t.presence_history) == 0


def test_history_of_an_unknown_user_is_refused(store: Store, group: GroupRecord) -> None:
    alice = UserState(User("alice", "Alice", group.id))
    store.create_user(alice, NOW)
    entries = [
        HistoryEntry("alice", NOW, "pbx", "busy", "on_the_phone", "call"),
        HistoryEntry("ghost", NOW, "pbx", "busy", "on_the_phone", "call"),
    ]

    with pytest.raises(IntegrityError):
        store.save_users([replace(alice, selection=Selection("Lunch", NOW))], entries, NOW)

    assert count(store, t.presence_history) == 0
    assert store.load_users() == [alice]


def test_templates_of_a_group_that_does_not_exist_are_refused(store: Store) -> None:
    with pytest.raises(IntegrityError):
        store.save_templates("no-such-group", [ProfileTemplate("A", Status.AWAY, "a", "#000000")])

    assert count(store, t.profile_templates) == 0


def test_a_duplicate_group_id_is_refused(store: Store, group: GroupRecord) -> None:
    with pytest.raises(IntegrityError):
        store.create_group(GroupRecord(group.id, "Another", GroupSettings(), ()), NOW)

    assert [(g.id, g.name) for g in store.load_groups()] == [(group.id, group.name)]
