"""A user's state as JSON and back, so the store can keep it in one row."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from presencebridge.core.model import (
    Appointment,
    AppointmentOrigin,
    Call,
    CallState,
    Meeting,
    Profile,
    ProfileSource,
    Selection,
    Status,
    TeamsSyncMode,
    TeamsView,
    User,
    UserState,
)

# Bump when the shape changes; `decode` must keep reading every older version.
STATE_VERSION = 1


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _parse(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _req(value: str) -> datetime:
    return datetime.fromisoformat(value)


def encode(state: UserState) -> dict[str, Any]:
    """The parts of the state that are not directory data (those have columns)."""
    return {
        "v": STATE_VERSION,
        "profiles": [
            [p.name, p.status.value, p.text, p.color, p.call_forwarding] for p in state.profiles
        ],
        "selection": None
        if state.selection is None
        else [state.selection.profile, _time(state.selection.at)],
        "appointments": [
            [
                a.id,
                a.subject,
                a.color,
                _time(a.start),
                _time(a.end),
                a.profile,
                a.origin.value,
                _time(a.created_at),
                _time(a.hard_end),
            ]
            for a in state.appointments
        ],
        "calls": [
            [c.call_id, c.state.value, _time(c.since), _time(c.first_seen)] for c in state.calls
        ],
        "meetings": [
            [m.meeting_id, _time(m.joined_at), m.screen_sharing, m.audio] for m in state.meetings
        ],
        "own_mode": None if state.own_mode is None else state.own_mode.value,
        "teams": [
            state.teams.availability,
            state.teams.activity,
            state.teams.held_by_user,
            _time(state.teams.last_sync),
        ],
    }


def decode(user: User, data: dict[str, Any]) -> UserState:
    if data.get("v") != STATE_VERSION:
        raise ValueError(f"unknown user state version {data.get('v')!r}")
    selection = data["selection"]
    teams = data["teams"]
    return UserState(
        user=user,
        profiles=tuple(
            Profile(n, Status(s), t, c, f, ProfileSource.OWN) for n, s, t, c, f in data["profiles"]
        ),
        selection=None if selection is None else Selection(selection[0], _req(selection[1])),
        appointments=tuple(
            Appointment(
                i,
                subj,
                col,
                _req(st),
                _req(en),
                prof,
                AppointmentOrigin(orig),
                _req(cr),
                _parse(he),
            )
            for i, subj, col, st, en, prof, orig, cr, he in data["appointments"]
        ),
        calls=tuple(
            Call(i, CallState(s), _req(since), _req(first)) for i, s, since, first in data["calls"]
        ),
        meetings=tuple(
            Meeting(i, _req(j), bool(sh), bool(au)) for i, j, sh, au in data["meetings"]
        ),
        own_mode=None if data["own_mode"] is None else TeamsSyncMode(data["own_mode"]),
        teams=TeamsView(teams[0], teams[1], bool(teams[2]), _parse(teams[3])),
    )
