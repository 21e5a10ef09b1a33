"""The one Graph write path: a `WritePlan` carried out through the presence port.

The rules (`core/teams.py`) plan the writes; this sends them in order, each through
`TeamsPresenceWrites` (the server's `GraphClient` or the agent's `MeGraph`, both with
the same retry policy and per-user write fence), and hands the acknowledgement of
each one that Graph accepted to `acknowledge`, which makes it part of the user's
state (the hub) or reports it to the hub (the agent). A write that fails raises;
nothing after it is sent and nothing unacknowledged is recorded.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from presencebridge.core import teams
from presencebridge.core.ports import TeamsPresenceWrites
from presencebridge.core.rules import (
    TeamsMessageWritten,
    TeamsPreferredWritten,
    TeamsSessionWritten,
)

Acknowledgement = TeamsSessionWritten | TeamsPreferredWritten | TeamsMessageWritten
Acknowledge = Callable[[Acknowledgement], Awaitable[None]]
WriteKind = Literal[
    "set_session",
    "clear_session",
    "set_preferred_dnd",
    "clear_preferred",
    "set_message",
    "clear_message",
]


@dataclass(frozen=True, slots=True)
class Write:
    """One Graph write and what its success tells the rules."""

    kind: WriteKind
    acknowledgement: Acknowledgement
    activity: str | None = None  # set_session
    duration: timedelta | None = None  # set_preferred_dnd; None: Graph's default expiry
    message: str | None = None  # set_message
    until: datetime | None = None  # set_message; None: no expiry


def planned_writes(plan: teams.WritePlan, now: datetime) -> list[Write]:
    """The plan as Graph writes, in the order they are sent."""
    writes: list[Write] = []
    if plan.set_session is not None:
        acknowledged = TeamsSessionWritten(plan.set_session)
        writes.append(Write("set_session", acknowledged, activity=plan.set_session))
    elif plan.clear_session:
        writes.append(Write("clear_session", TeamsSessionWritten(None)))
    if plan.set_preferred_dnd:
        duration = plan.preferred_duration
        until = now + (duration or teams.PREFERRED_DND_DEFAULT)
        acknowledged_dnd = TeamsPreferredWritten(until, default_expiry=duration is None)
        writes.append(Write("set_preferred_dnd", acknowledged_dnd, duration=duration))
    elif plan.clear_preferred:
        writes.append(Write("clear_preferred", TeamsPreferredWritten(None)))
    if plan.set_message is not None:
        acknowledged_message = TeamsMessageWritten(plan.set_message, plan.message_until)
        writes.append(
            Write(
                "set_message",
                acknowledged_message,
                message=plan.set_message,
                until=plan.message_until,
            )
        )
    elif plan.clear_message:
        writes.append(Write("clear_message", TeamsMessageWritten(None)))
    return writes


async def send(api: TeamsPresenceWrites, teams_user_id: str, write: Write) -> None:
    if write.kind == "set_session":
        assert write.activity is not None
        await api.set_session(teams_user_id, teams.HUB_SESSION[0], write.activity)
    elif write.kind == "clear_session":
        await api.clear_session(teams_user_id)
    elif write.kind == "set_preferred_dnd":
        await api.set_preferred_dnd(teams_user_id, write.duration)
    elif write.kind == "clear_preferred":
        await api.clear_preferred(teams_user_id)
    elif write.kind == "set_message":
        assert write.message is not None
        await api.set_status_message(teams_user_id, write.message, write.until)
    else:
        await api.clear_status_message(teams_user_id)


async def execute_plan(
    api: TeamsPresenceWrites,
    teams_user_id: str,
    plan: teams.WritePlan,
    now: datetime,
    acknowledge: Acknowledge,
) -> None:
    """Send the planned writes; each acknowledged one is handed to `acknowledge`."""
    for write in planned_writes(plan, now):
        await send(api, teams_user_id, write)
        await acknowledge(write.acknowledgement)
