"""Deadlines: each user's one next deadline, kept in a heap, fired on time.

The hub tells the timers a user's next deadline after every event (`schedule`);
the timers wake for the earliest and hand the users that are due back to the hub
(`fire`, the hub's Tick for many users). Superseded heap entries are skipped when
popped and the heap is rebuilt when they pile up, so it grows with users, not
with events. Time comes from the hub's clock, so moving that clock and calling
`settle` fires whatever became due, without waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timedelta

log = logging.getLogger(__name__)

# A user whose Tick failed is tried again this much later.
RETRY_AFTER = timedelta(seconds=5)
LONGEST_SLEEP = 3600.0


class Deadlines:
    def __init__(
        self,
        now: Callable[[], datetime],
        fire: Callable[[Sequence[str]], Awaitable[None]],
        live: Callable[[str], bool],
    ) -> None:
        """`fire` lets time take effect for the users due; `live` says whether a user is
        still one of this node's (another node's users keep their stale entries out)."""
        self._now = now
        self._fire = fire
        self._live = live
        # Lazily deleted heap: `_due_at` holds each user's one live deadline; heap
        # entries that no longer match it are skipped when popped.
        self._heap: list[tuple[datetime, str]] = []
        self._due_at: dict[str, datetime] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._heap)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="presence-timers")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def wake(self) -> None:
        """The clock moved: look at the heap again."""
        self._wake.set()

    def schedule(self, user_id: str, deadline: datetime | None) -> None:
        """Keep the user's earliest deadline; a Tick that comes early only reschedules."""
        scheduled = self._due_at.get(user_id)
        if deadline is None or (scheduled is not None and scheduled <= deadline):
            return
        self._due_at[user_id] = deadline
        heapq.heappush(self._heap, (deadline, user_id))
        if len(self._heap) > 2 * len(self._due_at) + 1024:
            # Too many superseded entries: rebuild from the live ones.
            self._heap = [(d, u) for u, d in self._due_at.items()]
            heapq.heapify(self._heap)
        if self._heap[0][1] == user_id:
            self._wake.set()

    async def settle(self) -> None:
        """Handle every deadline that is due now (used after the clock jumps)."""
        await self._fire_due(self._now())

    async def _fire_due(self, now: datetime) -> None:
        due: list[str] = []
        while self._heap and self._heap[0][0] <= now:
            deadline, user_id = heapq.heappop(self._heap)
            if self._due_at.get(user_id) == deadline:
                del self._due_at[user_id]
                due.append(user_id)
        due = sorted(u for u in due if self._live(u))
        try:
            await self._fire(due)
        except Exception:
            # Whoever's Tick failed has no deadline left: try them again shortly.
            for user_id in due:
                if user_id not in self._due_at:
                    self._due_at[user_id] = retry = now + RETRY_AFTER
                    heapq.heappush(self._heap, (retry, user_id))
            raise

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self._fire_due(self._now())
            except Exception:  # a timer must never die: log, and try again at the next wake-up
                log.exception("presence timer failed")
            wait = LONGEST_SLEEP
            if self._heap:
                wait = max(0.0, (self._heap[0][0] - self._now()).total_seconds())
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancellation
            # that meets a wake-up, and `stop` then waited up to an hour.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(wait, LONGEST_SLEEP) + 0.001):
                    await self._wake.wait()
