"""How the Teams sync fares, for the console's sync page and the user page.

* `MinuteCounts`: a small ring of per-minute counters of Graph requests by operation and
  answer, so the page shows rates over the last 5 and 15 minutes rather than totals
  since start (memory only; a restart starts afresh).
* `Storms`: answers that mean trouble (429 throttling, 5xx, no answer at all) kept as
  one line per kind while they go on — a storm of a thousand 429s is one line with a
  count — and written to the log at its start and then at most once a minute.
* `not_synced`: why a user's presence is not synced with Teams, as a code the console
  says in the reader's language.

Times are wall-clock seconds (`time.time()`), passed in so tests need no clock.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from presencebridge.core.model import TeamsSyncMode
from presencebridge.core.settings import effective_mode

if TYPE_CHECKING:
    from presencebridge.service.hub import Hub

log = logging.getLogger(__name__)

MINUTES_KEPT = 15
# A quiet spell this long ends a storm: the next failure starts a new line.
STORM_GAP_SECONDS = 60.0
# While a storm goes on, the log hears of it at most this often.
STORM_LOG_SECONDS = 60.0
STORMS_KEPT = 20


def outcome(status: str) -> str | None:
    """The kind of trouble an answer is: "429", "5xx", "error" (no answer), else None."""
    if status == "429":
        return "429"
    if status == "error":
        return "error"
    if status.isdigit() and status.startswith("5"):
        return "5xx"
    return None


@dataclass(frozen=True, slots=True)
class Rate:
    """Requests of one operation (or all: "") over a window, per minute."""

    operation: str
    requests: int
    throttled: int  # 429
    server_errors: int  # 5xx
    network_errors: int  # no answer
    minutes: float  # the time the counts cover (less than the window just after start)

    def per_minute(self, count: int) -> float:
        return count / self.minutes if self.minutes > 0 else 0.0

    @property
    def failed(self) -> int:
        return self.throttled + self.server_errors + self.network_errors


class MinuteCounts:
    """Counts per (operation, answer) in one bucket per wall-clock minute, the last
    `MINUTES_KEPT` kept."""

    def __init__(self, started: float, minutes: int = MINUTES_KEPT) -> None:
        self.started = started
        self.minutes = minutes
        self._buckets: dict[int, Counter[tuple[str, str]]] = {}

    def add(self, operation: str, status: str, now: float) -> None:
        minute = math.floor(now / 60)
        bucket = self._buckets.get(minute)
        if bucket is None:
            bucket = self._buckets[minute] = Counter()
            for old in [m for m in self._buckets if m <= minute - self.minutes]:
                del self._buckets[old]
        bucket[(operation, status)] += 1

    def rates(self, window_minutes: int, now: float) -> list[Rate]:
        """Per operation over the last `window_minutes` (this minute so far and the
        whole minutes before it), with the sum of all operations first (operation "")."""
        minute = math.floor(now / 60)
        first = minute - window_minutes + 1
        covered_from = max(first * 60.0, self.started)
        minutes = max(now - covered_from, 1.0) / 60
        sums: dict[str, Counter[str]] = {}
        for m, bucket in self._buckets.items():
            if first <= m <= minute:
                for (operation, status), count in bucket.items():
                    for key in ("", operation):
                        sums.setdefault(key, Counter())[status] += count
        sums.setdefault("", Counter())
        result = []
        for operation in sorted(sums):
            counts = sums[operation]
            kinds: Counter[str | None] = Counter()
            for status, count in counts.items():
                kinds[outcome(status)] += count
            result.append(
                Rate(
                    operation,
                    sum(counts.values()),
                    kinds["429"],
                    kinds["5xx"],
                    kinds["error"],
                    minutes,
                )
            )
        return result


@dataclass(slots=True)
class Storm:
    """One kind of trouble while it goes on: when it began, when last seen, how often."""

    kind: str  # "429", "5xx", "error"
    first: float
    last: float
    count: int = 1
    operations: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    logged_at: float = 0.0
    logged_count: int = 0


class Storms:
    def __init__(self, kept: int = STORMS_KEPT) -> None:
        self.kept = kept
        self.lines: list[Storm] = []  # oldest first
        self._current: dict[str, Storm] = {}

    def add(self, operation: str, status: str, now: float) -> None:
        kind = outcome(status)
        if kind is None:
            return
        storm = self._current.get(kind)
        if storm is None or now - storm.last > STORM_GAP_SECONDS:
            storm = Storm(kind, now, now)
            self._current[kind] = storm
            self.lines.append(storm)
            del self.lines[: -self.kept]
        else:
            storm.count += 1
            storm.last = now
        storm.operations[operation] += 1
        storm.statuses[status] += 1
        if storm.logged_count == 0:
            storm.logged_at, storm.logged_count = now, storm.count
            log.warning("Graph answers %s (%s); requests are retried", _what(kind), operation)
        elif now - storm.logged_at >= STORM_LOG_SECONDS:
            log.warning(
                "Graph still answers %s: %d more in %.0f s, %d since it began",
                _what(kind),
                storm.count - storm.logged_count,
                now - storm.logged_at,
                storm.count,
            )
            storm.logged_at, storm.logged_count = now, storm.count


def _what(kind: str) -> str:
    return {"429": "429 Too Many Requests", "5xx": "server errors", "error": "nothing"}[kind]


class SyncHealth:
    """Fed by the Graph client with every answer (its `on_answer` hook)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.started = clock()
        self.counts = MinuteCounts(self.started)
        self.storms = Storms()

    def answer(self, operation: str, status: str) -> None:
        now = self.clock()
        self.counts.add(operation, status, now)
        self.storms.add(operation, status, now)


