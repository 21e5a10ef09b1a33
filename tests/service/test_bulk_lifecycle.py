"""`Hub.change_users` (`create_users`, `update_users`): many users in one write (the
directory sync, the CSV import), with the same guarantees as `create_user` and
`update_user` one at a time: unique ids, Teams ids, extensions and numbers (against the
hub and within the batch, checked as a whole so values may change hands in any order),
all or nothing when the database refuses, the history entry, the stream and the
replication to other nodes."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from presencebridge.adapters.store import Store
from presencebridge.adapters.store import tables as t
from presencebridge.core import usercsv
from presencebridge.core.errors import Reason, Rejected
from presencebridge.core.model import TeamsSyncMode, User, UserState
from presencebridge.service import usercsv as imports
from presencebridge.service.hub import Hub, NewUser, NotOwner
from presencebridge.service.membership import Membership
from tests.service.conftest import FakeTeams, Hubs, Sync
from tests.service.test_lifecycle import on_call_in_dnd

pytestmark = pytest.mark.anyio


def person(n: int, **fields: object) -> NewUser:
    values: dict[str, object] = {
        "id": f"u{n}",
        "display_name": f"User {n}",
        "group": "hq",
        "teams_user_id": f"t-{n}",
        "extensions": (f"{2100 + n}",),
        "numbers": (f"+4930555{n:04d}",),
    }
    values.update(fields)
    own = values.pop("own_mode", None)
    assert own is None or isinstance(own, TeamsSyncMode)
    return NewUser(User(**values), own)  # type: ignore[arg-type]


def stored_ids(store: Store) -> set[str]:
    with store.engine.connect() as c:
        return {r.id for r in c.execute(sa.select(t.users.c.id))}


def stored_addresses(store: Store) -> set[tuple[str, str, str]]:
    with store.engine.connect() as c:
        rows = c.execute(sa.select(t.user_addresses))
        return {(r.kind, r.value, r.user_id) for r in rows}


async def test_a_batch_is_created_indexed_published_and_survives_a_restart(
    hubs: Hubs, hub: Hub, store: Store
) -> None:
    queue = hub.bus.listen()
    batch = [person(n) for n in range(1, 51)]
    batch.append(person(51, teams_user_id=None, own_mode=TeamsSyncMode.OFF))

    assert await hub.create_users(batch, "directory") == []

    assert len(hub.user_ids()) == 51
    assert hub.resolve(extension="2107") == "u7"
    assert hub.resolve(number="+49305550009") == "u9"
    assert hub.user_for_teams_id("t-3") == "u3"
    assert hub.mode_of("u51") is TeamsSyncMode.OFF
    published = [queue.queue.get_nowait().user_id for _ in range(51)]
    assert published == [f"u{n}" for n in range(1, 52)]
    history = await hub.history("u4")
    assert [(h.source, h.change) for h in history] == [("directory", "created: hq")]

    await hubs.stop(hub)
    again = await hubs.open()
    assert sorted(again.user_ids()) == sorted(f"u{n}" for n in range(1, 52))
    assert again.user("u51").state.own_mode is TeamsSyncMode.OFF
    assert ("extension", "2150", "u50") in stored_addresses(store)


async def test_conflicts_with_existing_users_and_within_the_batch_are_refused_alone(
    hub: Hub,
) -> None:
    await hub.create_user(User("old", "Old", "hq", "t-old", extensions=("2999",)))
    batch = [
        person(1),
        person(2, extensions=("2999",)),  # the existing user's extension
        person(3, teams_user_id="t-1"),  # an earlier new user's Teams id
        person(4, numbers=("+49305550001",)),  # an earlier new user's number
        person(5, id="old"),  # an existing id
        person(6, id="u1", teams_user_id="t-x", extensions=(), numbers=()),  # id twice
        person(7, group="nowhere"),
        person(8),
    ]

    refused = await hub.create_users(batch, "directory")

    reasons = {index: (error.reason, error.message) for index, error in refused}
    assert sorted(reasons) == [1, 2, 3, 4, 5, 6]
    assert reasons[1] == (Reason.CONFLICT, "extension '2999' belongs to user 'old'")
    assert reasons[2] == (Reason.CONFLICT, "teams_user_id 't-1' belongs to user 'u1'")
    assert reasons[3] == (Reason.CONFLICT, "number '+49305550001' belongs to user 'u1'")
    assert reasons[4][0] is Reason.CONFLICT and reasons[5][0] is Reason.CONFLICT
    assert reasons[6][0] is Reason.NOT_FOUND
    assert sorted(hub.user_ids()) == ["old", "u1", "u8"]
    assert hub.resolve(extension="2999") == "old"


async def test_a_write_the_database_refuses_leaves_nothing_anywhere(hub: Hub, store: Store) -> None:
    # Another node's user holds an extension this hub does not know of: only the
    # database's unique key sees it.
    other = UserState(User("elsewhere", "Elsewhere", "hq", None, extensions=("2103",)))
    await hub.store_io(store.create_user, other, hub.clock.now())
    queue = hub.bus.listen()

    with pytest.raises(Rejected) as refused:
        await hub.create_users([person(n) for n in range(1, 6)], "directory")

    assert refused.value.reason is Reason.CONFLICT
    assert hub.user_ids() == []
    assert hub.user_for_teams_id("t-1") is None
    assert stored_ids(store) == {"elsewhere"}
    assert stored_addresses(store) == {("extension", "2103", "elsewhere")}
    assert queue.queue.empty()
    with store.engine.connect() as c:
        assert c.execute(sa.select(sa.func.count()).select_from(t.presence_history)).scalar() == 0
    # nothing half-done in memory either: the same users can be made afterwards
    await hub.create_users([person(n) for n in (1, 2, 4)], "directory")
    assert sorted(hub.user_ids()) == ["u1", "u2", "u4"]


async def test_new_users_are_replicated_and_others_users_are_not_ours(
    hubs: Hubs, store: Store
) -> None:
    replicated: list[str] = []
    hub = Hub(store, hubs.clock)
    # a node of several: owns the ids not starting with "x", records what it replicates
    hub.join(
        Membership(
            owns=lambda user_id: not user_id.startswith("x"),
            replicate=lambda state: replicated.append(state.user.id),
        )
    )
    await hub.start()
    hubs.running.append(hub)
    await hubs.open()  # the group "hq", through a second hub on the same store
    await hub.reload_groups()

    await hub.create_users([person(1), person(2)], "directory")
    assert replicated == ["u1", "u2"]
    with pytest.raises(NotOwner):
        await hub.create_users([person(3), person(4, id="x4")], "directory")
    assert sorted(hub.user_ids()) == ["u1", "u2"]


async def test_updates_apply_in_order_so_an_extension_can_change_hands(
    hub: Hub, store: Store
) -> None:
    await hub.create_users([person(n) for n in range(1, 5)], "directory")
    changes: list[tuple[str, dict[str, object]]] = [
        ("u1", {"extensions": ("2999",), "display_name": "One"}),  # gives up 2101
        ("u2", {"extensions": ("2101",)}),  # takes it
        ("u3", {"extensions": ("2104",)}),  # u4's: refused
        ("nobody", {"display_name": "X"}),  # unknown: refused
        ("u4", {"group": "hq"}),  # no change at all
    ]

    refused = await hub.update_users(changes, "directory")

    assert [(i, e.reason) for i, e in refused] == [(2, Reason.CONFLICT), (3, Reason.NOT_FOUND)]
    assert refused[0][1].message == "extension '2104' belongs to user 'u4'"
    assert hub.resolve(extension="2101") == "u2"
    assert hub.resolve(extension="2999") == "u1"
    assert hub.user("u1").state.user.display_name == "One"
    assert hub.user("u3").state.user.extensions == ("2103",)
    assert ("extension", "2101", "u2") in stored_addresses(store)
    assert ("extension", "2102", "u2") not in stored_addresses(store)
    history = await hub.history("u1")
    assert history[0].source == "directory"
    assert history[0].change == "display_name: User 1 -> One; extensions: 2999"
    assert len(await hub.history("u4")) == 1  # only its creation


async def test_a_new_teams_id_in_a_batch_clears_what_the_hub_set_under_the_old_one(
    hub: Hub, sync: Sync, graph: FakeTeams
) -> None:
    old_teams_id = await on_call_in_dnd(hub, sync, graph, "alice")

    await hub.update_users([("alice", {"teams_user_id": "t-alice-2"})], "directory")
    await sync.settle()

    assert hub.user_for_teams_id("t-alice-2") == "alice"
    assert hub.user_for_teams_id(old_teams_id) is None
    assert graph.user(old_teams_id).session is None
    assert not graph.user(old_teams_id).preferred_dnd
    assert hub.releases() == []  # done and acknowledged


async def test_an_update_batch_the_database_refuses_changes_nothing(hub: Hub, store: Store) -> None:
    await hub.create_users([person(1), person(2)], "directory")
    other = UserState(User("elsewhere", "Elsewhere", "hq", None, numbers=("+49309999999",)))
    await hub.store_io(store.create_user, other, hub.clock.now())
    queue = hub.bus.listen()

    with pytest.raises(Rejected):
        await hub.update_users(
            [("u1", {"display_name": "Renamed"}), ("u2", {"numbers": ("+49309999999",)})],
            "directory",
        )

    assert hub.user("u1").state.user.display_name == "User 1"
    assert hub.resolve(number="+49305550002") == "u2"
    assert queue.queue.empty()
    assert [h.change for h in await hub.history("u1")] == ["created: hq"]
    loaded = {s.user.id: s for s in await hub.load_stored_users()}
    assert loaded["u1"].user.display_name == "User 1"


async def test_values_change_hands_within_a_batch_whatever_the_order(
    hub: Hub, store: Store
) -> None:
    await hub.create_users([person(n) for n in range(1, 10)], "directory")
    await hub.create_user(User("outside", "Outside", "hq", extensions=("2888",)))
    changes: list[tuple[str, dict[str, object]]] = [
        ("u2", {"extensions": ("2101",)}),  # takes u1's extension before u1 gives it up
        ("u1", {"extensions": ("2999",)}),
        ("u3", {"teams_user_id": "t-4", "numbers": ("+49305550004",)}),  # u3 and u4 swap
        ("u4", {"teams_user_id": "t-3", "numbers": ("+49305550003",)}),
        ("u5", {"extensions": ("2777",)}),  # two changes take 2777: the first has it
        ("u6", {"extensions": ("2777",)}),
        ("u7", {"extensions": ("2888",)}),  # a user outside the batch keeps 2888
        ("u8", {"extensions": ("2109",)}),  # would take u9's extension ...
        ("u9", {"extensions": (), "group": "nowhere"}),  # ... which u9 cannot give up
    ]

    refused = await hub.update_users(changes, "directory")

    assert [(i, e.message) for i, e in refused] == [
        (5, "extension '2777' belongs to user 'u5'"),
        (6, "extension '2888' belongs to user 'outside'"),
        (7, "extension '2109' belongs to user 'u9'"),
        (8, "unknown group 'nowhere'"),
    ]
    assert hub.resolve(extension="2101") == "u2"
    assert hub.resolve(extension="2999") == "u1"
    assert hub.user_for_teams_id("t-4") == "u3" and hub.user_for_teams_id("t-3") == "u4"
    assert hub.resolve(number="+49305550003") == "u4"
    assert hub.resolve(extension="2777") == "u5"
    assert [hub.resolve(extension=e) for e in ("2106", "2107", "2108", "2109")] == [
        "u6", "u7", "u8", "u9"
    ]  # fmt: skip
    loaded = {s.user.id: s.user for s in await hub.load_stored_users()}
    assert loaded["u2"].extensions == ("2101",)
    assert (loaded["u3"].teams_user_id, loaded["u4"].teams_user_id) == ("t-4", "t-3")


async def test_a_new_user_takes_what_a_change_later_in_the_batch_gives_up(hub: Hub) -> None:
    await hub.create_users([person(1)], "directory")

    refusals = await hub.change_users(
        [person(2, extensions=("2101",), teams_user_id="t-1")],
        [("u1", {"extensions": (), "teams_user_id": None})],
        "directory",
    )

    assert not refusals
    assert hub.resolve(extension="2101") == "u2"
    assert hub.user_for_teams_id("t-1") == "u2"
    assert hub.user("u1").state.user.extensions == ()


async def test_a_whole_batch_with_one_refusal_writes_nothing(hub: Hub, store: Store) -> None:
    await hub.create_users([person(1)], "csv")
    queue = hub.bus.listen()

    refusals = await hub.change_users(
        [person(2), person(3, group="nowhere")],
        [("u1", {"display_name": "Renamed"})],
        "csv",
        whole=True,
    )

    assert [i for i, _ in refusals.creates] == [1] and refusals.updates == []
    assert hub.user_ids() == ["u1"]
    assert hub.user("u1").state.user.display_name == "User 1"
    assert stored_ids(store) == {"u1"}
    assert queue.queue.empty()


async def test_an_import_meeting_a_change_made_meanwhile_writes_nothing(hub: Hub) -> None:
    await hub.create_users([person(1)], "directory")
    rows = [
        usercsv.Wanted(2, User("u1", "Renamed", "hq", "t-1", None, ("2101",)), usercsv.COLUMNS),
        usercsv.Wanted(3, User("new", "New", "hq", extensions=("2777",)), usercsv.COLUMNS),
    ]
    plan = usercsv.plan([], rows, imports.existing_users(hub), ["hq"])
    assert plan.ok
    # Between the check and the write another request gives 2777 to someone else.
    await hub.create_user(User("late", "Late", "hq", extensions=("2777",)))

    applied = await imports.apply(hub, plan.writes())

    assert [p.text() for p in applied.problems] == [
        "line 3: extension '2777' belongs to user 'late'"
    ]
    assert applied.written == []
    assert hub.user("u1").state.user.display_name == "User 1"  # line 2 was not written
    assert not hub.has_user("new")
