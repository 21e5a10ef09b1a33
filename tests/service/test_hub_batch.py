"""`Hub.handle_batch`: a PBX's batch applied as one change, as `handle` would apply it."""

from __future__ import annotations

import pytest

from presencebridge.core.errors import Rejected
from presencebridge.core.model import CallState, Telephony
from presencebridge.core.rules import Event, SelectProfile, TelephonyEvent
from presencebridge.service.hub import Hub
from tests.service.conftest import Hubs, add_user

pytestmark = pytest.mark.anyio

CONNECTED, ENDED = CallState.CONNECTED, CallState.ENDED


async def test_each_step_is_published_in_order_and_kept(hubs: Hubs) -> None:
    hub = await hubs.open()
    await add_user(hub, "alice")
    await add_user(hub, "bob")
    listener = hub.bus.listen()
    events: list[tuple[str, Event]] = [
        ("alice", TelephonyEvent("a1", CONNECTED)),
        ("bob", TelephonyEvent("b1", CONNECTED)),
        ("alice", TelephonyEvent("a1", ENDED)),
    ]
    assert await hub.handle_batch(events, "pbx") == []
    heard = [await listener.next() for _ in range(3)]
    hub.bus.leave(listener)
    alice = [c.presence.telephony for c in heard if c.user_id == "alice" and c.presence]
    assert alice == [Telephony.ON_THE_PHONE, Telephony.IDLE]
    assert hub.user("bob").presence.telephony is Telephony.ON_THE_PHONE
    history = await hub.history("alice")
    assert [h.telephony for h in history][:2] == ["idle", "on_the_phone"]
    await hubs.stop(hub)
    again = await hubs.open()  # durable
    assert again.user("bob").presence.telephony is Telephony.ON_THE_PHONE
    assert again.user("alice").presence.telephony is Telephony.IDLE


async def test_a_rejected_event_is_returned_and_the_others_apply(hub: Hub) -> None:
    await add_user(hub, "alice")
    events: list[tuple[str, Event]] = [
        ("alice", SelectProfile("no such profile")),
        ("alice", TelephonyEvent("a1", CONNECTED)),
        ("nobody", TelephonyEvent("n1", CONNECTED)),
    ]
    rejected = await hub.handle_batch(events, "pbx")
    assert [index for index, _ in rejected] == [0, 2]
    assert all(isinstance(refusal, Rejected) for _, refusal in rejected)
    assert hub.user("alice").presence.telephony is Telephony.ON_THE_PHONE


async def test_a_batch_that_changes_nothing_writes_nothing(hub: Hub) -> None:
    await add_user(hub, "alice")
    before = await hub.history("alice")
    events: list[tuple[str, Event]] = [("alice", TelephonyEvent("a1", ENDED))]
    assert await hub.handle_batch(events, "pbx") == []
    assert await hub.history("alice") == before
