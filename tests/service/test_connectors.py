"""The hub's side of the PBX connectors and presence outlets (issue 13), on a real store.

`TelephonyFeed` is what every PBX connector reports into: calls by extension, kept
apart per connector, and `settle` ends what the PBX no longer lists (a restart mid-call
must not leave anyone on the phone). `PresenceFeed` takes changes to each outlet: a
burst is one publication of the newest state, a refusing outlet gets the newest state
again later, a deleted user is withdrawn under the addresses they had.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from pydantic import ValidationError

from presencebridge.config import load_settings
from presencebridge.core.model import CallState, Telephony, User
from presencebridge.core.ports import ConnectorHealth, OutletUnavailable, OutwardUser
from presencebridge.core.publication import DialogState, Situation
from presencebridge.core.rules import SelectProfile
from presencebridge.service.connectors import HistoryNotes, PresenceFeed, TelephonyFeed
from presencebridge.service.hub import Hub
from tests.service.conftest import Hubs, add_user

pytestmark = pytest.mark.anyio


async def with_extension(hub: Hub, user_id: str, extension: str) -> None:
    await add_user(hub, user_id)
    await hub.update_user(user_id, {"extensions": (extension,)}, "test")


async def test_a_call_reported_by_extension_puts_its_user_on_the_phone(hub: Hub) -> None:
    await with_extension(hub, "alice", "2101")
    feed = TelephonyFeed(hub, "kamailio")
    assert feed.lines() == ["2101"]

    await feed.report("2101", "dialog-a", CallState.RINGING)
    assert hub.user("alice").presence.telephony is Telephony.RINGING
    await feed.report("2101", "dialog-a", CallState.CONNECTED)
    assert hub.user("alice").presence.telephony is Telephony.ON_THE_PHONE
    await feed.report("2101", "dialog-a", CallState.ENDED)
    assert hub.user("alice").presence.telephony is Telephony.IDLE
    history = await hub.history("alice")
    assert history[0].source == "pbx:kamailio"


async def test_an_outlet_writes_a_note_into_the_users_history(hub: Hub) -> None:
    """What an outlet left alone at the PBX (issue 17) shows in the history, under the
    outlet's name; a user this node does not have gets nothing and raises nothing."""
    await with_extension(hub, "alice", "2101")
    notes = HistoryNotes(hub, "publish:asterisk-blf")
    await notes.note("alice", "pbx: call forwarding on 2101 changed at the phone to 2198; kept")
    await notes.note("nobody", "ignored")
    [latest, *_] = await hub.history("alice")
    assert (latest.source, latest.change) == (
        "publish:asterisk-blf",
        "pbx: call forwarding on 2101 changed at the phone to 2198; kept",
    )
    assert latest.status == hub.user("alice").presence.status.value


async def test_an_extension_nobody_has_changes_nothing_and_is_counted(hub: Hub) -> None:
    await with_extension(hub, "alice", "2101")
    feed = TelephonyFeed(hub, "kamailio")
    await feed.report("9999", "dialog-a", CallState.CONNECTED)
    await feed.settle("9999", [])
    assert hub.user("alice").presence.telephony is Telephony.IDLE
    assert feed.unknown_lines == 2


async def test_settle_ends_the_calls_the_pbx_no_longer_lists_and_only_its_own(
    hubs: Hubs,
) -> None:
    """The PBX restarted mid-call: the first full notification after it lists no call.
    A call of another connector on the same extension is that connector's to end."""
    hub = await hubs.open()
    await with_extension(hub, "alice", "2101")
    sip = TelephonyFeed(hub, "sip")
    await sip.report("2101", "gone", CallState.CONNECTED)
    await sip.report("2101", "kept", CallState.CONNECTED)
    await TelephonyFeed(hub, "ami").report("2101", "other", CallState.CONNECTED)

    # The hub restarts too: what it remembers of the calls is in the store.
    await hubs.stop(hub)
    hub = await hubs.open()
    sip = TelephonyFeed(hub, "sip")
    await sip.settle("2101", ["kept"])
    calls = {c.call_id: c.state for c in hub.user("alice").state.calls}
    assert sorted(calls.values()) == [CallState.CONNECTED, CallState.CONNECTED, CallState.ENDED]

    await sip.settle("2101", [])
    await TelephonyFeed(hub, "ami").settle("2101", [])
    assert hub.user("alice").presence.telephony is Telephony.IDLE


async def test_the_lines_follow_the_users_extensions(hub: Hub) -> None:
    feed = TelephonyFeed(hub, "sip")
    told: list[None] = []
    feed.add_lines_listener(lambda: told.append(None))
    await with_extension(hub, "alice", "2101")
    await hub.create_user(User("bob", "Bob", "hq", extensions=("2102", "2100")))
    assert feed.lines() == ["2100", "2101", "2102"]
    changes = len(told)
    assert changes >= 2

    await hub.handle("alice", SelectProfile("Fokus"), "test")  # no extension changed
    assert len(told) == changes
    await hub.update_user("bob", {"extensions": ("2102",)}, "test")
    await hub.delete_user("alice")
    assert feed.lines() == ["2102"]
    assert len(told) == changes + 2


