"""A user's state as JSON and back, so the store can keep it in one row."""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from typing import Any

from presencebridge.core.model import (
    BUILTIN_DND_PROFILE,
    Appointment,
    AppointmentOrigin,
    Call,
    CallState,
    Meeting,
    MicrophoneUse,
    Profile,
    ProfileSource,
    Selection,
    Status,
    TeamsState,
    TeamsSyncMode,
    User,
    UserState,
)

# Bump when the shape changes; `decode` must keep reading every older version.
STATE_VERSION = 2  # 2: the Teams half became a TeamsState


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
        "selection": _encode_selection(state.selection),
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
        "teams": _encode_teams(state.teams),
        "microphone": None
        if state.microphone is None
        else [state.microphone.process, state.microphone.service, _time(state.microphone.since)],
    }


def _encode_selection(selection: Selection | None) -> list[Any] | None:
    if selection is None:
        return None
    encoded: list[Any] = [selection.profile, _time(selection.at)]
    return [*encoded, True] if selection.builtin else encoded


def _decode_selection(value: list[Any] | None, own: tuple[Profile, ...]) -> Selection | None:
    if value is None:
        return None
    if len(value) > 2:
        return Selection(value[0], _req(value[1]), builtin=bool(value[2]))
    # Before the flag the built-in DnD was known by its name alone; a user's own profile
    # of that name (issue 19, defect 7) is the user's, anything else is the built-in.
    builtin = value[0] == BUILTIN_DND_PROFILE and all(p.name != value[0] for p in own)
    return Selection(value[0], _req(value[1]), builtin=builtin)


def _microphone(value: list[str] | None) -> MicrophoneUse | None:
    return None if value is None else MicrophoneUse(value[0], value[1], _req(value[2]))


def _encode_teams(t: TeamsState) -> dict[str, Any]:
    default = TeamsState()
    out: dict[str, Any] = {}
    for name in _TEAMS_FIELDS:
        value = getattr(t, name)
        if value == getattr(default, name):
            continue  # most users never touch most fields: keep the row small
        if isinstance(value, datetime):
            value = value.isoformat()
        elif isinstance(value, Selection):
            value = _encode_selection(value)
        elif isinstance(value, TeamsSyncMode):
            value = value.value
        out[name] = value
    return out


def _decode_teams(data: dict[str, Any]) -> TeamsState:
    values: dict[str, Any] = {}
    for name, value in data.items():
        if name not in _TEAMS_FIELDS:
            raise ValueError(f"unknown Teams state field {name!r}")
        if name in _TEAMS_TIMES and value is not None:
            value = datetime.fromisoformat(value)
        elif name == "dnd_replaced":
            value = _decode_selection(value, own=())
        elif name == "observed_mode" and value is not None:
            value = TeamsSyncMode(value)
        values[name] = value
    return TeamsState(**values)


_TEAMS_FIELDS = tuple(f.name for f in fields(TeamsState))
_TEAMS_TIMES = frozenset(
    f.name
    for f in fields(TeamsState)
    if "datetime" in str(f.type) and "Selection" not in str(f.type)
)


def decode(user: User, data: dict[str, Any]) -> UserState:
    version = data.get("v")
    if version not in (1, STATE_VERSION):
        raise ValueError(f"unknown user state version {version!r}")
    teams = data["teams"]
    profiles = tuple(
        Profile(n, Status(s), t, c, f, ProfileSource.OWN) for n, s, t, c, f in data["profiles"]
    )
    return UserState(
        user=user,
        profiles=profiles,
        selection=_decode_selection(data["selection"], profiles),
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
        # Version 1 kept only what was seen of Teams, as a list.
        teams=_decode_teams(teams)
        if version == STATE_VERSION
        else TeamsState(teams[0], teams[1], held_by_user=bool(teams[2])),
        microphone=_microphone(data.get("microphone")),
    )
