"""Group commit: many users' changes in one durable transaction.

Each event still waits for its own commit before it is acknowledged, but events
that arrive while a commit is on disk share the next one, so the store's fsync
is paid once per batch instead of once per event. Per-user order is untouched:
a user's next event waits for the user's lock, which is held until the commit.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from presencebridge.adapters.store import HistoryEntry
from presencebridge.core.model import UserState

log = logging.getLogger(__name__)

MAX_BATCH = 500

Save = Callable[[Sequence[UserState], Sequence[HistoryEntry], datetime], Awaitable[None]]


@dataclass
class _Pending:
    states: Sequence[UserState]
    history: Sequence[HistoryEntry]
    now: datetime
    done: asyncio.Future[None]


class GroupCommit:
    def __init__(self, save: Save) -> None:
        self._save = save
        self._queue: list[_Pending] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        self.events = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="group-commit")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for pending in self._queue:
            if not pending.done.done():
                pending.done.set_exception(RuntimeError("the hub is stopping"))

    async def write(
        self, states: Sequence[UserState], history: Sequence[HistoryEntry], now: datetime
    ) -> None:
        """Returns once these changes are durable; raises what the store raised."""
        if self._task is None:  # not started (tests of the hub alone): write directly
            await self._save(states, history, now)
            return
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append(_Pending(states, history, now, done))
        self._wake.set()
        await done

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
                states = [s for p in batch for s in p.states]
                history = [h for p in batch for h in p.history]
                try:
                    await self._save(states, history, max(p.now for p in batch))
                except Exception as error:  # every waiter learns of it; nothing is acknowledged
                    log.exception("commit of %d changes failed", len(batch))
                    for pending in batch:
                        if not pending.done.done():
                            pending.done.set_exception(error)
                    continue
                self.batches += 1
                self.events += len(batch)
                for pending in batch:
                    if not pending.done.done():
                        pending.done.set_result(None)
