"""Stored user states of every earlier shape are read into today's (core/codec.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from presencebridge.core import codec
from presencebridge.core.model import (
    FollowedCall,
    FollowedDnd,
    HubDnd,
    HubSession,
    Selection,
    TeamsReading,
    TeamsState,
    TeamsSyncMode,
    User,
)
from tests.support.stored import through_store

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
USER = User("alice", "Alice Example", "hamburg", "00000000-0000-0000-0000-0000000a11ce")


def stored(
    version: int, teams: object, selection: object = None, profiles: object = ()
) -> dict[str, object]:
    return {
        "v": version,
        "profiles": profiles,
        "selection": selection,
        "appointments": [],
        "calls": [],
        "meetings": [],
        "own_mode": None,
        "teams": teams,
    }


def test_a_version_2_teams_half_is_read_into_its_channels() -> None:
    """Version 2 kept the Teams half flat (before issue 11); every field has a home."""
    flat = {
        "availability": "Busy",
        "activity": "InACall",
        "sequence": "7",
        "observed_at": T0.isoformat(),
        "observed_mode": "telephony_only",
        "held_by_user": True,
        "session": "InACall",
        "session_written_at": T0.isoformat(),
        "session_released_at": T0.isoformat(),
        "session_unsure": True,
        "preferred_dnd_until": (T0 + timedelta(days=1)).isoformat(),
        "preferred_written_at": T0.isoformat(),
        "preferred_default_expiry": True,
        "preferred_released_at": T0.isoformat(),
        "preferred_unsure": True,
        "dnd_lapsed": True,
        "dnd_overridden": True,
        "call_outlived": True,
        "dnd_selected_at": T0.isoformat(),
        "dnd_replaced": ["Lunch", T0.isoformat()],
        "dnd_outlived": True,
    }
    state = codec.decode(USER, stored(2, flat))
    assert state.teams == TeamsState(
        seen=TeamsReading("Busy", "InACall", "7", T0, TeamsSyncMode.TELEPHONY_ONLY, True),
        hub_session=HubSession("InACall", T0, T0, True),
        hub_dnd=HubDnd(T0 + timedelta(days=1), T0, True, T0, True, True, True),
        call=FollowedCall(outlived=True),
        dnd=FollowedDnd(T0, Selection("Lunch", T0), True),
    )
    # Written back in today's shape, it reads the same.
    assert through_store(state) == state


def test_a_version_1_reading_is_kept() -> None:
    state = codec.decode(USER, stored(1, ["Away", "Away", True]))
    assert state.teams == TeamsState(seen=TeamsReading("Away", "Away", held_by_user=True))


@pytest.mark.parametrize(
    ("profiles", "builtin"),
    [([], True), ([["Nicht stören", "away", "Weg", "#999999", None]], False)],
    ids=["no own profile of that name", "an own profile of that name"],
)
def test_a_stored_selection_of_the_built_in_dnd_gets_its_mark(
    profiles: list[list[object]], builtin: bool
) -> None:
    state = codec.decode(USER, stored(2, {}, ["Nicht stören", T0.isoformat()], profiles))
    assert state.selection == Selection("Nicht stören", T0, builtin=builtin)


def test_unknown_teams_fields_are_refused_not_dropped() -> None:
    with pytest.raises(ValueError, match="unknown"):
        codec.decode(USER, stored(2, {"sesion": "InACall"}))
    with pytest.raises(ValueError, match="unknown"):
        codec.decode(USER, stored(codec.STATE_VERSION, {"hub_session": {"activty": "x"}}))
