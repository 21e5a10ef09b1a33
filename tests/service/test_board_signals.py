"""What the board needs from the hub and the Teams sync: since when each status holds,
and whether Teams readings are stale."""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import timedelta

import pytest

from presencebridge.core.model import CallState, Profile, Status
from presencebridge.core.rules import AddProfile, SelectProfile, TelephonyEvent
from presencebridge.service.hub import Hub
from presencebridge.service.teams_sync import STALE_AFTER_MIN, Reading, TeamsPoller
from tests.service.conftest import T0, FakeTeams, Hubs, add_user

pytestmark = pytest.mark.anyio

QUIET = Profile("Ruhe", Status.DND, "Ruhe bitte", "#660000")


async def test_status_since_moves_only_when_the_status_changes(hub: Hub) -> None:
    await add_user(hub, "alice")
    assert hub.status_since("alice") == T0  # created now: its status holds since now
    await hub.advance_clock(60)
    await hub.handle("alice", SelectProfile("Fokus"), "rest")  # available -> dnd
    assert hub.status_since("alice") == T0 + timedelta(seconds=60)
    await hub.advance_clock(60)
    # Another DnD profile: text and colour change, the status does not.
    await hub.handle("alice", AddProfile(QUIET), "rest")
    await hub.handle("alice", SelectProfile("Ruhe"), "rest")
    assert hub.user("alice").presence.text == QUIET.text
    assert hub.status_since("alice") == T0 + timedelta(seconds=60)
    await hub.advance_clock(60)
    await hub.handle("alice", TelephonyEvent("c1", CallState.CONNECTED), "pbx")  # -> busy
    assert hub.status_since("alice") == T0 + timedelta(seconds=180)


async def test_status_since_is_unknown_after_a_restart_and_gone_with_the_user(
    hubs: Hubs,
) -> None:
    hub = await hubs.open()
    await add_user(hub, "alice")
    await hubs.stop(hub)
    again = await hubs.open()
    assert again.status_since("alice") is None  # it changed before this process started
    await again.advance_clock(5)
    await again.handle("alice", SelectProfile("Fokus"), "rest")
    assert again.status_since("alice") == T0 + timedelta(seconds=5)
    await again.delete_user("alice")
    assert again.status_since("alice") is None


async def test_status_since_survives_a_restart_through_the_history(hubs: Hubs) -> None:
    hub = await hubs.open()
    await add_user(hub, "alice")
    await add_user(hub, "bob")
    await hub.advance_clock(60)
    await hub.handle("alice", SelectProfile("Fokus"), "rest")  # available -> dnd at +60
    await hub.advance_clock(60)
    await hub.handle("alice", AddProfile(QUIET), "rest")
    await hub.handle("alice", SelectProfile("Ruhe"), "rest")  # dnd still: a row, same run
    await hub.handle("bob", SelectProfile("Fokus"), "rest")  # dnd at +120 ...
    await hub.advance_clock(60)
    await hub.handle("bob", SelectProfile(None), "rest")  # ... available at +180
    await hubs.stop(hub)
    hubs.clock.advance(15 * 24 * 3600)  # past the history's 14 days: pruned
    again = await hubs.open()
    assert again.status_since("alice") == T0 + timedelta(seconds=60)
    assert again.status_since("bob") == T0 + timedelta(seconds=180)
    # The start pruned the old rows, but not a user's latest run start: a third start
    # still knows.
    assert [e.at for e in await again.history("alice")] == [T0 + timedelta(seconds=60)]
    await hubs.stop(again)
    third = await hubs.open()
    assert third.status_since("alice") == T0 + timedelta(seconds=60)
    assert third.status_since("bob") == T0 + timedelta(seconds=180)
    await third.handle("alice", SelectProfile(None), "rest")  # available now
    assert third.status_since("alice") == T0 + timedelta(days=15, seconds=180)


class FailingTeams(FakeTeams):
    failing: bool = False

    async def read(self, teams_user_ids: Sequence[str]) -> Sequence[Reading]:
        if self.failing:
            raise RuntimeError("Graph is down")
        return await super().read(teams_user_ids)


async def test_teams_readings_are_stale_after_reads_fail_for_a_while(hub: Hub) -> None:
    await add_user(hub, "alice")
    graph = FailingTeams()
    poller = TeamsPoller(hub, graph, reads_per_second=1000.0, min_interval=0.0)
    await poller.poll_once()
    assert poller.stale_since() is None
    graph.failing = True
    await poller.poll_once()
    assert poller.stale_since() is None  # one failed read is no outage
    # The last good read lies longer ago than the bound: stale, since that read.
    poller.last_read_ok -= STALE_AFTER_MIN + 1
    good_at = poller.last_read_ok_at
    await poller.poll_once()
    assert poller.stale_since() == good_at
    graph.failing = False
    await poller.poll_once()
    assert poller.stale_since() is None
    assert poller.last_read_ok_at >= good_at and poller.last_read_ok <= time.monotonic()
