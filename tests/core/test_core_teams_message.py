"""SPEC §4 rule 7: the UC presence text as the Teams status message (`teams_status_message`).

The hub sets the text the user chose on the UC side (a profile selected by hand, an
appointment's subject with its end as the expiry, Microphone Sync's service); it never
sets one over a message the user set in Teams, never clears one it did not set, and a
text of the hub's that the user removed or replaced is not set again while it lasts.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from presencebridge.core import rules, teams
from presencebridge.core.model import StatusMessageSync, TeamsSyncMode, UserState
from presencebridge.core.publication import publication
from presencebridge.core.rules import (
    AddAppointment,
    GroupContext,
    SelectProfile,
    TeamsMessageWritten,
    TeamsObserved,
)
from presencebridge.core.settings import GroupSettings
from tests.core.test_core_teams import AVAILABLE, OFF, TO, TP, at, play, presence, user
from tests.support.stored import through_store

UC = StatusMessageSync.UC_TO_TEAMS


def context(sync: StatusMessageSync = UC, mode: TeamsSyncMode = TP) -> GroupContext:
    return GroupContext((), GroupSettings(teams_sync_mode=mode, teams_status_message=sync))


def seen(requested: float, message: str | None) -> TeamsObserved:
    extras = teams.TeamsExtras(message, False)
    return TeamsObserved(AVAILABLE[0], AVAILABLE[1], None, at(requested), extras)


def plan(state: UserState, ctx: GroupContext, seconds: float) -> teams.WritePlan:
    now = at(seconds)
    want = teams.intent(
        state, presence(state, ctx, seconds), ctx.mode(state), False, now,
        ctx.settings.teams_status_message,
    )  # fmt: skip
    return teams.plan_writes(state, want, now)


def written(state: UserState, ctx: GroupContext, seconds: float) -> UserState:
    """The writer carried out the plan at `seconds` and Graph acknowledged it."""
    p = plan(state, ctx, seconds)
    event = TeamsMessageWritten(p.set_message, p.message_until)
    assert p.set_message is not None or p.clear_message
    return play(state, ctx, (seconds, event))


@pytest.mark.parametrize(
    ("sync", "mode", "expected"),
    [
        (UC, TP, "At my desk"),
        (StatusMessageSync.BOTH, TP, "At my desk"),
        (UC, TO, "At my desk"),
        (StatusMessageSync.OFF, TP, None),
        (UC, OFF, None),
    ],
)
def test_a_selected_profile_becomes_the_message_only_when_the_group_says_so(
    sync: StatusMessageSync, mode: TeamsSyncMode, expected: str | None
) -> None:
    ctx = context(sync, mode)
    state = play(user(), ctx, (1.0, SelectProfile("Desk")))
    p = plan(state, ctx, 1.0)
    assert p.set_message == expected
    assert p.message_until is None  # a selection has no known end
    assert not p.clear_message


def test_an_appointment_gives_its_subject_and_its_end_as_the_expiry() -> None:
    ctx = context()
    end = at(3600.0)
    add = AddAppointment("a1", "Urlaub bis 14.12.", at(0.0), end, "Lunch")
    state = play(user(), ctx, (1.0, add))
    p = plan(state, ctx, 1.0)
    assert (p.set_message, p.message_until) == ("Urlaub bis 14.12.", end)
    state = written(state, ctx, 2.0)
    assert not plan(state, ctx, 3.0)  # acknowledged: nothing more to send
    # Graph removes it at its expiry, the appointment ends then too: no clear is sent.
    assert not plan(play(state, ctx, (3601.0, rules.Tick())), ctx, 3601.0)


def test_the_hubs_own_message_read_back_is_no_users_message() -> None:
    ctx = context()
    state = play(user(), ctx, (1.0, SelectProfile("Desk")))
    state = written(state, ctx, 2.0)
    state = play(state, ctx, (5.0, seen(4.0, "At my desk")))
    assert not state.teams.seen.message_by_user
    assert not presence(state, ctx, 5.0).teams.message_held_by_user


def test_a_message_set_by_hand_is_never_overwritten_nor_cleared() -> None:
    ctx = context()
    state = play(user(), ctx, (1.0, seen(0.5, "Back at 3")))
    assert state.teams.seen.message_by_user
    state = play(state, ctx, (2.0, SelectProfile("Desk")))
    assert not plan(state, ctx, 2.0)  # the user's message stays
    assert presence(state, ctx, 2.0).teams.message_held_by_user
    # The user clears it: the UC text may go to Teams now.
    state = play(state, ctx, (4.0, seen(3.0, None)))
    assert plan(state, ctx, 4.0).set_message == "At my desk"


def test_a_message_replacing_the_hubs_is_the_users_and_the_hubs_text_is_declined() -> None:
    ctx = context()
    state = play(user(), ctx, (1.0, SelectProfile("Desk")))
    state = written(state, ctx, 2.0)
    state = play(state, ctx, (5.0, seen(4.0, "Back at 3")))
    assert state.teams.seen.message_by_user
    assert state.teams.hub_message.text is None  # not ours to clear any more
    assert not plan(state, ctx, 5.0)
    # The user clears their message: the hub's old text is not set again while it lasts...
    state = play(state, ctx, (7.0, seen(6.0, None)))
    assert not plan(state, ctx, 7.0)
    # ... a new UC choice is the user's new word.
    state = play(state, ctx, (8.0, SelectProfile("Lunch")))
    assert plan(state, ctx, 8.0).set_message == "At lunch"


def test_a_hubs_message_the_user_cleared_is_not_set_again() -> None:
    ctx = context()
    state = play(user(), ctx, (1.0, SelectProfile("Desk")))
    state = written(state, ctx, 2.0)
    state = play(state, ctx, (5.0, seen(4.0, None)))
    assert state.teams.hub_message.declined == "At my desk"
    assert not plan(state, ctx, 5.0)


def test_a_reading_from_before_the_write_does_not_take_the_hubs_message_away() -> None:
    ctx = context()
    state = play(user(), ctx, (1.0, SelectProfile("Desk")))
    state = written(state, ctx, 3.0)
    state = play(state, ctx, (4.0, seen(2.0, None)))  # requested before the write
    assert state.teams.hub_message.text == "At my desk"
    assert state.teams.hub_message.declined is None


def test_an_unsure_write_read_back_is_the_hubs_and_survives_the_store() -> None:
    ctx = context()
    state = play(user(), ctx, (1.0, SelectProfile("Desk")))
    assert state.teams.hub_message.unsure  # due, committed with the change that made it due
    assert state.teams.hub_message.pending == "At my desk"
    state = through_store(state)  # a crash before the answer
    state = play(state, ctx, (5.0, seen(4.0, "At my desk")))
    assert not state.teams.seen.message_by_user
    assert plan(state, ctx, 5.0).set_message == "At my desk"  # sent again to settle it


def test_changing_the_choice_replaces_and_going_back_to_nothing_clears_only_ours() -> None:
    ctx = context()
    state = play(user(), ctx, (1.0, SelectProfile("Desk")))
    state = written(state, ctx, 2.0)
    state = play(state, ctx, (3.0, SelectProfile("Lunch")))
    assert plan(state, ctx, 3.0).set_message == "At lunch"
    state = written(state, ctx, 3.0)
    # A late reading from before the change shows the old text: still the hub's.
    state = play(state, ctx, (3.5, seen(2.5, "At my desk")))
    assert not state.teams.seen.message_by_user
    state = play(state, ctx, (4.0, SelectProfile(None)))
    assert plan(state, ctx, 4.0).clear_message
    # The group switches the message sync off: the hub's message is taken back.
    state = play(user(), ctx, (1.0, SelectProfile("Desk")))
    state = written(state, ctx, 2.0)
    off = context(StatusMessageSync.OFF)
    assert plan(state, off, 3.0).clear_message


def test_what_came_from_teams_is_never_sent_back_as_a_message() -> None:
    ctx = context()
    dnd = TeamsObserved("DoNotDisturb", "DoNotDisturb", None, at(0.5), teams.TeamsExtras(None))
    state = play(user(), ctx, (1.0, dnd))  # the Teams DnD selects the first DnD profile
    assert state.selection is not None
    assert presence(state, ctx, 1.0).chosen_text is None
    assert not plan(state, ctx, 1.0).set_message


def test_with_both_the_users_teams_message_is_the_presence_note() -> None:
    ctx = context(StatusMessageSync.BOTH)
    state = play(user(), ctx, (1.0, SelectProfile("Desk")), (2.0, seen(1.5, "Back at 3")))
    shown = presence(state, ctx, 2.0)
    assert publication(shown, "en", note_from_teams=True).note == "Back at 3"
    assert publication(shown, "en", note_from_teams=False).note == "At my desk"
    # The hub's own message is only the UC text: the note stays the UC text.
    state = play(user(), ctx, (1.0, SelectProfile("Desk")))
    state = written(state, ctx, 2.0)
    state = play(state, ctx, (5.0, seen(4.0, "At my desk")))
    assert publication(presence(state, ctx, 5.0), "en", note_from_teams=True).note == "At my desk"


def test_the_expiry_is_a_deadline() -> None:
    ctx = context()
    add = AddAppointment("a1", "Dentist", at(0.0), at(600.0), "Lunch")
    state = written(play(user(), ctx, (1.0, add)), ctx, 2.0)
    deadline = rules.next_deadline(state, at(3.0))
    assert isinstance(deadline, datetime) and deadline <= at(600.0)
