"""A user's state as JSON and back, so the store can keep it in one row.

`encode` leaves times as `datetime` objects and states as enum members: the store's JSON
serializer (orjson) writes them in C as ISO 8601 text and as their values, which `decode`
reads back. Formatting the times here cost more than the rest of a save at 10,000 users,
whose calls' times all differ.
"""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from typing import Any

from presencebridge.core.model import (
    BUILTIN_DND_PROFILE,
    NO_TEAMS,
    Appointment,
    AppointmentOrigin,
    Call,
    CallState,
    FollowedCall,
    FollowedDnd,
    HubDnd,
    HubMessage,
    HubSession,
    Meeting,
    MicrophoneUse,
    Profile,
    ProfileSource,
    Selection,
    Status,
    TeamsReading,
    TeamsState,
    TeamsSyncMode,
    User,
    UserState,
)

# Bump when the shape changes; `decode` must keep reading every older version.
# 2: the Teams half became a TeamsState; 3: one object per channel in it.
STATE_VERSION = 3


def _parse(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _req(value: str) -> datetime:
    return datetime.fromisoformat(value)


def encode(state: UserState) -> dict[str, Any]:
    """The parts of the state that are not directory data (those have columns)."""
    return {
        "v": STATE_VERSION,
        "profiles": [
            [p.name, p.status, p.text, p.color, p.call_forwarding] for p in state.profiles
        ],
        "selection": _encode_selection(state.selection),
        "appointments": [
            [
                a.id,
                a.subject,
                a.color,
                a.start,
                a.end,
                a.profile,
                a.origin,
                a.created_at,
                a.hard_end,
            ]
            for a in state.appointments
        ],
        "calls": [[c.call_id, c.state, c.since, c.first_seen] for c in state.calls],
        "meetings": [
            [m.meeting_id, m.joined_at, m.screen_sharing, m.audio] for m in state.meetings
        ],
        "own_mode": state.own_mode,
        "teams": _encode_teams(state.teams),
        "microphone": None
        if state.microphone is None
        else [state.microphone.process, state.microphone.service, state.microphone.since],
    }


def _encode_selection(selection: Selection | None) -> list[Any] | None:
    if selection is None:
        return None
    encoded: list[Any] = [selection.profile, selection.at]
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


# The Teams half, one object per channel; a field at its default is left out (most
# users never touch most fields: the row stays small).
_CHANNELS: dict[str, type[Any]] = {
    "seen": TeamsReading,
    "hub_session": HubSession,
    "hub_dnd": HubDnd,
    "hub_message": HubMessage,
    "call": FollowedCall,
    "dnd": FollowedDnd,
}
# Version 2 kept the Teams half flat; where each of its fields lives now.
_V2_FIELDS: dict[str, tuple[str, str]] = {
    "availability": ("seen", "availability"),
    "activity": ("seen", "activity"),
    "sequence": ("seen", "sequence"),
    "observed_at": ("seen", "requested_at"),
    "observed_mode": ("seen", "mode"),
    "held_by_user": ("seen", "held_by_user"),
    "session": ("hub_session", "activity"),
    "session_written_at": ("hub_session", "written_at"),
    "session_released_at": ("hub_session", "released_at"),
    "session_unsure": ("hub_session", "unsure"),
    "preferred_dnd_until": ("hub_dnd", "until"),
    "preferred_written_at": ("hub_dnd", "written_at"),
    "preferred_default_expiry": ("hub_dnd", "default_expiry"),
    "preferred_released_at": ("hub_dnd", "released_at"),
    "preferred_unsure": ("hub_dnd", "unsure"),
    "dnd_lapsed": ("hub_dnd", "lapsed"),
    "dnd_overridden": ("hub_dnd", "overridden"),
    "call_outlived": ("call", "outlived"),
    "dnd_selected_at": ("dnd", "selected_at"),
    "dnd_replaced": ("dnd", "replaced"),
    "dnd_outlived": ("dnd", "outlived"),
}


def _encode_value(value: Any) -> Any:
    if isinstance(value, Selection):
        return _encode_selection(value)
    if isinstance(value, TeamsSyncMode):
        return value.value
    return value


def _decode_value(kind: str, value: Any) -> Any:
    if value is None:
        return None
    if "Selection" in kind:
        return _decode_selection(value, own=())
    if "datetime" in kind:
        return datetime.fromisoformat(value)
    if "TeamsSyncMode" in kind:
        return TeamsSyncMode(value)
    return value


# Per channel: its default (the shared value an untouched channel is) and its fields with
# their defaults, worked out once (every commit encodes every changed user's Teams half).
_CHANNEL_DEFAULTS: dict[str, tuple[Any, tuple[tuple[str, Any], ...]]] = {
    name: (getattr(NO_TEAMS, name), tuple((f.name, getattr(kind(), f.name)) for f in fields(kind)))
    for name, kind in _CHANNELS.items()
}


def _encode_teams(t: TeamsState) -> dict[str, Any]:
    if t is NO_TEAMS:  # a user without Teams, or before anything happened on it
        return {}
    out: dict[str, Any] = {}
    for name, (default, defaults) in _CHANNEL_DEFAULTS.items():
        channel = getattr(t, name)
        if channel is default or channel == default:  # most users, most channels
            continue
        values = {
            field: _encode_value(value)
            for field, field_default in defaults
            if (value := getattr(channel, field)) != field_default
        }
        if values:
            out[name] = values
    return out


def _decode_teams(data: dict[str, Any]) -> TeamsState:
    channels: dict[str, Any] = {}
    for name, values in data.items():
        kind = _CHANNELS.get(name)
        if kind is None:
            raise ValueError(f"unknown Teams state channel {name!r}")
        types = {f.name: str(f.type) for f in fields(kind)}
        unknown = set(values) - set(types)
        if unknown:
            raise ValueError(f"unknown fields of Teams state channel {name!r}: {unknown}")
        channels[name] = kind(**{k: _decode_value(types[k], v) for k, v in values.items()})
    # Most users' Teams half is untouched: the shared value, not a copy per user.
    return TeamsState(**channels) if channels else NO_TEAMS


def _migrate_teams_v2(data: dict[str, Any]) -> dict[str, Any]:
    nested: dict[str, dict[str, Any]] = {}
    for old, value in data.items():
        if old not in _V2_FIELDS:
            raise ValueError(f"unknown Teams state field {old!r}")
        channel, name = _V2_FIELDS[old]
        nested.setdefault(channel, {})[name] = value
    return nested


def _decode_teams_any(version: int, teams: Any) -> TeamsState:
    if version == STATE_VERSION:
        return _decode_teams(teams)
    if version == 2:
        return _decode_teams(_migrate_teams_v2(teams))
    # Version 1 kept only what was seen of Teams, as a list.
    seen = TeamsReading(teams[0], teams[1], held_by_user=bool(teams[2]))
    return TeamsState(seen=seen)


def decode(user: User, data: dict[str, Any]) -> UserState:
    version = data.get("v")
    if version not in (1, 2, STATE_VERSION):
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
        teams=_decode_teams_any(version, teams),
        microphone=_microphone(data.get("microphone")),
    )
