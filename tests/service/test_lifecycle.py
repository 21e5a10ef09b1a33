"""The user lifecycle (issue 12) on the hub: delete, move, a new Teams id, and what
the hub set in Teams for the user is cleared under the old Teams id — also when Graph
fails first and across a restart. Extensions and numbers: unique, found in any notation.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from presencebridge.adapters.store import Store
from presencebridge.adapters.store import tables as t
from presencebridge.core.effective import TEAMS_CALL_APPOINTMENT
from presencebridge.core.errors import Reason, Rejected
from presencebridge.core.model import CallState, TeamsSyncMode, User
from presencebridge.core.rules import SelectProfile, TelephonyEvent
from presencebridge.core.settings import GroupSettings
from presencebridge.service.hub import Hub
from tests.service.conftest import AVAILABLE, IN_A_CALL, FakeTeams, Hubs, Sync, add_user

pytestmark = pytest.mark.anyio

CONNECTED = TelephonyEvent("c1", CallState.CONNECTED)


async def on_call_in_dnd(hub: Hub, sync: Sync, graph: FakeTeams, user_id: str) -> str:
    """The user on a PBX call with a UC DnD chosen: the hub's session and its preferred
    DnD are in Teams. Returns the Teams id."""
    await add_user(hub, user_id)
    await hub.handle(user_id, CONNECTED, "pbx")
    await hub.handle(user_id, SelectProfile("Fokus"), "manual")
    await sync.settle()
    teams_id = f"t-{user_id}"
    assert graph.user(teams_id).session == IN_A_CALL
    assert graph.user(teams_id).preferred_dnd
    return teams_id


def rows(store: Store, table: sa.Table, user_id: str) -> int:
    with store.engine.connect() as c:
        return int(
            c.execute(sa.select(sa.func.count()).where(table.c.user_id == user_id)).scalar_one()
        )


def nothing_of_the_hub_in_teams(graph: FakeTeams, teams_id: str) -> bool:
    user = graph.user(teams_id)
    return user.session is None and not user.preferred_dnd


async def test_deleting_a_user_clears_their_session_and_dnd_and_leaves_nothing_stored(
    hub: Hub, sync: Sync, graph: FakeTeams, store: Store
) -> None:
    teams_id = await on_call_in_dnd(hub, sync, graph, "alice")
    await hub.issue_agent_token("alice")
    await hub.update_user("alice", {"extensions": ("2101",), "numbers": ("+49301234567",)}, "admin")

    await hub.delete_user("alice")
    await sync.settle()

    assert nothing_of_the_hub_in_teams(graph, teams_id)
    assert graph.user(teams_id).shown() == AVAILABLE
    assert not hub.has_user("alice")
    for table in (t.users, t.agent_tokens, t.presence_history, t.user_addresses):
        column = table.c.id if table is t.users else table.c.user_id
        with store.engine.connect() as c:
            assert c.execute(sa.select(sa.func.count()).where(column == "alice")).scalar_one() == 0
    assert store.load_releases() == []
    with pytest.raises(Rejected) as refused:
        hub.resolve(extension="2101")
    assert refused.value.reason is Reason.NOT_FOUND


async def test_a_release_graph_refuses_is_kept_and_sent_again(
    hub: Hub, sync: Sync, graph: FakeTeams, store: Store
) -> None:
    teams_id = await on_call_in_dnd(hub, sync, graph, "alice")
    graph.refuse = 1  # the first clear meets a throttled Graph

    await hub.delete_user("alice")
    await sync.settle()

    assert graph.sent(teams_id)[-3:] == ["clear_session", "clear_session", "clear_preferred"]
    assert nothing_of_the_hub_in_teams(graph, teams_id)
    assert store.load_releases() == []


async def test_a_release_survives_a_restart_and_a_failing_graph(
    hubs: Hubs, graph: FakeTeams, store: Store
) -> None:
    hub = await hubs.open()
    sync = Sync(hub, graph)
    sync.start()
    teams_id = await on_call_in_dnd(hub, sync, graph, "alice")
    await sync.stop()  # the writer is gone (Graph down, the hub dies) before it clears

    await hub.delete_user("alice")
    assert [r.teams_user_id for r in store.load_releases()] == [teams_id]
    await hubs.stop(hub)
    assert graph.user(teams_id).session == IN_A_CALL  # still there

    again = await hubs.open()
    graph.refuse = 1
    sync = Sync(again, graph)
    sync.start()
    try:
        await sync.settle()
    finally:
        await sync.stop()
    assert nothing_of_the_hub_in_teams(graph, teams_id)
    assert store.load_releases() == []


async def test_a_new_teams_id_clears_the_old_one_and_starts_afresh(
    hub: Hub, sync: Sync, graph: FakeTeams
) -> None:
    old = await on_call_in_dnd(hub, sync, graph, "alice")

    await hub.update_user("alice", {"teams_user_id": "t-alice-new"}, "admin")
    await sync.settle()

    assert nothing_of_the_hub_in_teams(graph, old)
    # The UC side still has the PBX call and the DnD: they go to the new Teams id.
    assert graph.user("t-alice-new").session == IN_A_CALL
    assert graph.user("t-alice-new").preferred_dnd
    assert hub.user_for_teams_id(old) is None
    assert hub.user_for_teams_id("t-alice-new") == "alice"
    history = await hub.history("alice", 1)
    assert history[0].source == "admin"
    assert history[0].change == "teams_user_id: t-alice -> t-alice-new"


async def test_a_teams_call_the_sync_created_goes_with_the_old_teams_id(
    hub: Hub, sync: Sync, graph: FakeTeams
) -> None:
    await add_user(hub, "bob")
    graph.user("t-bob").client = IN_A_CALL
    await sync.poll()
    assert any(a.id == TEAMS_CALL_APPOINTMENT for a in hub.user("bob").state.appointments)

    await hub.update_user("bob", {"teams_user_id": "t-bob-2"}, "admin")

    state = hub.user("bob").state
    assert all(a.id != TEAMS_CALL_APPOINTMENT for a in state.appointments)
    assert state.teams.seen.availability is None  # a fresh Teams state


async def test_moving_to_a_group_with_sync_off_clears_teams_and_the_uc_side(
    hub: Hub, sync: Sync, graph: FakeTeams
) -> None:
    teams_id = await on_call_in_dnd(hub, sync, graph, "alice")
    await add_user(hub, "bob")
    graph.user("t-bob").client = IN_A_CALL
    await sync.poll()
    await hub.create_group("quiet", "Quiet", GroupSettings(teams_sync_mode=TeamsSyncMode.OFF))

    await hub.update_user("alice", {"group": "quiet"}, "admin")
    await hub.update_user("bob", {"group": "quiet"}, "admin")
    await sync.settle()

    assert nothing_of_the_hub_in_teams(graph, teams_id)
    bob = hub.user("bob").state
    assert all(a.id != TEAMS_CALL_APPOINTMENT for a in bob.appointments)
    assert (await hub.history("bob", 1))[0].change == "group: hq -> quiet"


async def test_a_refused_change_writes_nothing(hub: Hub, store: Store) -> None:
    await add_user(hub, "alice")
    before = hub.user("alice").state
    history = await hub.history("alice")

    with pytest.raises(Rejected) as refused:
        await hub.update_user("alice", {"group": "nowhere", "display_name": "A"}, "admin")

    assert refused.value.reason is Reason.NOT_FOUND
    assert hub.user("alice").state == before
    assert await hub.history("alice") == history
    assert [s.user for s in store.load_users()] == [before.user]


async def test_extensions_and_numbers_are_unique_and_the_conflict_names_the_owner(
    hub: Hub, store: Store
) -> None:
    numbers = hub.parse_numbers(["030 1234567"])
    await hub.create_user(User("alice", "Alice", "hq", extensions=("2101",), numbers=numbers))
    await add_user(hub, "bob")

    for fields in (
        {"extensions": ("2101",)},
        {"numbers": hub.parse_numbers(["+49 30 1234567"])},
        {"teams_user_id": None, "numbers": hub.parse_numbers(["0049 30 1234567"])},
    ):
        with pytest.raises(Rejected) as refused:
            await hub.update_user("bob", fields, "admin")
        assert refused.value.reason is Reason.CONFLICT
        assert "'alice'" in refused.value.message
    with pytest.raises(Rejected) as refused:
        await hub.create_user(User("carol", "Carol", "hq", extensions=("2101",)))
    assert "'alice'" in refused.value.message
    assert not hub.has_user("carol")
    assert [u.user.id for u in store.load_users()] == ["alice", "bob"]
    assert rows(store, t.user_addresses, "bob") == 0

    # Given up by alice, the extension is free for bob.
    await hub.update_user("alice", {"extensions": ()}, "admin")
    await hub.update_user("bob", {"extensions": ("2101",)}, "admin")
    assert hub.resolve(extension="2101") == "bob"


async def test_a_number_is_found_in_national_and_international_notation(
    hubs: Hubs, store: Store
) -> None:
    hub = await hubs.open()
    numbers = hub.parse_numbers(["+49 (30) 123-4567", "0171 2345678"])
    assert numbers == ("+49301234567", "+491712345678")
    await hub.create_user(User("alice", "Alice", "hq", extensions=("2101",), numbers=numbers))

    for written in ("030 1234567", "+49 30 1234567", "0049301234567", "+491712345678"):
        assert hub.resolve(number=written) == "alice"
    assert hub.resolve(extension="2101") == "alice"
    for kind, value in (("extension", "2199"), ("number", "030 999999"), ("number", "kein")):
        with pytest.raises(Rejected) as refused:
            hub.resolve(**{kind: value})
        assert refused.value.reason is Reason.NOT_FOUND
        assert refused.value.message == f"unknown {kind} {value!r}"
    with pytest.raises(Rejected) as invalid:
        hub.parse_numbers(["030 1234567", "12ab"])
    assert invalid.value.reason is Reason.INVALID
    assert "numbers[1]" in invalid.value.message and "'12ab'" in invalid.value.message

    # After a restart, the index is built from the store again.
    await hubs.stop(hub)
    again = await hubs.open()
    assert again.resolve(number="030 1234567") == "alice"
    assert again.user("alice").state.user.numbers == numbers


async def test_deleting_a_group_with_users_is_refused_and_templates_can_be_deleted(
    hub: Hub, store: Store
) -> None:
    await add_user(hub, "alice")
    with pytest.raises(Rejected) as refused:
        await hub.delete_group("hq")
    assert refused.value.reason is Reason.CONFLICT
    assert "1 user" in refused.value.message

    await hub.create_group("empty", "Empty", GroupSettings(create_teams_profile_template=True))
    await hub.delete_template("empty", "MS Teams")
    assert hub.group("empty").templates == ()
    with pytest.raises(Rejected):
        await hub.delete_template("empty", "MS Teams")
    await hub.delete_group("empty")
    assert [g.id for g in store.load_groups()] == ["hq"]


async def test_a_revoked_agent_token_no_longer_names_its_user(hub: Hub) -> None:
    await add_user(hub, "alice")
    token = await hub.issue_agent_token("alice")
    [info] = await hub.agent_tokens("alice")
    assert await hub.agent_token_user(token) == "alice"

    await hub.revoke_agent_token("alice", info.id)

    assert await hub.agent_token_user(token) is None
    assert await hub.agent_tokens("alice") == []
    with pytest.raises(Rejected):
        await hub.revoke_agent_token("alice", info.id)
