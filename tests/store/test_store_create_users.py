"""`Store.create_users`: many users, their addresses and history in one transaction; when
the database refuses one of them (a unique key), nothing of the batch is written."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from presencebridge.adapters.store import Duplicate, GroupRecord, HistoryEntry, Store
from presencebridge.adapters.store import tables as t
from presencebridge.core.model import TeamsSyncMode, User, UserState

NOW = datetime(2024, 3, 4, 8, 30, tzinfo=UTC)


def state(n: int, **fields: object) -> UserState:
    values: dict[str, object] = {
        "id": f"u{n}",
        "display_name": f"User {n}",
        "group": "sales",
        "teams_user_id": f"t-{n}",
        "extensions": (f"{2100 + n}",),
        "numbers": (f"+4930555{n:04d}", f"+4917055{n:04d}"),
        "directory_key": f"entra:{n}",
    }
    values.update(fields)
    return UserState(User(**values))  # type: ignore[arg-type]


def entry(n: int) -> HistoryEntry:
    return HistoryEntry(f"u{n}", NOW, "directory", "available", "idle", "", "created: sales")


def count(store: Store, table: sa.Table) -> int:
    with store.engine.connect() as c:
        return int(c.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())


def test_a_batch_is_written_with_addresses_and_history(store: Store, group: GroupRecord) -> None:
    states = [state(n) for n in range(1, 301)]
    states[0] = UserState(states[0].user, own_mode=TeamsSyncMode.OFF)

    store.create_users(states, [entry(n) for n in range(1, 301)], NOW)

    loaded = {s.user.id: s for s in store.load_users()}
    assert len(loaded) == 300
    assert loaded["u7"] == states[6]
    assert loaded["u1"].own_mode is TeamsSyncMode.OFF
    assert count(store, t.user_addresses) == 900
    assert [h.change for h in store.history("u9")] == ["created: sales"]


@pytest.mark.parametrize(
    "clash",
    [
        {"teams_user_id": "t-old"},
        {"extensions": ("2999",)},
        {"numbers": ("+49301111111",)},
        {"id": "old"},
        {"directory_key": "entra:old"},
    ],
    ids=["teams-id", "extension", "number", "user-id", "directory-key"],
)
def test_one_clash_with_a_stored_user_writes_nothing_of_the_batch(
    store: Store, group: GroupRecord, clash: dict[str, object]
) -> None:
    old = User("old", "Old", "sales", "t-old", None, ("2999",), ("+49301111111",), "entra:old")
    store.create_user(UserState(old), NOW)
    batch = [state(1), state(2), state(3, **clash), state(4)]

    with pytest.raises(Duplicate):
        store.create_users(batch, [entry(n) for n in range(1, 5)], NOW)

    assert [s.user.id for s in store.load_users()] == ["old"]
    assert count(store, t.user_addresses) == 2
    assert count(store, t.presence_history) == 0


def test_a_clash_inside_the_batch_writes_nothing(store: Store, group: GroupRecord) -> None:
    batch = [state(1), state(2, extensions=("2101",))]

    with pytest.raises(Duplicate):
        store.create_users(batch, [], NOW)

    assert store.load_users() == []
    assert count(store, t.user_addresses) == 0


def test_an_empty_batch_writes_nothing(store: Store, group: GroupRecord) -> None:
    store.create_users([], [], NOW)
    assert store.load_users() == []
