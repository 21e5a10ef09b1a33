"""Fan-out of effective-presence changes to live listeners (WebSocket clients)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from presencebridge.core.effective import EffectivePresence

# A listener this far behind is dropped; it reconnects and gets a fresh snapshot.
LISTENER_BACKLOG = 10_000


@dataclass(frozen=True, slots=True)
class PresenceChange:
    user_id: str
    presence: EffectivePresence | None  # None: the user was deleted


class Listener:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[PresenceChange] = asyncio.Queue(LISTENER_BACKLOG)
        self.overflowed = asyncio.Event()

    async def next(self) -> PresenceChange:
        return await self.queue.get()


class PresenceBus:
    def __init__(self) -> None:
        self._listeners: set[Listener] = set()

    def listen(self) -> Listener:
        listener = Listener()
        self._listeners.add(listener)
        return listener

    def leave(self, listener: Listener) -> None:
        self._listeners.discard(listener)

    def publish(self, change: PresenceChange) -> None:
        for listener in list(self._listeners):
            try:
                listener.queue.put_nowait(change)
            except asyncio.QueueFull:
                listener.overflowed.set()
                self._listeners.discard(listener)

    @property
    def listener_count(self) -> int:
        return len(self._listeners)