# -- a synced user not read or written for too long ---------------------------------------------

STALE_ROUNDS = 3
STALE_MINIMUM_SECONDS = 60.0


def stale_after(poll_interval: float, notify_poll_interval: float | None) -> float:
    """Seconds without a successful read or write after which a synced user's sync counts
    as failing: a few of the reads that should have come (in notify mode a covered user
    is read only every `notify_poll_interval`), at least a minute."""
    expected = poll_interval
    if notify_poll_interval is not None:
        expected = max(expected, notify_poll_interval)
    return max(STALE_MINIMUM_SECONDS, STALE_ROUNDS * expected)


def is_stale(last: datetime | None, now: datetime, running_for: float, after: float) -> bool:
    """`last`: the user's last sync by the hub's clock; `running_for`: how long the sync has
    run (a user not read yet is stale only once a read should have come)."""
    if last is None:
        return running_for > after
    return (now - last).total_seconds() > after


# -- why a user is not synced ------------------------------------------------------------------

NO_TEAMS_ID = "no_teams_id"
SERVER_SYNC_OFF = "server_sync_off"
GROUP_MODE_OFF = "group_mode_off"
OWN_MODE_OFF = "own_mode_off"
AGENT_NOT_CONNECTED = "agent_not_connected"


def not_synced(
    hub: Hub, user_id: str, server_sync: bool, client_side: bool, agent_connected: bool
) -> str | None:
    """Why the user's presence is not synced with Teams now, or None when it is (or
    should be: failing writes and a status held by the user are said elsewhere; a user
    another node of a cluster handles is synced there).

    `server_sync`: this server reads and writes Graph itself; `client_side`: the agents
    do it with their users' sign-in; `agent_connected`: the user's agent is connected
    to this node."""
    state = hub.user(user_id).state
    if state.user.teams_user_id is None:
        return NO_TEAMS_ID
    settings = hub.group(state.user.group).settings
    if effective_mode(settings, state.own_mode) is TeamsSyncMode.OFF:
        own_counts = settings.user_may_change and state.own_mode is not None
        return OWN_MODE_OFF if own_counts else GROUP_MODE_OFF
    if not server_sync and not client_side:
        return SERVER_SYNC_OFF
    if client_side and not server_sync and not agent_connected:
        return AGENT_NOT_CONNECTED
    return None
