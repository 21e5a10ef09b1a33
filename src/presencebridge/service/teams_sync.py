"""The Teams sync's moving parts: the writer (UC -> Teams) and the poller (Teams -> UC).

Both only translate: what to write and what a reading means is decided by the
pure rules in `core/teams.py`. The writer is level-triggered: it compares what
the rules want with what Graph has acknowledged, so a superseded state is never
sent, a failed write is retried until the latest state is in place, and a
restart simply compares again.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from presencebridge import metrics
from presencebridge.adapters.graph.client import GraphError
from presencebridge.adapters.graph.retry import rewrite_delay
from presencebridge.adapters.graph.writes import Acknowledgement, execute_plan, planned_writes, send
from presencebridge.adapters.store import TeamsRelease
from presencebridge.core import rules, teams
from presencebridge.core.ports import Reading, TeamsPresenceApi, TeamsPresenceWrites

if TYPE_CHECKING:
    from presencebridge.service.hub import Hub

log = logging.getLogger(__name__)

# Teams readings count as stale after this long without a successful read, at least.
STALE_AFTER_MIN = 10.0

__all__ = ["Reading", "TeamsPoller", "TeamsPresenceApi", "TeamsWriter", "apply_readings"]


@dataclass(frozen=True, slots=True)
class WriteFailure:
    """A user whose Teams writes fail: since when (wall clock), how often in a row, the
    last error, and when the newest state is tried again (wall clock)."""

    since: float
    failures: int
    error: str
    retry_at: float


class TeamsWriter:
    """Brings each user's Teams state to what the rules want; coalesces per user.

    It follows the hub through its change listeners: every change of a user this node
    handles, and every user taken over from another node, is looked at again.
    """

    def __init__(
        self,
        hub: Hub,
        api: TeamsPresenceWrites,
        concurrency: int = 16,
        retry_delay: Callable[[int], float] = rewrite_delay,
    ) -> None:
        self.hub = hub
        self.api = api
        self.concurrency = concurrency
        # An insertion-ordered set taken from the front: an OrderedDict, because a plain
        # dict's iteration walks past every entry deleted from its front (100,000 users
        # queued at once cost seconds of CPU, quadratically).
        self._pending: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._running: set[str] = set()
        self._wake = asyncio.Event()
        self._retry_at: dict[str, float] = {}
        self._failures: dict[str, int] = {}
        self._refresh: set[str] = set()
        self.retry_delay = retry_delay
        # Users whose last write failed, for the console (cleared by the next success).
        self.failing: dict[str, WriteFailure] = {}
        # Teams releases (a user deleted, a Teams id changed): by id, with their retries.
        self._releases: collections.OrderedDict[int, TeamsRelease] = collections.OrderedDict()
        self._releases_running: set[int] = set()
        self._release_retry_at: dict[int, float] = {}
        self._release_failures: dict[int, int] = {}
        hub.add_change_listener(self._changed)
        hub.add_takeover_listener(self._taken_over)
        hub.add_release_listener(self.release)

    def compare_everyone(self) -> None:
        """At start: everyone is compared once, and sessions are re-sent: while the hub
        was down Graph may have let them expire. Releases left from before are sent."""
        self._taken_over(self.hub.user_ids())

    def _changed(self, user_id: str) -> None:
        if self._synced(user_id):
            self.notify(user_id)

    def _synced(self, user_id: str) -> bool:
        return (
            self.hub.has_user(user_id)
            and self.hub.owns(user_id)
            and self.hub.user(user_id).state.user.teams_user_id is not None
        )

    def _taken_over(self, user_ids: Sequence[str]) -> None:
        for user_id in user_ids:
            if self._synced(user_id):
                self.notify(user_id, refresh=True)
        for release in self.hub.releases():
            self.release(release)

    def release(self, release: TeamsRelease) -> None:
        """Clear what the hub set in Teams under a Teams id it no longer syncs."""
        if release.id is not None and release.id not in self._releases_running:
            self._releases[release.id] = release
            self._wake.set()

    def notify(self, user_id: str, refresh: bool = False) -> None:
        """Look at this user again; `refresh` re-sends the session even if not yet due."""
        if refresh:
            self._refresh.add(user_id)
        self._pending[user_id] = None
        self._wake.set()

    def idle(self) -> bool:
        return (
            not self._pending
            and not self._running
            and not self._releases
            and not self._releases_running
        )

    def settled(self) -> bool:
        """Idle, and no failed write waits for its retry."""
        return self.idle() and not self._retry_at and not self._release_retry_at

    async def run(self) -> None:
        workers = [asyncio.create_task(self._worker()) for _ in range(self.concurrency)]
        try:
            await asyncio.gather(*workers)
        finally:
            for worker in workers:
                worker.cancel()

    async def _worker(self) -> None:
        while True:
            release = self._next_release()
            if release is not None:
                await self._work_off(release)
                continue
            user_id = self._next()
            if user_id is None:
                self._wake.clear()
                await self._wake.wait()
                continue
            self._running.add(user_id)
            try:
                await self._sync_user(user_id)
                self._failures.pop(user_id, None)
                self.failing.pop(user_id, None)
            except Exception as error:  # one user's trouble must not stop the others
                failures = self._failures.get(user_id, 0) + 1
                self._failures[user_id] = failures
                delay = self.retry_delay(failures)
                now = time.time()
                before = self.failing.get(user_id)
                self.failing[user_id] = WriteFailure(
                    now if before is None else before.since, failures, str(error), now + delay
                )
                log.warning(
                    "Teams write for %s failed (%s); retry in %.0f s", user_id, error, delay
                )
                self._retry_at[user_id] = time.monotonic() + delay
                asyncio.get_running_loop().call_later(delay, self._retry, user_id)
            finally:
                self._running.discard(user_id)

    def _retry(self, user_id: str) -> None:
        """A failed user's backoff is over. The timer ends it, not a clock comparison: a
        loop's timer may fire a moment before `time.monotonic()` reaches the retry time,
        and a user skipped then waited, unwritten, until something else woke the writer."""
        self._retry_at.pop(user_id, None)
        self.notify(user_id)

    def _release_retry(self, release_id: int) -> None:
        self._release_retry_at.pop(release_id, None)
        self._wake.set()

    def _next(self) -> str | None:
        now = time.monotonic()
        for user_id in self._pending:
            if user_id in self._running:
                continue  # per-user order: one write at a time; it is looked at again after
            if self._retry_at.get(user_id, 0.0) > now:
                continue
            del self._pending[user_id]
            self._retry_at.pop(user_id, None)
            return user_id
        return None

    def _next_release(self) -> TeamsRelease | None:
        """A release not waiting for its retry, whose user has no write under way (that
        write's clear is in the release: the hub marked it unsure before sending it)."""
        now = time.monotonic()
        for release_id, release in self._releases.items():
            if release.user_id in self._running or self._release_retry_at.get(release_id, 0) > now:
                continue
            del self._releases[release_id]
            self._release_retry_at.pop(release_id, None)
            self._releases_running.add(release_id)
            return release
        return None

    async def _work_off(self, release: TeamsRelease) -> None:
        assert release.id is not None
        try:
            await self._clear(release)
            await self.hub.release_done(release)
            self._release_failures.pop(release.id, None)
        except Exception as error:  # kept, durably; tried again
            failures = self._release_failures.get(release.id, 0) + 1
            self._release_failures[release.id] = failures
            delay = self.retry_delay(failures)
            log.warning(
                "Teams release of %s failed (%s); retry in %.0f s",
                release.teams_user_id,
                error,
                delay,
            )
            self._releases[release.id] = release
            self._release_retry_at[release.id] = time.monotonic() + delay
            asyncio.get_running_loop().call_later(delay, self._release_retry, release.id)
        finally:
            self._releases_running.discard(release.id)

    async def _clear(self, release: TeamsRelease) -> None:
        """The clears through the one write path; a Teams user Graph no longer knows
        (404) has nothing left to clear."""
        plan = teams.WritePlan(
            clear_session=release.clear_session,
            clear_preferred=release.clear_preferred,
            clear_message=release.clear_message,
        )
        for write in planned_writes(plan, self.hub.clock.now()):
            try:
                await send(self.api, release.teams_user_id, write)
            except GraphError as error:
                if error.status != 404:
                    raise

    async def _sync_user(self, user_id: str) -> None:
        if not self._synced(user_id):
            return  # deleted, no Teams id, or another node handles this user now
        view = self.hub.user(user_id)
        state = view.state
        teams_id = state.user.teams_user_id
        if teams_id is None:
            return
        settings = self.hub.group(state.user.group).settings
        now = self.hub.clock.now()
        want = teams.intent(
            state, view.presence, self.hub.mode_of(user_id), settings.reassert_dnd, now,
            settings.teams_status_message,
        )  # fmt: skip
        plan = teams.plan_writes(state, want, now, refresh=user_id in self._refresh)
        self._refresh.discard(user_id)

        async def acknowledge(written: Acknowledgement) -> None:
            # Each acknowledged write becomes part of the user's state, as long as the
            # user still has this Teams id (a release clears what was written before).
            if (
                self._synced(user_id)
                and self.hub.user(user_id).state.user.teams_user_id == teams_id
            ):
                await self.hub.handle(user_id, written, "teams")
                self.hub.note_teams_sync(user_id, self.hub.clock.now())

        await execute_plan(self.api, teams_id, plan, now, acknowledge)


class TeamsPoller:
    """Reads every synced user's Teams presence in rounds, as fast as the budget allows.

    A round needs ceil(users / 650) requests; with reads allowed `reads_per_second`,
    the interval is that count divided by the rate, but not below `min_interval`.
    At 10,000 users and 60 % of 1,500 / 30 s that is about one round a second.
    """

    def __init__(
        self,
        hub: Hub,
        api: TeamsPresenceApi,
        reads_per_second: float,
        min_interval: float = 1.0,
        parallel_reads: int = 8,
        covered: Callable[[], set[str]] | None = None,
        slow_interval: float = 60.0,
    ) -> None:
        self.hub = hub
        self.api = api
        self.reads_per_second = reads_per_second
        self.min_interval = min_interval
        self.parallel_reads = parallel_reads
        # Notify mode: users a subscription covers are read only every `slow_interval`.
        self.covered = covered
        self.slow_interval = slow_interval
        self._last_full_round = float("-inf")
        # When a read of Teams presence last succeeded (or no read was due): the board
        # marks what it shows of Teams as stale once this is too long ago (`stale_since`).
        self.last_read_ok = time.monotonic()
        self.last_read_ok_at = time.time()
        self.last_count = 0  # users the last round read
        self.rounds = 0
        self.last_round_seconds = 0.0
        self._unknown_logged: set[str] = set()

    def interval(self, users: int) -> float:
        requests = math.ceil(users / self.api.max_ids_per_read)
        return max(self.min_interval, requests / self.reads_per_second)

    def _read_ok(self) -> None:
        self.last_read_ok = time.monotonic()
        self.last_read_ok_at = time.time()

    def stale_after(self) -> float:
        """Seconds without a successful read after which Teams readings count as stale:
        three poll intervals, at least `STALE_AFTER_MIN` (a read retried once or twice
        is not an outage)."""
        return max(STALE_AFTER_MIN, 3 * self.interval(self.last_count))

    def stale_since(self) -> float | None:
        """Wall-clock time of the last successful read while reads fail for longer than
        `stale_after`; None while readings are fresh."""
        if time.monotonic() - self.last_read_ok > self.stale_after():
            return self.last_read_ok_at
        return None

    async def run(self) -> None:
        while True:
            started = time.monotonic()
            try:
                count = await self.poll_once()
            except Exception:  # the loop must survive anything one round meets
                log.exception("Teams poll round failed")
                count = 0
            self.rounds += 1
            self.last_round_seconds = time.monotonic() - started
            await asyncio.sleep(max(0.0, self.interval(count) - self.last_round_seconds))

    async def poll_once(self) -> int:
        """One round over every synced user; returns how many were read."""
        synced = self.hub.synced_users()
        by_teams_id = {teams_id: user_id for user_id, teams_id in synced}
        ids = list(by_teams_id)
        if self.covered is not None:
            if time.monotonic() - self._last_full_round >= self.slow_interval:
                self._last_full_round = time.monotonic()
            else:
                covered = self.covered()
                ids = [i for i in ids if i not in covered]
        self.last_count = len(ids)
        if not ids:
            self._read_ok()  # nothing to read: nothing can be stale
        size = self.api.max_ids_per_read
        chunks = [ids[i : i + size] for i in range(0, len(ids), size)]
        limit = asyncio.Semaphore(self.parallel_reads)
        # Reads are spread evenly over the interval: each chunk is read once per interval,
        # at its own slot. Started all at once they would queue in the budget and come in
        # bursts, and the sliding window would repeat the bursts round after round.
        spacing = self.interval(len(ids)) / max(1, len(chunks))
        started = time.monotonic()

        async def read(slot: int, chunk: list[str]) -> None:
            await asyncio.sleep(max(0.0, started + slot * spacing - time.monotonic()))
            async with limit:
                requested_at = self.hub.clock.now()
                readings = await self.api.read(chunk)
            self._read_ok()
            await self.apply(readings, by_teams_id, requested_at)

        results = await asyncio.gather(
            *(read(slot, c) for slot, c in enumerate(chunks)), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                log.warning("Teams read failed: %s", result)
        return len(ids)

    async def apply(
        self, readings: Sequence[Reading], by_teams_id: dict[str, str], requested_at: datetime
    ) -> None:
        for reading in readings:
            if reading.activity not in teams.KNOWN_ACTIVITIES:
                self._log_unknown(reading.activity)
        await apply_readings(self.hub, readings, by_teams_id, requested_at)

    def _log_unknown(self, activity: str) -> None:
        if activity not in self._unknown_logged:
            self._unknown_logged.add(activity)
            log.warning("unknown Teams activity %r: treated as no call", activity)


async def apply_readings(
    hub: Hub, readings: Sequence[Reading], by_teams_id: dict[str, str], requested_at: datetime
) -> None:
    """Hand what Graph showed (by poll or notification) to the rules, user by user."""
    started = time.perf_counter()
    now = hub.clock.now()
    observed: list[tuple[str, rules.TeamsObserved]] = []
    for reading in readings:
        user_id = by_teams_id.get(reading.teams_user_id)
        if user_id is None:
            continue
        hub.note_teams_sync(user_id, now)
        state = hub.user(user_id).state
        mode = hub.mode_of(user_id)
        extras = teams.TeamsExtras(reading.status_message, reading.out_of_office)
        needed = teams.needs_observation(
            state.teams, reading.availability, reading.activity, mode, extras
        )
        if not needed and not teams.oof_renewal_due(state, now):
            continue
        event = rules.TeamsObserved(
            reading.availability, reading.activity, reading.sequence, requested_at, extras
        )
        observed.append((user_id, event))
    # Together, so the changes of one read share one durable commit.
    await hub.handle_many(observed, "teams")
    metrics.SYNC_LAG.observe(time.perf_counter() - started)