@dataclass
class RecordingOutlet:
    """An outlet that keeps what it was given; `refusing` makes it fail like a presence
    server that is down, `gate` holds publications until the test lets them through."""

    name: str = "recorder"
    kind: str = "test"
    language: str = "de"
    published: list[OutwardUser] = field(default_factory=list)
    refusing: bool = False
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    stopped: bool = False

    def __post_init__(self) -> None:
        self.gate.set()

    async def start(self) -> None:
        pass

    async def publish(self, user: OutwardUser) -> None:
        await self.gate.wait()
        if self.refusing:
            raise OutletUnavailable("presence server unreachable")
        self.published.append(user)

    async def stop(self) -> None:
        self.stopped = True

    def health(self) -> ConnectorHealth:
        return ConnectorHealth(self.name, self.kind, not self.refusing, "", {})

    def of(self, user_id: str) -> list[OutwardUser]:
        return [u for u in self.published if u.user_id == user_id]


async def until(condition: Callable[[], object]) -> None:
    """Wait, as long as it takes up to a bound, for `condition` to hold; the feed works
    on its own tasks, so the test yields to them between looks."""
    async with asyncio.timeout(10.0):
        while not condition():  # noqa: ASYNC110 - the feed has no event to wait on
            await asyncio.sleep(0.01)


async def test_everyone_is_published_at_start_and_a_teams_call_lights_the_dialog(
    hub: Hub,
) -> None:
    await with_extension(hub, "alice", "2101")
    outlet = RecordingOutlet()
    feed = PresenceFeed(hub, [outlet])
    await feed.start()
    try:
        await until(lambda: outlet.of("alice"))
        first = outlet.of("alice")[0]
        assert first.extensions == ("2101",)
        assert first.publication is not None
        assert first.publication.situation is Situation.AVAILABLE
        assert first.publication.note == "Verfügbar"  # the outlet's language

        await hub.handle("alice", SelectProfile("Fokus"), "manual")
        await until(lambda: len(outlet.of("alice")) == 2)
        dnd = outlet.of("alice")[1].publication
        assert dnd is not None and dnd.situation is Situation.DND
        assert dnd.outward.dialog is DialogState.TERMINATED
        assert dnd.note == "Bitte nicht stören"
    finally:
        await feed.stop()
    assert outlet.stopped


async def test_a_burst_of_changes_is_one_publication_of_the_newest_state(hub: Hub) -> None:
    await with_extension(hub, "alice", "2101")
    outlet = RecordingOutlet()
    feed = PresenceFeed(hub, [outlet])
    await feed.start()
    try:
        await until(lambda: outlet.of("alice"))
        outlet.gate.clear()  # the presence server is slow: changes pile up meanwhile
        pbx = TelephonyFeed(hub, "pbx")
        for n in range(5):
            await pbx.report("2101", f"c{n}", CallState.CONNECTED)
            await pbx.report("2101", f"c{n}", CallState.ENDED)
        await pbx.report("2101", "last", CallState.CONNECTED)
        outlet.gate.set()
        await until(lambda: feed.health()[0].counts["pending"] == 0 and len(outlet.published) >= 2)
        await asyncio.sleep(0)  # let a wrongly queued extra publication show
        later = outlet.of("alice")[1:]
        assert len(later) <= 2  # the one in flight when the gate closed, and the newest
        newest = later[-1].publication
        assert newest is not None and newest.situation is Situation.PBX_CALL
    finally:
        await feed.stop()


async def test_a_refusing_outlet_gets_the_newest_state_when_it_is_back(hub: Hub) -> None:
    await with_extension(hub, "alice", "2101")
    outlet = RecordingOutlet(refusing=True)
    feed = PresenceFeed(hub, [outlet])
    feed.RETRY_SECONDS = 0.05
    await feed.start()
    try:
        await until(lambda: feed.health()[0].counts["failed"] >= 1)
        await hub.handle("alice", SelectProfile("Fokus"), "manual")
        assert not feed.health()[0].up
        outlet.refusing = False
        await until(lambda: outlet.of("alice"))
        published = outlet.of("alice")[-1].publication
        assert published is not None and published.situation is Situation.DND
    finally:
        await feed.stop()


async def test_a_deleted_user_is_withdrawn_under_the_addresses_they_had(hub: Hub) -> None:
    await with_extension(hub, "alice", "2101")
    outlet = RecordingOutlet()
    feed = PresenceFeed(hub, [outlet])
    await feed.start()
    try:
        await until(lambda: outlet.of("alice"))
        await hub.delete_user("alice")
        await until(lambda: outlet.of("alice")[-1].publication is None)
        assert outlet.of("alice")[-1].extensions == ("2101",)
    finally:
        await feed.stop()


def test_a_connector_table_of_an_unknown_kind_is_refused_when_the_file_is_read(
    tmp_path: Path,
) -> None:
    config = tmp_path / "presencebridge.toml"
    config.write_text('[[pbx]]\nkind = "sip-dailog"\nname = "office"\n')
    with pytest.raises(ValidationError) as refused:
        load_settings(config)
    assert "[[pbx]] office: unknown kind 'sip-dailog'" in str(refused.value)
