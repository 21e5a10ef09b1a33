"""Issue 12 in the store, on SQLite and PostgreSQL: addresses unique in the database,
lifecycle changes in one transaction, the Teams release queue."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from presencebridge.adapters.store import (
    Duplicate,
    GroupRecord,
    HistoryEntry,
    Store,
    TeamsRelease,
)
from presencebridge.adapters.store import tables as t
from presencebridge.core.model import User, UserState

NOW = datetime(2024, 3, 4, 8, 30, tzinfo=UTC)


def entry(user_id: str) -> HistoryEntry:
    return HistoryEntry(user_id, NOW, "admin", "available", "idle", "", "email: - -> a@x.de")


def count(store: Store, table: sa.Table) -> int:
    with store.engine.connect() as c:
        return int(c.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def test_addresses_round_trip_in_their_order(store: Store, group: GroupRecord) -> None:
    user = User("alice", "Alice", group.id, "t-1", "a@x.de", ("2102", "2101"), ("+49301234567",))
    store.create_user(UserState(user), NOW)

    assert [s.user for s in store.load_users()] == [user]


def test_an_extension_or_number_of_another_user_is_refused_by_the_database(
    store: Store, group: GroupRecord
) -> None:
    alice = UserState(User("alice", "Alice", group.id, extensions=("2101",), numbers=("+4930",)))
    store.create_user(alice, NOW)
    bob = UserState(User("bob", "Bob", group.id))
    store.create_user(bob, NOW)

    for taken in ({"extensions": ("2101",)}, {"numbers": ("+4930",)}):
        changed = UserState(User("bob", "Bob", group.id, email="b@x.de", **taken))  # type: ignore[arg-type]
        with pytest.raises(Duplicate) as refused:
            store.update_user(changed, entry("bob"), None, NOW)
        assert isinstance(refused.value, IntegrityError)
    # Nothing of the refused changes was written: no e-mail, no history, no address.
    assert [s.user for s in store.load_users()] == [alice.user, bob.user]
    assert store.history("bob") == []
    with pytest.raises(Duplicate):
        store.create_user(UserState(User("carol", "Carol", group.id, extensions=("2101",))), NOW)
    assert count(store, t.users) == 2
    # The same extension as a number is another address.
    store.update_user(
        UserState(User("bob", "Bob", group.id, numbers=("2101",))), entry("bob"), None, NOW
    )


def test_an_update_writes_history_and_release_in_one_transaction(
    store: Store, group: GroupRecord
) -> None:
    store.create_user(UserState(User("alice", "Alice", group.id, "t-old")), NOW)
    moved = UserState(User("alice", "Alice", group.id, "t-new", "a@x.de"))
    release = TeamsRelease("t-old", "alice", clear_session=True, clear_preferred=False)

    saved = store.update_user(moved, entry("alice"), release, NOW)

    assert saved is not None and saved.id is not None
    assert store.load_releases() == [saved]
    assert store.history("alice")[0].change == "email: - -> a@x.de"
    store.delete_release(saved.id)
    assert store.load_releases() == []


def test_deleting_a_user_removes_everything_of_theirs_and_keeps_the_release(
    store: Store, group: GroupRecord
) -> None:
    alice = UserState(User("alice", "Alice", group.id, "t-1", extensions=("2101",)))
    store.create_user(alice, NOW)
    store.add_agent_token("alice", "pba_secret", NOW)
    store.save_users([alice], [entry("alice")], NOW)
    release = TeamsRelease("t-1", "alice", clear_session=True, clear_preferred=True)

    store.delete_user("alice", release, NOW)

    assert store.load_users() == []
    for table in (t.users, t.agent_tokens, t.presence_history, t.user_addresses):
        assert count(store, table) == 0
    assert [(r.teams_user_id, r.clear_preferred) for r in store.load_releases()] == [("t-1", True)]
    # Its extension and Teams id are free again.
    store.create_user(UserState(User("bob", "Bob", group.id, "t-1", extensions=("2101",))), NOW)


def test_a_group_with_users_cannot_be_deleted_in_the_database_either(
    store: Store, group: GroupRecord
) -> None:
    store.create_user(UserState(User("alice", "Alice", group.id)), NOW)
    with pytest.raises(Duplicate):
        store.delete_group(group.id)
    assert [g.id for g in store.load_groups()] == [group.id]
