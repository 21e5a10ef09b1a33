"""`Store.create_users` and `Store.change_users`: many users, their addresses and history
in one transaction; when the database refuses one of them (a unique key), nothing of the
batch is written; a unique value may move between the batch's users in any order."""

from __future__ import annotations

from dataclasses import replace
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


def test_values_move_between_users_of_one_transaction_even_in_a_swap(
    store: Store, group: GroupRecord
) -> None:
    store.create_users([state(1), state(2), state(3)], [], NOW)
    u1, u2, u3 = (s.user for s in store.load_users())
    # u1 and u2 swap Teams ids and extensions, listed so that each takes before the
    # other gives up; u3 gives a number to a new user made in the same transaction.
    one = replace(u1, teams_user_id="t-2", extensions=("2102",))
    two = replace(u2, teams_user_id="t-1", extensions=("2101",))
    three = replace(u3, numbers=(u3.numbers[1],))
    new = User("u4", "User 4", "sales", numbers=(u3.numbers[0],))

    store.update_users([UserState(one), UserState(two)], [], [None, None], NOW)
    store.change_users([UserState(new)], [UserState(three)], [], [], NOW)

    loaded = {s.user.id: s.user for s in store.load_users()}
    assert (loaded["u1"].teams_user_id, loaded["u1"].extensions) == ("t-2", ("2102",))
    assert (loaded["u2"].teams_user_id, loaded["u2"].extensions) == ("t-1", ("2101",))
    assert loaded["u3"].numbers == ("+4917055" + "0003",)
    assert loaded["u4"].numbers == ("+4930555" + "0003",)


def test_a_value_two_users_keep_after_the_batch_writes_nothing(
    store: Store, group: GroupRecord
) -> None:
    store.create_users([state(1), state(2)], [], NOW)
    u1, u2 = (s.user for s in store.load_users())
    renamed = replace(u1, display_name="Renamed")
    clashing = replace(u2, extensions=u1.extensions)  # u1 keeps 2101

    with pytest.raises(Duplicate):
        store.change_users([state(3)], [UserState(renamed), UserState(clashing)], [], [], NOW)

    loaded = {s.user.id: s.user for s in store.load_users()}
    assert sorted(loaded) == ["u1", "u2"]
    assert loaded["u1"] == u1 and loaded["u2"] == u2
