"""The Teams sync on the hub: the writer (UC -> Teams) and the readings (Teams -> UC).

What a user would notice: what Teams shows after the hub's writes, and what the UC
side shows after the hub read Teams. Graph is a fake of our own port.
"""

from __future__ import annotations

import pytest

from presencebridge.core.effective import TEAMS_CALL_APPOINTMENT
from presencebridge.core.model import (
    CallState,
    Status,
    TeamsSyncMode,
    Telephony,
    TelephonySource,
    User,
)
from presencebridge.core.rules import SelectProfile, SetOwnMode, TelephonyEvent
from presencebridge.core.settings import GroupSettings
from presencebridge.service.hub import Hub
from tests.service.conftest import (
    AVAILABLE,
    DND,
    IN_A_CALL,
    FakeTeams,
    Hubs,
    Sync,
    add_user,
)

pytestmark = pytest.mark.anyio

CONNECTED = TelephonyEvent("c1", CallState.CONNECTED)
ENDED = TelephonyEvent("c1", CallState.ENDED)


def teams_call_shown(hub: Hub, user_id: str) -> bool:
    """The UC side shows the "On the phone (MS Teams)" appointment."""
    return any(a.id == TEAMS_CALL_APPOINTMENT for a in hub.user(user_id).state.appointments)


async def test_a_pbx_call_shows_in_teams_and_its_end_clears_it(
    hub: Hub, sync: Sync, graph: FakeTeams
) -> None:
    await add_user(hub, "alice")
    await hub.handle("alice", CONNECTED, "pbx")
    await sync.settle()
    assert graph.user("t-alice").shown() == IN_A_CALL
    await hub.handle("alice", ENDED, "pbx")
    await sync.settle()
    assert graph.user("t-alice").shown() == AVAILABLE
    assert graph.sent("t-alice") == ["set_session", "clear_session"]


async def test_a_state_superseded_before_the_writer_came_to_it_is_never_sent(
    hub: Hub, graph: FakeTeams
) -> None:
    await add_user(hub, "alice")
    writer = Sync(hub, graph)  # not running yet: the changes pile up
    await hub.handle("alice", CONNECTED, "pbx")
    await hub.handle("alice", ENDED, "pbx")
    writer.start()
    try:
        await writer.settle()
    finally:
        await writer.stop()
    assert "set_session" not in graph.sent("t-alice"), "Teams never showed the short call"
    assert graph.user("t-alice").shown() == AVAILABLE


async def test_a_throttled_write_is_retried_with_the_state_that_holds_then(
    hub: Hub, sync: Sync, graph: FakeTeams
) -> None:
    await add_user(hub, "alice")
    await hub.handle("alice", CONNECTED, "pbx")
    await sync.settle()
    graph.refuse = 1  # Graph keeps answering 429 to this write
    await hub.handle("alice", ENDED, "pbx")
    await sync.settle()
    assert graph.sent("t-alice") == ["set_session", "clear_session", "clear_session"]
    assert graph.user("t-alice").shown() == AVAILABLE
    assert hub.user("alice").state.teams.hub_session.activity is None


async def test_a_throttled_write_is_not_overtaken_by_an_older_state(
    hub: Hub, sync: Sync, graph: FakeTeams
) -> None:
    await add_user(hub, "alice")
    graph.refuse = 1
    await hub.handle("alice", CONNECTED, "pbx")
    await hub.handle("alice", ENDED, "pbx")
    await hub.handle("alice", TelephonyEvent("c2", CallState.CONNECTED), "pbx")
    await sync.settle()
    assert graph.user("t-alice").shown() == IN_A_CALL, "the last state wins"


async def test_a_teams_call_becomes_an_appointment_and_ends_with_the_call(
    hub: Hub, sync: Sync, graph: FakeTeams
) -> None:
    await add_user(hub, "alice")
    graph.user("t-alice").client = IN_A_CALL
    await sync.poll()
    presence = hub.user("alice").presence
    assert teams_call_shown(hub, "alice")
    assert presence.telephony is Telephony.ON_THE_PHONE
    assert presence.telephony_source is TelephonySource.TEAMS
    assert graph.sent("t-alice") == [], "a Teams call is not written back to Teams"
    graph.user("t-alice").client = None
    await sync.poll()
    assert not teams_call_shown(hub, "alice")
    assert hub.user("alice").presence.telephony is Telephony.IDLE


async def test_the_hubs_own_session_read_back_is_not_taken_for_a_teams_call(
    hub: Hub, sync: Sync, graph: FakeTeams
) -> None:
    await add_user(hub, "alice")
    await hub.handle("alice", CONNECTED, "pbx")
    await sync.settle()
    await sync.poll()  # Teams shows the hub's own Busy / InACall
    assert not teams_call_shown(hub, "alice")
    await hub.handle("alice", ENDED, "pbx")
    await sync.settle()
    await sync.poll()
    assert not teams_call_shown(hub, "alice")
    assert hub.user("alice").presence.telephony is Telephony.IDLE


