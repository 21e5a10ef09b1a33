"""Telephony status from PBX call events.

A call only ever moves forward: ringing -> connected -> ended. An event that
would move it backwards (a duplicate, or one overtaken by a later event) is
ignored, so the state after a call's events does not depend on the order in
which they arrived. Ended calls are kept as tombstones for a day, so a late
`ringing` for a finished call cannot revive it; only the most recent ones are kept,
since every event re-reads and every save re-writes a user's calls, and an agent
ends hundreds a day while a late event trails its call by seconds.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from datetime import datetime, timedelta

from presencebridge.core.model import Call, CallState, Meeting, Telephony, TelephonySource

# Forward order of a call's life; the transition table is "higher rank wins".
CALL_RANK: dict[CallState, int] = {
    CallState.RINGING: 0,
    CallState.CONNECTED: 1,
    CallState.ENDED: 2,
}

# A PBX that loses an `ended` event must not leave a user on the phone for ever.
RINGING_TIMEOUT = timedelta(minutes=5)
CONNECTED_TIMEOUT = timedelta(hours=12)
TOMBSTONE_TTL = timedelta(hours=24)
MAX_TOMBSTONES = 8


def apply_call_event(
    calls: tuple[Call, ...], call_id: str, state: CallState, now: datetime
) -> tuple[Call, ...]:
    """The calls after one PBX event; unchanged if the event is stale or a duplicate.
    `calls` are in call id order, and stay so."""
    for position, current in enumerate(calls):
        if current.call_id == call_id:
            if CALL_RANK[state] <= CALL_RANK[current.state]:
                return calls
            updated = Call(call_id, state, now, current.first_seen)
            result = (*calls[:position], updated, *calls[position + 1 :])
            break
    else:
        position = bisect.bisect(calls, call_id, key=_call_id)
        result = (*calls[:position], Call(call_id, state, now, now), *calls[position:])
    # Only an ended call adds a tombstone.
    return _bounded(result) if state is CallState.ENDED else result


def _call_id(call: Call) -> str:
    return call.call_id


def _bounded(calls: tuple[Call, ...]) -> tuple[Call, ...]:
    """`calls` with at most MAX_TOMBSTONES ended ones: the most recently ended stay."""
    ended = [c for c in calls if c.state is CallState.ENDED]
    if len(ended) <= MAX_TOMBSTONES:
        return calls
    ended.sort(key=lambda c: (c.since, c.call_id), reverse=True)
    dropped = {c.call_id for c in ended[MAX_TOMBSTONES:]}
    return tuple(c for c in calls if c.call_id not in dropped)


def call_deadline(call: Call) -> datetime:
    """When time alone changes this call: a timeout, or the tombstone's removal."""
    return call.since + _LIFETIME[call.state]


_LIFETIME: dict[CallState, timedelta] = {
    CallState.RINGING: RINGING_TIMEOUT,
    CallState.CONNECTED: CONNECTED_TIMEOUT,
    CallState.ENDED: TOMBSTONE_TTL,
}


def expire_calls(calls: tuple[Call, ...], now: datetime) -> tuple[Call, ...]:
    """Timed-out calls become ended; old tombstones are dropped."""
    # Every event asks; nearly always nothing is due: compare with the oldest `since`
    # each state may have, worked out once, instead of a deadline per call.
    if not calls:
        return calls
    oldest = {state: now - lifetime for state, lifetime in _LIFETIME.items()}
    if all(call.since > oldest[call.state] for call in calls):
        return calls  # the same tuple, nothing copied
    result: list[Call] = []
    for call in calls:
        if call.since > oldest[call.state]:
            result.append(call)
        elif call.state is not CallState.ENDED:
            result.append(Call(call.call_id, CallState.ENDED, now, call.first_seen))
    return _bounded(tuple(result))


def telephony_status(
    calls: Iterable[Call], meetings: Iterable[Meeting], teams_call_since: datetime | None = None
) -> tuple[Telephony, TelephonySource | None, datetime | None]:
    """Telephony status, its source, and since when the user has been on the phone.

    A PBX call outranks a meeting, which outranks a Teams call: while the hub itself
    shows the user in a call in Teams, a Teams call cannot be told apart from it.
    """
    connected = [c.since for c in calls if c.state is CallState.CONNECTED]
    in_meeting = [m.joined_at for m in meetings if m.audio]
    if connected:
        # A PBX call and a meeting at once: the call is what the PBX connector acts on.
        since = min(connected + in_meeting)
        return Telephony.ON_THE_PHONE, TelephonySource.PBX, since
    if in_meeting:
        return Telephony.ON_THE_PHONE, TelephonySource.MEETING, min(in_meeting)
    if teams_call_since is not None:
        return Telephony.ON_THE_PHONE, TelephonySource.TEAMS, teams_call_since
    ringing = [c.since for c in calls if c.state is CallState.RINGING]
    if ringing:
        return Telephony.RINGING, TelephonySource.PBX, min(ringing)
    return Telephony.IDLE, None, None
