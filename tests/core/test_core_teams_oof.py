"""SPEC §3 rule 6: Teams out of office on the UC side, and the Teams status message read.

While Teams shows the user out of office (`outOfOfficeSettings.isOutOfOffice`, set by
Outlook's automatic replies or an OOF calendar event) and the group follows it
(`teams_out_of_office`, in telephony_and_presence), an "Out of office (MS Teams)"
appointment selects the user's first away profile, else a built-in one; it goes when
Teams no longer shows it, and it never outlives the last reading that showed it by more
than `teams.OOF_HOLD`.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from presencebridge.core import rules, teams
from presencebridge.core.effective import BUILTIN_OOF, TEAMS_OOF_APPOINTMENT
from presencebridge.core.model import Appointment, Profile, Status, TeamsSyncMode, UserState
from presencebridge.core.rules import GroupContext, SetOwnMode, TeamsObserved, Tick
from presencebridge.core.settings import GroupSettings
from presencebridge.core.texts import Text
from tests.core.test_core_teams import (
    AVAILABLE,
    DESK,
    FOCUS,
    IN_A_CALL,
    LUNCH,
    OFF,
    TO,
    TP,
    at,
    play,
    presence,
    user,
)
from tests.support.stored import through_store

HOUR = 3600.0
HOLD = teams.OOF_HOLD.total_seconds()


def context(mode: TeamsSyncMode, follow: bool = True) -> GroupContext:
    return GroupContext((), GroupSettings(teams_sync_mode=mode, teams_out_of_office=follow))


def seen(
    reading: tuple[str, str], requested: float, oof: bool, message: str | None = None
) -> TeamsObserved:
    extras = teams.TeamsExtras(message, oof)
    return TeamsObserved(reading[0], reading[1], None, at(requested), extras)


def oof(state: UserState) -> Appointment | None:
    return next((a for a in state.appointments if a.id == TEAMS_OOF_APPOINTMENT), None)


@dataclass(frozen=True)
class Row:
    label: str
    mode: TeamsSyncMode
    follow: bool
    profiles: tuple[Profile, ...]
    shown: tuple[Status, str] | None  # status and profile on the UC side; None: no OOF


ROWS = [
    Row("first away profile", TP, True, (FOCUS, DESK, LUNCH), (Status.AWAY, "Lunch")),
    Row("no away profile: built-in", TP, True, (FOCUS, DESK), (Status.AWAY, BUILTIN_OOF.name)),
    Row("switched off in the group", TP, False, (LUNCH,), None),
    Row("telephony only: not followed", TO, True, (LUNCH,), None),
    Row("sync off: not followed", OFF, True, (LUNCH,), None),
]


@pytest.mark.parametrize("row", ROWS, ids=[r.label for r in ROWS])
def test_out_of_office_in_teams_as_the_uc_side_shows_it(row: Row) -> None:
    group = context(row.mode, row.follow)
    state = play(user(*row.profiles), group, (0, seen(AVAILABLE, 0, oof=True)))
    shown = presence(state, group, 1)
    if row.shown is None:
        assert oof(state) is None
        assert shown.status is Status.AVAILABLE
        return
    appointment = oof(state)
    assert appointment is not None and appointment.subject == Text.OUT_OF_OFFICE_TEAMS
    assert (shown.status, shown.profile) == row.shown
    assert shown.text == Text.OUT_OF_OFFICE_TEAMS
    assert shown.teams.out_of_office
    # Teams no longer shows it: gone.
    state = play(state, group, (60, seen(AVAILABLE, 60, oof=False)))
    assert oof(state) is None
    assert presence(state, group, 61).status is Status.AVAILABLE


def test_a_call_on_either_side_still_shows_over_out_of_office() -> None:
    group = context(TP)
    state = play(user(LUNCH), group, (0, seen(IN_A_CALL, 0, oof=True)))
    shown = presence(state, group, 1)
    assert oof(state) is not None
    assert shown.status is Status.BUSY and shown.text == Text.ON_THE_PHONE_TEAMS


def test_it_never_outlives_the_last_reading_that_showed_it_by_more_than_the_hold() -> None:
    group = context(TP)
    state = play(user(LUNCH), group, (0, seen(AVAILABLE, 0, oof=True)))
    first = oof(state)
    assert first is not None and first.end == at(HOLD)
    # Readings while it is young change nothing (the poller does not even pass them on).
    assert not teams.oof_renewal_due(state, at(HOUR))
    # Past half its hold a reading that still shows it renews it.
    later = HOLD / 2 + 1
    assert teams.oof_renewal_due(state, at(later))
    state = play(state, group, (later, seen(AVAILABLE, later, oof=True)))
    renewed = oof(state)
    assert renewed is not None and renewed.end == at(later + HOLD)
    assert renewed.start == first.start  # the same absence, not a new one
    # No reading comes any more (Graph down): it ends at its end, not later.
    state = play(state, group, (later + HOLD + 1, Tick()))
    assert presence(state, group, later + HOLD + 1).status is Status.AVAILABLE


def test_switching_the_mode_off_takes_it_away_at_once() -> None:
    group = context(TP)
    state = play(user(LUNCH), group, (0, seen(AVAILABLE, 0, oof=True)))
    assert oof(state) is not None
    state = play(state, group, (10, SetOwnMode(TeamsSyncMode.TELEPHONY_ONLY)))
    assert oof(state) is None


def test_a_reading_without_extras_keeps_what_was_seen() -> None:
    """The agent's client-side readings know no OOF or message: they change neither."""
    group = context(TP)
    state = play(user(LUNCH), group, (0, seen(AVAILABLE, 0, oof=True, message="Back on Monday")))
    plain = TeamsObserved("Away", "Away", None, at(30))
    state = play(state, group, (30, plain))
    assert oof(state) is not None
    assert state.teams.seen.status_message == "Back on Monday"


def test_the_status_message_is_read_and_shown_but_changes_no_status() -> None:
    group = context(TP)
    state = play(user(DESK), group, (0, seen(AVAILABLE, 0, oof=False, message="In Berlin")))
    shown = presence(state, group, 1)
    assert shown.teams.status_message == "In Berlin"
    assert shown.status is Status.AVAILABLE
    # A changed message alone is worth passing on; the same one again is not.
    extras = teams.TeamsExtras("In Hamburg", False)
    assert teams.needs_observation(state.teams, *AVAILABLE, TP, extras)
    same = teams.TeamsExtras("In Berlin", False)
    assert not teams.needs_observation(state.teams, *AVAILABLE, TP, same)


def test_the_state_with_out_of_office_survives_a_restart() -> None:
    group = context(TP)
    state = play(user(LUNCH), group, (0, seen(AVAILABLE, 0, oof=True, message="Urlaub")))
    again = through_store(state)
    assert again == state
    assert rules.apply(again, Tick(), group, at(5)).presence.status is Status.AWAY
