"""Group commit: many users' changes in one durable transaction.

Each event still waits for its own commit before it is acknowledged, but events
that arrive while a commit is on disk share the next one, so the store's fsync
is paid once per batch instead of once per event. Per-user order is untouched:
a user's next event waits for the user's lock, which is held until the commit.

One bad change never fails the others it shares a transaction with: when the store
refuses a batch because of what it holds (data the database cannot keep, a user
whose partition this node lost), the batch is committed again in halves until the
changes at fault are alone; they alone fail, everything else is acknowledged. Data
the database refuses is answered as an invalid request (422), not as a server error.
A failure of the database itself (unreachable, full) fails the batch as before:
retrying it piece by piece would only multiply the wait.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from presencebridge.adapters.store import HistoryEntry, Unstorable
from presencebridge.adapters.store.leases import LeaseLost
from presencebridge.core.errors import Reason, Rejected
from presencebridge.core.model import UserState

log = logging.getLogger(__name__)

MAX_BATCH = 500

Save = Callable[[Sequence[UserState], Sequence[HistoryEntry], datetime], Awaitable[None]]

# Failures that may be caused by some changes of a batch only: worth isolating.
# (ValueError covers Unstorable and an encoding error of one state.)
_PER_CHANGE = (ValueError, TypeError, LeaseLost)


def _as_answer(error: Exception) -> Exception:
    """What the waiter of a change the store refused is told."""
    if isinstance(error, Unstorable):
        return Rejected(Reason.INVALID, f"{error}; nothing was changed")
    return error


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
            try:
                await self._save(states, history, now)
            except Unstorable as error:
                raise _as_answer(error) from error
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
                await self._commit(batch)

    async def _commit(self, batch: Sequence[_Pending]) -> None:
        states = [s for p in batch for s in p.states]
        history = [h for p in batch for h in p.history]
        try:
            await self._save(states, history, max(p.now for p in batch))
        except Exception as error:
            if len(batch) > 1 and isinstance(error, _PER_CHANGE):
                # Find the change(s) at fault; the rest commit and are acknowledged.
                log.warning(
                    "commit of %d changes refused (%s); committing them in halves",
                    len(batch),
                    error,
                )
                half = len(batch) // 2
                await self._commit(batch[:half])
                await self._commit(batch[half:])
                return
            if len(batch) == 1 and isinstance(error, _PER_CHANGE):
                users = ", ".join(s.user.id for s in states)
                log.warning("change of %s refused by the store: %s", users, error)
            else:  # every waiter learns of it; nothing is acknowledged
                log.exception("commit of %d changes failed", len(batch))
            answer = _as_answer(error)
            for pending in batch:
                if not pending.done.done():
                    pending.done.set_exception(answer)
            return
        self.batches += 1
        self.events += len(batch)
        for pending in batch:
            if not pending.done.done():
                pending.done.set_result(None)
