"""The hub: events applied in order, durably, with time driven by its clock."""

from __future__ import annotations

import pytest

from presencebridge.core.errors import Rejected
from presencebridge.core.model import CallState, Status, Telephony, TelephonySource, User
from presencebridge.core.rules import SelectProfile, TelephonyEvent
from presencebridge.service.hub import Hub
from tests.service.conftest import FixedClock, Hubs, add_user

pytestmark = pytest.mark.anyio


async def test_a_pbx_call_puts_the_user_on_the_phone_until_it_ends(hub: Hub) -> None:
    await add_user(hub, "alice")
    listener = hub.bus.listen()
    view = await hub.handle("alice", TelephonyEvent("c1", CallState.CONNECTED), "pbx")
    assert view.presence.telephony is Telephony.ON_THE_PHONE
    assert view.presence.telephony_source is TelephonySource.PBX
    assert view.presence.status is Status.BUSY
    assert (await listener.next()).presence == view.presence, "the stream hears of it"
    view = await hub.handle("alice", TelephonyEvent("c1", CallState.ENDED), "pbx")
    assert view.presence.telephony is Telephony.IDLE
    assert view.presence.status is Status.AVAILABLE
    hub.bus.leave(listener)


async def test_a_late_ringing_does_not_revive_an_ended_call(hub: Hub) -> None:
    await add_user(hub, "alice")
    await hub.handle("alice", TelephonyEvent("c1", CallState.ENDED), "pbx")
    view = await hub.handle("alice", TelephonyEvent("c1", CallState.RINGING), "pbx")
    assert view.presence.telephony is Telephony.IDLE


async def test_a_connected_call_the_pbx_never_ends_is_over_after_twelve_hours(hub: Hub) -> None:
    await add_user(hub, "alice")
    await hub.handle("alice", TelephonyEvent("c1", CallState.CONNECTED), "pbx")
    await hub.advance_clock(12 * 3600 - 1)
    assert hub.user("alice").presence.telephony is Telephony.ON_THE_PHONE
    await hub.advance_clock(1)
    assert hub.user("alice").presence.telephony is Telephony.IDLE


async def test_an_unknown_user_is_refused_and_nothing_changes(hub: Hub) -> None:
    with pytest.raises(Rejected):
        await hub.handle("nobody", TelephonyEvent("c1", CallState.CONNECTED), "pbx")
    assert hub.user_ids() == []


async def test_a_restarted_hub_reads_back_what_it_acknowledged(hubs: Hubs) -> None:
    hub = await hubs.open()
    await add_user(hub, "alice")
    await hub.handle("alice", SelectProfile("Fokus"), "rest")
    await hub.handle("alice", TelephonyEvent("c1", CallState.CONNECTED), "pbx")
    await hubs.stop(hub)
    again = await hubs.open()
    assert again.user("alice").presence.telephony is Telephony.ON_THE_PHONE
    selection = again.user("alice").state.selection
    assert selection is not None
    assert selection.profile == "Fokus"


async def test_time_that_passed_while_down_takes_effect_at_start(
    hubs: Hubs, clock: FixedClock
) -> None:
    hub = await hubs.open()
    await add_user(hub, "alice")
    await hub.handle("alice", TelephonyEvent("c1", CallState.RINGING), "pbx")
    await hubs.stop(hub)
    clock.advance(10 * 60)  # ringing times out after 5 minutes
    again = await hubs.open()
    assert again.user("alice").presence.telephony is Telephony.IDLE


async def test_a_teams_user_id_belongs_to_one_user(hub: Hub) -> None:
    await add_user(hub, "alice", "t-1")
    with pytest.raises(Rejected):
        await hub.create_user(User("bob", "Bob", "hq", "t-1"))
    assert hub.user_for_teams_id("t-1") == "alice"
