"""Sync health for the console: budget samples over time, recent errors, latency histograms.

The Graph budget is sampled every few seconds into a small ring buffer (memory
only: a restart starts a new curve). Warnings of the Teams sync's loggers are kept
in a second small buffer, redacted like every other log line; a warning that repeats
(the same call of the log, say a write failing for user after user) while the last
one is under a minute old adds to that one's count instead of a line of its own.
Latencies come from the Prometheus histograms the hub already keeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from prometheus_client import Histogram

from presencebridge import metrics
from presencebridge.logs import RedactingFilter, redact

SAMPLE_SECONDS = 2.0
SAMPLES_KEPT = 300  # ten minutes at one sample every two seconds
ERRORS_KEPT = 20
# A repeat of a warning this soon after the last counts on that warning's line.
REPEAT_SECONDS = 60.0
WATCHED_LOGGERS = (
    "presencebridge.service.teams_sync",
    "presencebridge.adapters.graph",
    "presencebridge.bootstrap",
    "presencebridge.api.webhook",
    "presencebridge.service.connectors",
    "presencebridge.service.webhooks",
    "presencebridge.adapters.sip",
    "presencebridge.adapters.asterisk",
    "presencebridge.adapters.xmpp",
)


@dataclass(frozen=True, slots=True)
class BudgetSample:
    at: float  # wall-clock seconds
    used: int
    limit: int
    read_limit: int


@dataclass(slots=True)
class ErrorRecord:
    at: float  # the last time
    level: str
    source: str
    message: str  # the last one's words
    first: float = 0.0
    count: int = 1
    template: object = None  # the log call's format string: what makes a repeat


class RecentErrors(logging.Handler):
    """Keeps the last warnings and errors of the Teams sync's loggers, repeats counted."""

    def __init__(self, capacity: int = ERRORS_KEPT) -> None:
        super().__init__(logging.WARNING)
        self.records: deque[ErrorRecord] = deque(maxlen=capacity)
        self.addFilter(RedactingFilter())

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = redact(record.getMessage())
        except Exception:  # a broken log call must not break the caller
            return
        for kept in reversed(self.records):
            if kept.source == record.name and kept.template == record.msg:
                if record.created - kept.at <= REPEAT_SECONDS:
                    kept.at, kept.message, kept.level = record.created, message, record.levelname
                    kept.count += 1
                    return
                break
        self.records.append(
            ErrorRecord(
                record.created,
                record.levelname,
                record.name,
                message,
                record.created,
                1,
                record.msg,
            )
        )

    def attach(self) -> None:
        for name in WATCHED_LOGGERS:
            logging.getLogger(name).addHandler(self)

    def detach(self) -> None:
        for name in WATCHED_LOGGERS:
            logging.getLogger(name).removeHandler(self)


class HealthMonitor:
    """Lives in `app.state.console_health`; sampled by a task running with the app."""

    def __init__(self) -> None:
        self.samples: deque[BudgetSample] = deque(maxlen=SAMPLES_KEPT)
        self.errors = RecentErrors()
        self._task: asyncio.Task[None] | None = None

    def sample(self, sync: Any) -> None:
        if sync is None:
            return
        budget = sync.budget
        self.samples.append(
            BudgetSample(time.time(), int(budget.used()), budget.limit, budget.read_limit)
        )

    async def _run(self, state: Any) -> None:
        while True:
            with contextlib.suppress(Exception):
                self.sample(getattr(state, "teams_sync", None))
            await asyncio.sleep(SAMPLE_SECONDS)

    def start(self, state: Any) -> None:
        self.errors.attach()
        self._task = asyncio.create_task(self._run(state), name="console-health-sampler")

    async def stop(self) -> None:
        self.errors.detach()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


# -- latency histograms --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Bucket:
    upper: float  # seconds; math.inf for the last
    count: int


def histogram(source: Histogram) -> tuple[list[Bucket], int, float]:
    """Per-bucket (not cumulative) counts summed over all label sets, the count, the sum."""
    cumulative: dict[float, float] = {}
    total = 0.0
    total_sum = 0.0
    for family in source.collect():
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                upper = float(sample.labels["le"])
                cumulative[upper] = cumulative.get(upper, 0.0) + sample.value
            elif sample.name.endswith("_count"):
                total += sample.value
            elif sample.name.endswith("_sum"):
                total_sum += sample.value
    buckets: list[Bucket] = []
    previous = 0.0
    for upper in sorted(cumulative):
        buckets.append(Bucket(upper, round(cumulative[upper] - previous)))
        previous = cumulative[upper]
    return buckets, int(total), total_sum


def graph_requests() -> list[tuple[str, str, int]]:
    """(operation, HTTP status, count) of every Graph request so far."""
    rows: list[tuple[str, str, int]] = []
    for family in metrics.GRAPH_REQUESTS.collect():
        for sample in family.samples:
            if sample.name.endswith("_total"):
                labels = sample.labels
                rows.append((labels["operation"], labels["status"], int(sample.value)))
    return sorted(rows)


# -- inline SVG ------------------------------------------------------------------------------


def sparkline(samples: list[BudgetSample], width: int = 600, height: int = 120) -> dict[str, Any]:
    """A budget-use polyline, scaled to what was used (at most the limit) so a pattern shows.

    The read share is drawn as a line when it falls inside the scale.
    """
    if not samples:
        return {"points": "", "read_y": None, "width": width, "height": height}
    limit = max(1, max(s.limit for s in samples))
    peak = max(s.used for s in samples)
    top = min(limit, max(10, math.ceil(peak * 1.25)))
    start, end = samples[0].at, samples[-1].at
    span = max(end - start, 1.0)
    points = []
    for s in samples:
        x = (s.at - start) / span * width if len(samples) > 1 else width
        y = height - min(s.used, top) / top * height
        points.append(f"{x:.1f},{y:.1f}")
    read_limit = samples[-1].read_limit
    read_y = round(height - read_limit / top * height, 1) if read_limit <= top else None
    return {
        "points": " ".join(points),
        "read_y": read_y,
        "width": width,
        "height": height,
        "span_seconds": span,
        "peak": peak,
        "top": top,
    }


Number = Callable[[float, int], str]


def _plain(value: float, digits: int = 0) -> str:
    return f"{value:.{digits}f}"


def bar_chart(
    buckets: list[Bucket], number: Number = _plain, width: int = 600, height: int = 140
) -> list[dict[str, Any]]:
    """Bars (x, y, w, h, label, count) of a latency histogram; `number` writes a number
    the reader's way (a decimal comma in German)."""
    if not buckets:
        return []
    top = max(b.count for b in buckets) or 1
    slot = width / len(buckets)
    bars = []
    previous: float | None = None
    for index, bucket in enumerate(buckets):
        h = bucket.count / top * (height - 4)
        if math.isinf(bucket.upper):
            label = "> " + bucket_label(previous, number) if previous is not None else "∞"
        else:
            label = "≤ " + bucket_label(bucket.upper, number)
        previous = bucket.upper
        bars.append(
            {
                "x": round(index * slot + 2, 1),
                "y": round(height - h, 1),
                "w": round(slot - 4, 1),
                "h": round(h, 1),
                "label": label,
                "count": bucket.count,
            }
        )
    return bars


def bucket_label(upper: float, number: Number = _plain) -> str:
    value, unit = (upper * 1000, "ms") if upper < 1 else (upper, "s")
    digits = 0 if value == round(value) else len(f"{value:g}".partition(".")[2])
    return f"{number(value, digits)} {unit}"
