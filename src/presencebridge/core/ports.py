"""The ports: what the service layer needs of the outside world, as types only.

Adapters implement these (`adapters/graph` for Teams); the service layer and its
tests depend on them and never on an adapter. No I/O here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Reading:
    """What Graph showed for one Teams user."""

    teams_user_id: str
    availability: str
    activity: str
    sequence: str | None


class TeamsPresenceWrites(Protocol):
    """The four presence writes the Teams sync makes, for one Teams user each.

    `duration` None means Graph's default expiry. A client acting for the signed-in
    user only (`/me`) ignores `teams_user_id`.
    """

    async def set_session(self, teams_user_id: str, availability: str, activity: str) -> None: ...

    async def clear_session(self, teams_user_id: str) -> None: ...

    async def set_preferred_dnd(self, teams_user_id: str, duration: timedelta | None) -> None: ...

    async def clear_preferred(self, teams_user_id: str) -> None: ...


class TeamsPresenceApi(TeamsPresenceWrites, Protocol):
    """What the server's Teams sync needs of Graph: reads in batches, and the writes."""

    max_ids_per_read: int

    async def read(self, teams_user_ids: Sequence[str]) -> Sequence[Reading]: ...