async def test_dnd_set_in_teams_selects_the_dnd_profile_and_leaving_it_restores(
    hub: Hub, sync: Sync, graph: FakeTeams
) -> None:
    await add_user(hub, "alice")
    graph.user("t-alice").by_hand = DND
    await sync.poll()
    assert hub.user("alice").presence.status is Status.DND
    assert hub.user("alice").presence.profile == "Fokus"
    assert "set_preferred_dnd" not in graph.sent("t-alice"), "no echo back to Teams"
    graph.user("t-alice").by_hand = None
    await sync.poll()
    assert hub.user("alice").presence.status is Status.AVAILABLE


async def test_dnd_chosen_on_the_uc_side_shows_in_teams_until_it_is_left(
    hub: Hub, sync: Sync, graph: FakeTeams
) -> None:
    await add_user(hub, "alice")
    await hub.handle("alice", SelectProfile("Fokus"), "rest")
    await sync.settle()
    assert graph.user("t-alice").shown() == DND
    await sync.poll()  # the hub's own DnD read back changes nothing
    assert hub.user("alice").presence.status is Status.DND
    await hub.handle("alice", SelectProfile(None), "rest")
    await sync.settle()
    assert graph.user("t-alice").shown() == AVAILABLE
    assert graph.sent("t-alice") == ["set_preferred_dnd", "clear_preferred"]


async def test_a_status_the_user_set_by_hand_is_held_and_not_fought(
    hub: Hub, sync: Sync, graph: FakeTeams
) -> None:
    await add_user(hub, "alice")
    await hub.handle("alice", CONNECTED, "pbx")
    await sync.settle()
    graph.user("t-alice").by_hand = AVAILABLE  # the user chose Available in Teams
    await sync.poll()
    assert hub.user("alice").presence.teams.held_by_user
    writes = len(graph.writes)
    await sync.poll()
    await sync.poll()
    assert len(graph.writes) == writes, "no retry storm against the user's choice"
    assert graph.user("t-alice").shown() == AVAILABLE


async def test_a_teams_call_appointment_ends_after_twelve_hours_and_stays_ended(
    hub: Hub, sync: Sync, graph: FakeTeams
) -> None:
    await add_user(hub, "alice")
    graph.user("t-alice").client = IN_A_CALL  # a Teams call nobody hangs up
    await sync.poll()
    assert teams_call_shown(hub, "alice")
    await hub.advance_clock(12 * 3600 - 1)
    assert teams_call_shown(hub, "alice")
    await hub.advance_clock(1)
    assert not teams_call_shown(hub, "alice")
    await sync.poll()  # Teams still shows the same call
    assert not teams_call_shown(hub, "alice"), "not taken up again while the call lasts"
    assert hub.user("alice").presence.telephony is Telephony.IDLE


async def test_a_restarted_hub_sends_its_session_again_and_converges(
    hubs: Hubs, graph: FakeTeams
) -> None:
    hub = await hubs.open()
    sync = Sync(hub, graph)
    sync.start()
    await add_user(hub, "alice")
    await hub.handle("alice", CONNECTED, "pbx")
    await sync.settle()
    await sync.stop()
    await hubs.stop(hub)
    graph.user("t-alice").session = None  # Graph let the session expire meanwhile

    again = await hubs.open()
    sync = Sync(again, graph)
    sync.start()
    try:
        await sync.settle()
        assert graph.user("t-alice").shown() == IN_A_CALL, "re-sent at start"
        await again.handle("alice", ENDED, "pbx")
        await sync.settle()
        assert graph.user("t-alice").shown() == AVAILABLE
        await sync.poll()
        assert not teams_call_shown(again, "alice")
    finally:
        await sync.stop()


async def test_a_notification_finds_exactly_the_users_the_sync_covers(hub: Hub) -> None:
    """A notification names a few users; the hub looks them up one by one instead of
    walking everyone, and finds the same users a poll round reads: none whose group or
    own choice turned the sync off, none without a Teams id."""
    await hub.create_group("quiet", "Quiet", GroupSettings(teams_sync_mode=TeamsSyncMode.OFF))
    await add_user(hub, "anna")
    await add_user(hub, "ben")
    await hub.handle("ben", SetOwnMode(TeamsSyncMode.OFF), "test")
    await hub.create_user(User("cleo", "Cleo", "quiet", "t-cleo"))
    await hub.create_user(User("dora", "Dora", "hq", None))
    polled = {teams_id: user_id for user_id, teams_id in hub.synced_users()}
    assert polled == {"t-anna": "anna"}
    for teams_id in ("t-anna", "t-ben", "t-cleo", "t-dora", "t-nobody"):
        assert hub.synced_user_for(teams_id) == polled.get(teams_id), teams_id
