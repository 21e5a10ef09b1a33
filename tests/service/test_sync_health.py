"""What the sync page and the user page say about the Teams sync: request rates per
minute, storms of throttling as one line, users whose writes fail, why a user is not
synced, and the last sync."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from presencebridge.core.model import CallState, TeamsSyncMode, User
from presencebridge.core.rules import SetOwnMode, TelephonyEvent
from presencebridge.core.settings import GroupSettings
from presencebridge.service import sync_health, teams_sync
from presencebridge.service.hub import Hub
from presencebridge.service.sync_health import MinuteCounts, Storms, SyncHealth, not_synced
from presencebridge.service.teams_sync import TeamsWriter
from presencebridge.web.health import RecentErrors
from tests.service.conftest import FakeTeams, Sync, add_user

T = 1_800_000_000.0  # a wall-clock second at the start of a minute (divisible by 60)


def test_rates_are_per_minute_over_the_window_and_old_minutes_are_dropped() -> None:
    counts = MinuteCounts(started=T - 3600)
    for minute in range(20):  # 20 minutes: 10 reads a minute, 3 of them throttled
        for i in range(10):
            status = "429" if i < 3 else "200"
            counts.add("getPresencesByUserId", status, T + minute * 60 + i)
    counts.add("setPresence", "503", T + 19 * 60 + 30)
    counts.add("setPresence", "error", T + 19 * 60 + 31)
    now = T + 19 * 60 + 59
    five = {r.operation: r for r in counts.rates(5, now)}
    every, reads = five[""], five["getPresencesByUserId"]
    assert (reads.requests, reads.throttled) == (50, 15)
    assert reads.minutes == pytest.approx(4 + 59 / 60)  # four whole minutes and this one
    assert reads.per_minute(reads.requests) == pytest.approx(50 / (4 + 59 / 60))
    assert (every.requests, every.server_errors, every.network_errors) == (52, 1, 1)
    assert every.failed == 17
    fifteen = {r.operation: r for r in counts.rates(15, now)}
    assert fifteen["getPresencesByUserId"].requests == 150
    assert len(counts._buckets) == sync_health.MINUTES_KEPT  # minutes 0..4 are gone


def test_just_after_the_start_a_rate_counts_only_the_time_covered() -> None:
    counts = MinuteCounts(started=T)
    for i in range(30):
        counts.add("setPresence", "200", T + i)
    (every, _op) = counts.rates(15, T + 30)
    assert every.minutes == pytest.approx(0.5)
    assert every.per_minute(every.requests) == pytest.approx(60.0)


def test_no_requests_yet_is_a_zero_rate_not_a_missing_row() -> None:
    (every,) = MinuteCounts(started=T).rates(5, T + 10)
    assert (every.operation, every.requests, every.per_minute(every.requests)) == ("", 0, 0.0)


def test_a_storm_of_throttling_is_one_line_with_a_count_and_few_log_lines(
    caplog: pytest.LogCaptureFixture,
) -> None:
    storms = Storms()
    caplog.set_level(logging.WARNING, logger="presencebridge.service.sync_health")
    for i in range(1000):  # 1,000 throttled requests over 150 s, one every 0.15 s
        storms.add("setPresence" if i % 2 else "getPresencesByUserId", "429", T + i * 0.15)
        storms.add("setPresence", "200", T + i * 0.15)  # successes are no trouble
    assert len(storms.lines) == 1
    storm = storms.lines[0]
    assert (storm.kind, storm.count, storm.first) == ("429", 1000, T)
    assert storm.operations == {"setPresence": 500, "getPresencesByUserId": 500}
    # The log hears of it when it begins and then once a minute: 150 s -> 3 lines.
    assert len(caplog.records) == 3, [r.getMessage() for r in caplog.records]
    assert "still answers 429" in caplog.records[1].getMessage()


def test_a_quiet_minute_ends_a_storm_and_kinds_are_kept_apart() -> None:
    storms = Storms()
    storms.add("setPresence", "429", T)
    storms.add("setPresence", "503", T + 1)
    storms.add("setPresence", "502", T + 2)
    storms.add("setPresence", "error", T + 3)
    storms.add("setPresence", "429", T + 30)
    storms.add("setPresence", "429", T + 30 + sync_health.STORM_GAP_SECONDS + 1)
    kinds = [(s.kind, s.count) for s in storms.lines]
    assert kinds == [("429", 2), ("5xx", 2), ("error", 1), ("429", 1)]
    assert storms.lines[1].statuses == {"503": 1, "502": 1}


def test_the_graph_client_hook_feeds_both() -> None:
    clock = iter([T, T + 1, T + 2, T + 3])
    health = SyncHealth(clock=lambda: next(clock))
    health.answer("setPresence", "429")
    health.answer("setPresence", "200")
    health.answer("setPresence", "429")
    (_every, op) = health.counts.rates(5, T + 3)
    assert (op.operation, op.requests, op.throttled) == ("setPresence", 3, 2)
    assert [s.count for s in health.storms.lines] == [2]


def test_repeated_warnings_are_one_line_with_a_count() -> None:
    errors = RecentErrors()
    log = logging.getLogger("presencebridge.service.teams_sync.test")
    log.addHandler(errors)
    try:
        for user in ("anna", "ben", "carla"):
            log.warning("Teams write for %s failed (%s); retry in %.0f s", user, "503", 2)
        log.warning("unknown Teams activity %r: treated as no call", "Juggling")
    finally:
        log.removeHandler(errors)
    lines = [(r.count, r.message) for r in errors.records]
    assert lines == [
        (3, "Teams write for carla failed (503); retry in 2 s"),
        (1, "unknown Teams activity 'Juggling': treated as no call"),
    ]
    first = errors.records[0]
    assert first.first <= first.at


def test_a_repeat_after_a_quiet_minute_is_a_new_line() -> None:
    errors = RecentErrors()
    record = logging.LogRecord("x", logging.WARNING, __file__, 1, "failed %s", ("a",), None)
    errors.emit(record)
    later = logging.LogRecord("x", logging.WARNING, __file__, 1, "failed %s", ("b",), None)
    later.created = record.created + 61
    errors.emit(later)
    assert [r.count for r in errors.records] == [1, 1]


def test_a_user_not_read_for_a_few_rounds_is_stale() -> None:
    assert sync_health.stale_after(1.0, None) == 60.0  # at least a minute
    assert sync_health.stale_after(30.0, None) == 90.0  # three rounds
    assert sync_health.stale_after(1.0, 60.0) == 180.0  # notify: the slow reads count
    now = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
    assert not sync_health.is_stale(now - timedelta(seconds=59), now, 3600, 60)
    assert sync_health.is_stale(now - timedelta(seconds=61), now, 3600, 60)
    assert not sync_health.is_stale(None, now, 30, 60)  # just started: not read yet
    assert sync_health.is_stale(None, now, 61, 60)


# -- on the hub ----------------------------------------------------------------------------------

pytest_anyio = pytest.mark.anyio


@pytest_anyio
async def test_why_a_user_is_not_synced(hub: Hub) -> None:
    await add_user(hub, "synced")
    await hub.create_user(User("plain", "Plain", "hq", None))
    off = GroupSettings(teams_sync_mode=TeamsSyncMode.OFF)
    await hub.create_group("off", "Off", off)
    await hub.create_user(User("grouped", "Grouped", "off", "t-grouped"))
    free = GroupSettings(teams_sync_mode=TeamsSyncMode.TELEPHONY_AND_PRESENCE, user_may_change=True)
    await hub.create_group("free", "Free", free)
    await hub.create_user(User("chooser", "Chooser", "free", "t-chooser"))
    await hub.handle("chooser", SetOwnMode(TeamsSyncMode.OFF), "test")

    def reason(user: str, server: bool = True, client: bool = False, agent: bool = False) -> object:
        return not_synced(hub, user, server, client, agent)

    assert reason("synced") is None
    assert reason("plain") == sync_health.NO_TEAMS_ID
    assert reason("grouped") == sync_health.GROUP_MODE_OFF
    assert reason("chooser") == sync_health.OWN_MODE_OFF
    assert reason("synced", server=False) == sync_health.SERVER_SYNC_OFF
    assert reason("synced", server=False, client=True) == sync_health.AGENT_NOT_CONNECTED
    assert reason("synced", server=False, client=True, agent=True) is None


@pytest_anyio
async def test_failing_writes_are_kept_per_user_until_one_goes_through(
    hub: Hub, graph: FakeTeams
) -> None:
    await add_user(hub, "alice")
    await add_user(hub, "bob")
    async with failing_write(hub, graph, "alice") as writer:
        failure = writer.failing["alice"]
        assert failure.failures == 1 and "429" in failure.error
        assert failure.since <= time.time() < failure.retry_at
        assert hub.teams_last_sync("alice") is None  # nothing read or written yet
        assert "bob" not in writer.failing
        for _turn in range(1_000_000):
            if "alice" not in writer.failing and writer.settled():
                break
            await asyncio.sleep(0)
        assert "alice" not in writer.failing
        assert hub.teams_last_sync("alice") == hub.clock.now()  # a write is a sync too


@contextlib.asynccontextmanager
async def failing_write(hub: Hub, graph: FakeTeams, user_id: str) -> AsyncIterator[TeamsWriter]:
    """A running Teams writer whose first write, for `user_id`'s call, Graph refused; its
    retry comes soon (0.05 s), after Graph took the next write."""
    writer = TeamsWriter(hub, graph, concurrency=1, retry_delay=lambda _failures: 0.05)
    task = asyncio.create_task(writer.run())
    try:
        graph.refuse = 1
        await hub.handle(user_id, TelephonyEvent("c1", CallState.CONNECTED), "pbx")
        for _turn in range(1_000_000):
            if user_id in writer.failing:
                break
            await asyncio.sleep(0)
        yield writer
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


class EarlyTimers:
    """`time` as the writer reads it, once behind the loop's timers: what it sees when a
    timer fires a moment before `time.monotonic()` reaches the timer's time (uvloop's
    timers count whole milliseconds)."""

    def __init__(self) -> None:
        self.behind = 0.0

    def monotonic(self) -> float:
        return time.monotonic() - self.behind

    def time(self) -> float:
        return time.time()


@pytest_anyio
async def test_a_failed_write_is_retried_when_its_timer_fires_however_the_clock_reads(
    hub: Hub, graph: FakeTeams, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by the sync page's browser test: with nothing else waking the writer, a
    failing user skipped by a too-early clock comparison was never written again, and
    the console listed him as failing for good."""
    await add_user(hub, "alice")
    clock = EarlyTimers()
    monkeypatch.setattr(teams_sync, "time", clock)
    async with failing_write(hub, graph, "alice") as writer:
        clock.behind = 0.5  # the retry's timer fires "before" its time
        for _turn in range(1_000):  # a bound only (10 s): it goes through in about 0.05 s
            if "alice" not in writer.failing:
                break
            await asyncio.sleep(0.01)
        assert "alice" not in writer.failing
        assert hub.teams_last_sync("alice") is not None


@pytest_anyio
async def test_a_reading_is_a_sync_too(hub: Hub, sync: Sync) -> None:
    await add_user(hub, "carla")
    assert hub.teams_last_sync("carla") is None
    await sync.poll()
    assert hub.teams_last_sync("carla") == hub.clock.now()
