"""The Teams sync rules of SPEC §3 (Teams -> UC) and §4 (UC -> Teams), pure.

Two directions, one state:

* `observe` takes what Graph shows and turns it into UC changes (the seed's table):
  a call activity becomes an "On the phone (MS Teams)" appointment, Presenting or
  a DnD set in Teams selects the first DnD profile. What the hub itself asserted is
  recognised and ignored (no echo loops).
* `intent` says what the hub wants Teams to show; the writer compares it with what
  the hub has asserted (`TeamsState`) and sends only the difference.

Graph values are open strings, matched case-sensitively.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import Enum

from presencebridge.core.effective import (
    BUILTIN_DND,
    TEAMS_CALL_APPOINTMENT,
    TEAMS_OOF_APPOINTMENT,
    EffectivePresence,
    my_profiles,
    teams_call_profile,
    teams_oof_profile,
)
from presencebridge.core.model import (
    NO_FOLLOWED_CALL,
    NO_FOLLOWED_DND,
    NO_READING,
    NO_TEAMS,
    SYNC_HARD_END,
    Appointment,
    AppointmentOrigin,
    FollowedCall,
    FollowedDnd,
    HubDnd,
    HubMessage,
    HubSession,
    Profile,
    ProfileTemplate,
    Selection,
    Status,
    StatusMessageSync,
    TeamsReading,
    TeamsState,
    TeamsSyncMode,
    Telephony,
    TelephonySource,
    UserState,
    profile_key,
)
from presencebridge.core.texts import Text

# Teams activities that mean "in a call" (SPEC §3 rule 1). Anything else is no call.
CALL_ACTIVITIES = frozenset({"InACall", "InAConferenceCall"})
PRESENTING = "Presenting"
DND_AVAILABILITY = "DoNotDisturb"
# Activities Graph is known to send; others are logged once by the service.
KNOWN_ACTIVITIES = frozenset(
    {
        "Available",
        "AvailableIdle",
        "AvailableInactive",
        "Away",
        "BeRightBack",
        "Busy",
        "BusyIdle",
        "DoNotDisturb",
        "InACall",
        "InAConferenceCall",
        "InAMeeting",
        "Inactive",
        "Offline",
        "OffWork",
        "OutOfOffice",
        "Presenting",
        "PresenceUnknown",
        "UrgentInterruptionsOnly",
    }
)

# Teams shows these when the user has no session at all; no status was set by hand
# ("Appear offline" set by hand is Offline/OffWork, and does count).
SIGNED_OUT = frozenset({("Offline", "Offline"), ("PresenceUnknown", "PresenceUnknown")})
# The hub's own session: what it asserts while the user is on the phone on the UC side.
HUB_SESSION = ("Busy", "InACall")
HUB_DND = ("DoNotDisturb", "DoNotDisturb")
# Graph's shortest session lifetime; the hub re-sends well before it runs out.
SESSION_LIFETIME = timedelta(minutes=5)
SESSION_REFRESH = timedelta(minutes=2, seconds=30)
# Graph's default expiry of a DnD preferred presence (GRAPH.md).
PREFERRED_DND_DEFAULT = timedelta(days=1)
# Reads that started this soon after the hub cleared its session may still show it.
ECHO_GRACE = timedelta(seconds=1)
# Teams shows at most this much of a status message; the hub sends no more of a UC text.
MAX_STATUS_MESSAGE = 280


@dataclass(frozen=True, slots=True)
class Intent:
    """What the hub wants Teams to show for this user."""

    session: str | None = None  # activity of the hub's session, or none
    preferred_dnd: bool = False
    preferred_dnd_until: datetime | None = None  # end of the UC DnD if known
    message: str | None = None  # the status message the hub wants in Teams, or none
    message_until: datetime | None = None  # its expiry: the end of what chose it, if known
    # The user's own message shows in Teams: the hub neither sets nor clears one.
    message_hands_off: bool = False


def syncs_dnd(mode: TeamsSyncMode) -> bool:
    return mode is TeamsSyncMode.TELEPHONY_AND_PRESENCE


def teams_call(state: UserState) -> Appointment | None:
    return next((a for a in state.appointments if a.id == TEAMS_CALL_APPOINTMENT), None)


class Seen(Enum):
    """What one reading tells about one thing the sync follows in Teams."""

    YES = "yes"  # Teams shows it
    NO = "no"  # Teams shows something that rules it out
    HIDDEN = "hidden"  # it may be there underneath: the hub's own write, or a DnD set
    # by hand, covers it (Graph shows one aggregated presence)


class Followed(Enum):
    """Where the sync stands with one thing it follows from Teams to the UC side."""

    NONE = "none"  # nothing taken up
    FOLLOWING = "following"  # the Teams call appointment is there / the Teams DnD selected
    OUTLIVED = "outlived"  # ended by the 12-hour hard end; not taken up again while it lasts


class Step(Enum):
    KEEP = "keep"
    TAKE_UP = "take up"  # create the appointment / select the first DnD profile
    LET_GO = "let go"  # delete the appointment / restore the choice from before
    FORGET_OUTLIVED = "forget outlived"  # it ended in Teams; the next one counts again


# SPEC §3 rules 1, 3, 4 and 5 for both things the sync follows, the Teams call and the
# Teams DnD. The answer to "what does the hub believe while its own write hides the
# user's Teams state?" is the HIDDEN column: what it believed before. "I cannot tell"
# is never taken for "it ended"; the 12-hour hard end bounds what is kept this way.
FOLLOW: dict[tuple[Followed, Seen], Step] = {
    (Followed.NONE, Seen.YES): Step.TAKE_UP,
    (Followed.NONE, Seen.NO): Step.KEEP,
    (Followed.NONE, Seen.HIDDEN): Step.KEEP,
    (Followed.FOLLOWING, Seen.YES): Step.KEEP,
    (Followed.FOLLOWING, Seen.NO): Step.LET_GO,
    (Followed.FOLLOWING, Seen.HIDDEN): Step.KEEP,
    (Followed.OUTLIVED, Seen.YES): Step.KEEP,
    (Followed.OUTLIVED, Seen.NO): Step.FORGET_OUTLIVED,
    (Followed.OUTLIVED, Seen.HIDDEN): Step.KEEP,
}


def seen_call(teams: TeamsState, availability: str, activity: str, requested_at: datetime) -> Seen:
    """The Teams call in one reading (SPEC §3 rules 1 and 3, §4 rule 2).

    | Teams shows                                   | the user's Teams call |
    |-----------------------------------------------|-----------------------|
    | the hub's own session activity, while it may  | HIDDEN                |
    |   be in Graph (`hub_session_may_show`)        |                       |
    | any other call activity (InACall, ...)        | YES                   |
    | DoNotDisturb/DoNotDisturb: a preferred        | HIDDEN                |
    |   presence, which beats every session         |                       |
    | anything else                                 | NO                    |
    """
    if activity in CALL_ACTIVITIES:
        if hub_session_may_show(teams.hub_session, activity, requested_at):
            return Seen.HIDDEN
        return Seen.YES
    if (availability, activity) == HUB_DND:
        return Seen.HIDDEN
    return Seen.NO


def seen_dnd(teams: TeamsState, availability: str, activity: str, requested_at: datetime) -> Seen:
    """The user's DnD in one reading (SPEC §3 rule 4; mode telephony_and_presence).

    | Teams shows                                   | the user's Teams DnD  |
    |-----------------------------------------------|-----------------------|
    | DoNotDisturb/DoNotDisturb while the hub's own | HIDDEN                |
    |   DnD may be in Graph (`hub_dnd_may_show`)    |                       |
    | any other DoNotDisturb, or Presenting with    | YES                   |
    |   any availability (screen sharing)           |                       |
    | anything else                                 | NO                    |
    """
    if (availability, activity) == HUB_DND and hub_dnd_may_show(teams.hub_dnd, requested_at):
        return Seen.HIDDEN
    if availability == DND_AVAILABILITY or activity == PRESENTING:
        return Seen.YES
    return Seen.NO


# ---- When may a reading show the hub's own write? All timing special cases live here.
#
# A reading is requested at `requested_at` and answered some time later; the hub handles
# it after everything it handled before. So it may show a write of the hub's if that
# write was in Graph at any moment between the request and now:
# * a write that is acknowledged and not yet cleared: always (even a reading requested
#   before the write may be answered after Graph applied it, under any latency);
# * a write that is due but not acknowledged (`unsure`, kept through a crash): it may
#   be out there;
# * a write cleared at `released_at`: for readings requested before it, plus
#   ECHO_GRACE for Graph's own propagation.


def hub_session_may_show(session: HubSession, activity: str, requested_at: datetime) -> bool:
    if session.activity == activity and session.written_at is not None:
        return True
    if activity != HUB_SESSION[1]:
        return False
    if session.unsure:
        return True
    released = session.released_at
    return released is not None and requested_at < released + ECHO_GRACE


def hub_dnd_may_show(dnd: HubDnd, requested_at: datetime) -> bool:
    if dnd.until is not None or dnd.unsure:
        return True
    released = dnd.released_at
    return released is not None and requested_at < released + ECHO_GRACE


def observe(
    state: UserState,
    availability: str,
    activity: str,
    sequence: str | None,
    requested_at: datetime,
    mode: TeamsSyncMode,
    templates: tuple[ProfileTemplate, ...],
    now: datetime,
    extras: TeamsExtras | None = None,
    follow_oof: bool = False,
) -> UserState:
    """Apply what Graph showed for the user (read at `requested_at`). `extras`: the status
    message and out-of-office state, when the reading had them (the agent's has not)."""
    before = state.teams
    message, oof = before.seen.status_message, before.seen.out_of_office
    if extras is not None:
        message, oof = extras.status_message, extras.out_of_office
    reading = TeamsReading(
        availability, activity, sequence, requested_at, mode, status_message=message,
        out_of_office=oof,
    )  # fmt: skip
    if mode is TeamsSyncMode.OFF:
        return replace(state, teams=replace(before, seen=reading))
    reading = replace(reading, held_by_user=_held_by_user(before, reading))
    by_user, hub_message = judge_message(before.hub_message, reading)
    reading = replace(reading, message_by_user=by_user)
    teams = replace(before, seen=reading, hub_message=hub_message)
    if _preferred_replaced(before.hub_dnd, reading):
        # The user's own preferred presence replaced the hub's: it is no longer ours to
        # clear, and the hub does not set its DnD over the user's choice again.
        hub_dnd = replace(before.hub_dnd, until=None, written_at=None, overridden=True)
        teams = replace(teams, hub_dnd=hub_dnd)
    call = seen_call(before, availability, activity, requested_at)
    dnd = seen_dnd(before, availability, activity, requested_at)
    # A DnD set by hand that ends is the user resetting it; Presenting ends by itself.
    by_hand = (before.seen.availability, before.seen.activity) == HUB_DND
    state = replace(state, teams=teams)
    state = _follow_call(state, FOLLOW[followed_call(state), call], templates, now)
    if syncs_dnd(mode):
        step = FOLLOW[followed_dnd(state), dnd]
        state = _follow_dnd(state, step, templates, now, reset_by_hand=by_hand)
    return follow_out_of_office(state, follows_oof(mode, follow_oof), templates, now)


@dataclass(frozen=True, slots=True)
class TeamsExtras:
    """What a Graph presence reading tells beyond availability and activity."""

    status_message: str | None = None
    out_of_office: bool = False


# How long an out-of-office appointment lasts past the reading that last showed the user
# out of office: a sync that stops reading cannot leave it behind for longer (SPEC §3
# rule 6); readings renew it once half of that has passed.
OOF_HOLD = SYNC_HARD_END


def follows_oof(mode: TeamsSyncMode, switched_on: bool) -> bool:
    """Out of office travels to the UC side in telephony_and_presence, if the group lets it."""
    return switched_on and syncs_dnd(mode)


def oof_appointment(state: UserState) -> Appointment | None:
    return next((a for a in state.appointments if a.id == TEAMS_OOF_APPOINTMENT), None)


def oof_renewal_due(state: UserState, now: datetime) -> bool:
    """The out-of-office appointment is past half its hold: the next reading renews it."""
    current = oof_appointment(state)
    return current is not None and current.end - now < OOF_HOLD / 2


def unfollow_out_of_office(state: UserState) -> UserState:
    if oof_appointment(state) is None:
        return state
    others = tuple(a for a in state.appointments if a.id != TEAMS_OOF_APPOINTMENT)
    return replace(state, appointments=others)


def follow_out_of_office(
    state: UserState, followed: bool, templates: tuple[ProfileTemplate, ...], now: datetime
) -> UserState:
    """SPEC §3 rule 6: while Teams shows the user out of office (and the sync follows it),
    an "Out of office (MS Teams)" appointment with the user's first away profile; gone
    when Teams no longer shows it, or when it is no longer followed."""
    current = oof_appointment(state)
    if not followed or not state.teams.seen.out_of_office:
        return unfollow_out_of_office(state)
    if current is not None and current.end - now >= OOF_HOLD / 2:
        return state
    profile = teams_oof_profile(my_profiles(state, templates))
    renewed = Appointment(
        id=TEAMS_OOF_APPOINTMENT,
        subject=Text.OUT_OF_OFFICE_TEAMS,
        color=None,
        start=now if current is None else current.start,
        end=now + OOF_HOLD,
        profile=profile.name,
        origin=AppointmentOrigin.TEAMS,
        created_at=now if current is None else current.created_at,
        hard_end=now + OOF_HOLD,
    )
    others = tuple(a for a in state.appointments if a.id != TEAMS_OOF_APPOINTMENT)
    return replace(state, appointments=(*others, renewed))


# ---- The status message (SPEC §4 rule 7): the UC text as the Teams status message.


def hub_message_may_show(message: HubMessage, shown: str, requested_at: datetime) -> bool:
    """Whether a message Teams shows may be one of the hub's: the one Graph acknowledged,
    the one whose write is due (unsure), or the one before, for reads from before it went."""
    if shown == message.text and message.written_at is not None:
        return True
    if message.unsure and shown in (message.pending, message.text):
        return True
    released = message.released_at
    return (
        shown == message.previous and released is not None and requested_at < released + ECHO_GRACE
    )


def judge_message(message: HubMessage, reading: TeamsReading) -> tuple[bool, HubMessage]:
    """Whose the status message in a reading is, and what is left of the hub's.

    | Teams shows                                  | the message is | the hub's message    |
    |----------------------------------------------|----------------|----------------------|
    | a message the hub's writes explain           | the hub's      | kept                 |
    | another message, read after the hub's write  | the user's     | gone, declined       |
    | another message, read before it              | the user's     | kept (the next tells)|
    | none, read after the hub's acknowledged      | none           | gone, declined (the  |
    |   write and before its expiry                |                | user cleared it)     |
    | none otherwise                               | none           | kept                 |

    A declined text is not set again while the UC side shows it: the user's word counts.
    """
    shown, requested_at = reading.status_message, reading.requested_at
    if requested_at is None:
        return False, message
    written = message.written_at
    after_write = (
        message.text is not None
        and written is not None
        and not message.unsure
        and requested_at >= written
        and (message.until is None or requested_at < message.until)
    )
    if shown is not None and hub_message_may_show(message, shown, requested_at):
        return False, message
    if after_write:
        gone = replace(
            message,
            text=None,
            until=None,
            written_at=None,
            previous=message.text,
            released_at=requested_at,
            declined=message.text,
        )
        return shown is not None, gone
    return shown is not None, message


def note_message_lapse(state: UserState, now: datetime) -> UserState:
    """Graph removes a status message at its expiry: the hub's message is gone then."""
    have = state.teams.hub_message
    if have.until is None or now < have.until or have.text is None:
        return state
    gone = replace(
        have, text=None, until=None, written_at=None, previous=have.text, released_at=have.until
    )
    return replace(state, teams=replace(state.teams, hub_message=gone))


def note_message_written(
    state: UserState, text: str | None, until: datetime | None, now: datetime
) -> UserState:
    """Graph acknowledged the hub's status message `text` (until), or its clearing (None)."""
    have = state.teams.hub_message
    previous, released = have.previous, have.released_at
    if have.text is not None and have.text != text:
        previous, released = have.text, now  # reads from before may still show it
    written = replace(
        have,
        text=text,
        until=until if text is not None else None,
        written_at=now if text is not None else None,
        previous=previous,
        released_at=released,
    )
    return replace(state, teams=replace(state.teams, hub_message=written))


def message_intent(
    state: UserState, presence: EffectivePresence, mode: TeamsSyncMode, sync: StatusMessageSync
) -> tuple[str | None, datetime | None, bool]:
    """The status message the hub wants in Teams: (text, expiry, hands off)."""
    if mode is TeamsSyncMode.OFF or sync is StatusMessageSync.OFF:
        return None, None, False
    seen = state.teams.seen
    if seen.message_by_user and seen.status_message is not None:
        return None, None, True  # never over the user's own message, never clearing it
    text = presence.chosen_text
    if text is not None:
        text = text[:MAX_STATUS_MESSAGE]
    if text is None or text == state.teams.hub_message.declined:
        return None, None, False
    return text, presence.chosen_until, False


def forget_declined(state: UserState, presence: EffectivePresence) -> UserState:
    """A declined text counts while the UC side shows it; another text is the user's new word."""
    message = state.teams.hub_message
    if message.declined is None or message.declined == presence.chosen_text:
        return state
    return replace(state, teams=replace(state.teams, hub_message=replace(message, declined=None)))


def followed_call(state: UserState) -> Followed:
    if teams_call(state) is not None:
        return Followed.FOLLOWING
    return Followed.OUTLIVED if state.teams.call.outlived else Followed.NONE


def followed_dnd(state: UserState) -> Followed:
    if state.teams.dnd.selected_at is not None:
        return Followed.FOLLOWING
    return Followed.OUTLIVED if state.teams.dnd.outlived else Followed.NONE


def _held_by_user(before: TeamsState, reading: TeamsReading) -> bool:
    """Teams shows something the hub's acknowledged writes cannot explain (SPEC §4 rule 3)."""
    shown = (reading.availability, reading.activity)
    if shown in SIGNED_OUT or reading.requested_at is None:
        return False
    session = before.hub_session
    if session.activity is not None and session.written_at is not None and not session.unsure:
        after_write = reading.requested_at >= session.written_at
        if after_write and shown[0] not in ("Busy", DND_AVAILABILITY):
            return True
        if shown == HUB_DND and before.hub_dnd.until is None:
            return True  # a DnD set by hand overrides the hub's call
    return _preferred_replaced(before.hub_dnd, reading)


def _preferred_replaced(dnd: HubDnd, reading: TeamsReading) -> bool:
    written, requested_at = dnd.written_at, reading.requested_at
    if dnd.until is None or written is None or requested_at is None or requested_at < written:
        return False
    if dnd.unsure:
        return False  # the hub's own clearing may be what shows
    # Signed out, Teams shows Offline; the hub's preference is still there for later.
    shown = (reading.availability, reading.activity)
    return reading.availability != DND_AVAILABILITY and shown not in SIGNED_OUT


def _follow_call(
    state: UserState, step: Step, templates: tuple[ProfileTemplate, ...], now: datetime
) -> UserState:
    if step is Step.LET_GO or step is Step.FORGET_OUTLIVED:
        others = tuple(a for a in state.appointments if a.id != TEAMS_CALL_APPOINTMENT)
        teams = replace(state.teams, call=NO_FOLLOWED_CALL)
        return replace(state, appointments=others, teams=teams)
    if step is Step.KEEP:
        return state
    profile = teams_call_profile(my_profiles(state, templates))
    appointment = Appointment(
        id=TEAMS_CALL_APPOINTMENT,
        subject=Text.ON_THE_PHONE_TEAMS,
        color=None,
        start=now,
        end=now + SYNC_HARD_END,
        profile=profile.name,
        origin=AppointmentOrigin.TEAMS,
        created_at=now,
        hard_end=now + SYNC_HARD_END,
    )
    return replace(state, appointments=(*state.appointments, appointment))


def first_dnd_profile(state: UserState, templates: tuple[ProfileTemplate, ...]) -> Profile | None:
    return next((p for p in my_profiles(state, templates) if p.status is Status.DND), None)


def _follow_dnd(
    state: UserState,
    step: Step,
    templates: tuple[ProfileTemplate, ...],
    now: datetime,
    reset_by_hand: bool,
) -> UserState:
    if step is Step.FORGET_OUTLIVED:
        return replace(state, teams=replace(state.teams, dnd=NO_FOLLOWED_DND))
    if step is Step.TAKE_UP:
        # Without a DnD profile the built-in DnD state is used; the service warns once.
        followed = FollowedDnd(selected_at=now, replaced=state.selection)
        teams = replace(state.teams, dnd=followed)
        return replace(state, selection=dnd_selection(state, templates, now), teams=teams)
    if step is Step.LET_GO:
        return release_teams_dnd(state, reset_by_hand=reset_by_hand)
    return state


def dnd_selection(
    state: UserState, templates: tuple[ProfileTemplate, ...], at: datetime
) -> Selection:
    """What a Teams DnD selects: the first DnD profile, else the built-in DnD state."""
    profile = first_dnd_profile(state, templates)
    if profile is None:
        return Selection(BUILTIN_DND.name, at, builtin=True)
    return Selection(profile.name, at)


def release_teams_dnd(state: UserState, reset_by_hand: bool = False) -> UserState:
    """The sync lets go of a Teams DnD: restore the earlier choice unless the user chose
    anew meanwhile.

    `reset_by_hand`: the user reset a DnD they had set by hand in Teams. If they chose a
    UC DnD profile during it, that reset is their word for Teams: the hub does not set
    its DnD over it while that UC DnD lasts (as if the user had replaced the hub's).
    """
    teams = state.teams
    selection = state.selection
    chose_anew = selection is None or selection.at != teams.dnd.selected_at
    if not chose_anew:
        selection = teams.dnd.replaced
    teams = replace(teams, dnd=replace(teams.dnd, selected_at=None, replaced=None))
    if reset_by_hand and selection is not None and chose_anew:
        teams = replace(teams, hub_dnd=replace(teams.hub_dnd, overridden=True))
    return replace(state, selection=selection, teams=teams)


def leave_teams(state: UserState) -> UserState:
    """The user's Teams id is no longer theirs (changed, or the user is deleted): what the
    sync created on the UC side goes (the Teams call and out-of-office appointments, a
    Teams DnD selection, which restores the earlier choice) and the Teams state starts
    afresh.

    What the hub set in Teams under the old id is cleared through `release_plan`."""
    made = (TEAMS_CALL_APPOINTMENT, TEAMS_OOF_APPOINTMENT)
    others = tuple(a for a in state.appointments if a.id not in made)
    state = replace(state, appointments=others)
    if state.teams.dnd.selected_at is not None:
        state = release_teams_dnd(state)
    return replace(state, teams=NO_TEAMS)


def release_plan(state: UserState, now: datetime) -> WritePlan:
    """The clears that take back what the hub may have set in Teams for this user: the
    same plan as for mode `off` (only what the hub set, and unsure writes too)."""
    return plan_writes(state, Intent(), now)


def enforce_mode(state: UserState, mode: TeamsSyncMode, now: datetime) -> UserState:
    """Undo on the UC side what a mode no longer allows; bound Teams DnD by the hard end."""
    if mode is TeamsSyncMode.OFF and teams_call(state) is not None:
        others = tuple(a for a in state.appointments if a.id != TEAMS_CALL_APPOINTMENT)
        state = replace(state, appointments=others)
    dnd_at = state.teams.dnd.selected_at
    if dnd_at is not None and now >= dnd_at + SYNC_HARD_END:
        state = release_teams_dnd(state)
        state = replace(state, teams=replace(state.teams, dnd=FollowedDnd(outlived=True)))
    elif dnd_at is not None and not syncs_dnd(mode):
        state = release_teams_dnd(state)
    if mode is TeamsSyncMode.OFF:
        # The hub neither reads nor writes Teams now: what it saw is no longer known,
        # and a reading after the sync comes back on is judged afresh. (Whatever the
        # mode before: a reading kept through telephony_only has no judging mode left.)
        if state.teams.seen != NO_READING:
            state = replace(state, teams=replace(state.teams, seen=NO_READING))
    elif state.teams.seen.mode not in (None, mode):
        # Judged under another mode: the same reading may mean more now (a DnD that
        # telephony_only ignored), so the next one is judged afresh.
        state = replace(
            state, teams=replace(state.teams, seen=replace(state.teams.seen, mode=None))
        )
    return state


def settle_followed(state: UserState, templates: tuple[ProfileTemplate, ...]) -> UserState:
    """Keep what the sync took up pointing at profiles that exist now.

    The Teams call appointment shows the `MS Teams` profile while there is one (created,
    changed or deactivated during the call: at once, both ways). A DnD profile the sync
    selected and that is deleted (or no longer DnD) while the Teams DnD lasts gives way
    to the next DnD profile, or the built-in DnD state.
    """
    call = teams_call(state)
    selected, since = state.selection, state.teams.dnd.selected_at
    dnd_taken_up = not (
        selected is None or since is None or selected.at != since or selected.builtin
    )
    if call is None and not dnd_taken_up:
        return state  # nothing the sync took up (most events): no profiles to look at
    profiles = my_profiles(state, templates)
    if call is not None and call.profile != teams_call_profile(profiles).name:
        settled = replace(call, profile=teams_call_profile(profiles).name)
        others = tuple(a for a in state.appointments if a.id != TEAMS_CALL_APPOINTMENT)
        state = replace(state, appointments=(*others, settled))
    if not dnd_taken_up:
        return state
    assert selected is not None and since is not None
    if any(
        p.status is Status.DND
        for p in profiles
        if profile_key(p.name) == profile_key(selected.profile)
    ):
        return state
    return replace(state, selection=dnd_selection(state, templates, since))


def note_outlived_call(before: UserState, after: UserState) -> UserState:
    """A Teams call appointment removed by its hard end is not re-created while it lasts."""
    if teams_call(before) is not None and teams_call(after) is None:
        return replace(after, teams=replace(after.teams, call=FollowedCall(outlived=True)))
    return after


def intent(
    state: UserState,
    presence: EffectivePresence,
    mode: TeamsSyncMode,
    reassert_dnd: bool,
    now: datetime,
    message_sync: StatusMessageSync = StatusMessageSync.OFF,
) -> Intent:
    """What Teams should show, from the UC side (SPEC §4)."""
    if mode is TeamsSyncMode.OFF:
        return Intent()
    message, message_until, hands_off = message_intent(state, presence, mode, message_sync)
    base = Intent(message=message, message_until=message_until, message_hands_off=hands_off)
    on_uc_phone = presence.telephony is Telephony.ON_THE_PHONE and presence.telephony_source in (
        TelephonySource.PBX,
        TelephonySource.MEETING,
    )
    session = HUB_SESSION[1] if on_uc_phone else None
    # The DnD the user chose stays in Teams during a PBX call: the session carries the
    # call, the preferred DnD is not cleared and set again around it.
    uc_dnd = (
        syncs_dnd(mode)
        and presence.chosen_status is Status.DND
        and state.teams.dnd.selected_at is None  # a DnD that came from Teams is not echoed back
    )
    hub_dnd = state.teams.hub_dnd
    if not uc_dnd or hub_dnd.overridden or (hub_dnd.lapsed and not reassert_dnd):
        return replace(base, session=session)
    # An appointment's DnD has a known end; a selected DnD profile lasts until changed.
    return replace(
        base, session=session, preferred_dnd=True, preferred_dnd_until=presence.chosen_until
    )


def note_dnd_lapse(state: UserState, now: datetime) -> UserState:
    """Graph drops a preferred presence at its expiry; the hub's DnD is gone then.

    Only Graph's own 1-day reset is a lapse (SPEC §4 rule 4). An end the hub gave
    (the end of a DnD appointment) just ends it; if UC DnD goes on, it is set anew.
    Either way the hub's DnD left Graph at `until`, like a clear: readings from before
    may show it, and the last one, judged while it showed, is judged again.
    """
    have = state.teams.hub_dnd
    if have.until is None or now < have.until:
        return state
    lapsed = replace(
        have,
        until=None,
        written_at=None,
        released_at=have.until,
        lapsed=have.default_expiry,
        default_expiry=False,
    )
    return replace(state, teams=replace(state.teams, hub_dnd=lapsed))


def note_session_written(state: UserState, activity: str | None, now: datetime) -> UserState:
    """Graph acknowledged the hub's session: set to `activity`, or cleared (None)."""
    have = state.teams.hub_session
    if activity is None:
        written = replace(have, activity=None, written_at=None, released_at=now)
    else:
        written = replace(have, activity=activity, written_at=now)
    return replace(state, teams=replace(state.teams, hub_session=written))


def note_preferred_written(
    state: UserState, until: datetime | None, default_expiry: bool, now: datetime
) -> UserState:
    """Graph acknowledged the hub's DnD preferred presence (until), or its clearing (None).

    `released_at` marks the end of a DnD of the hub's that Graph may have shown before:
    a read requested before it (+ ECHO_GRACE) that shows DnD may show that one. A clear
    sets it. So does a set that replaces a DnD the hub had already (re-sent to settle
    an unsure write, see `note_unsure`): `written_at` moves on to the new write, yet a
    read requested earlier, answered only now, may show the earlier DnD and must not be
    taken for one the user set in Teams. A first set keeps an earlier clear's mark, for
    the same reason: a read from before the clear may still come late.
    """
    have = state.teams.hub_dnd
    released = have.released_at
    if until is None or have.until is not None:
        released = now
    written = replace(
        have,
        until=until,
        written_at=None if until is None else now,
        default_expiry=default_expiry and until is not None,
        released_at=released,
    )
    return replace(state, teams=replace(state.teams, hub_dnd=written))


def note_unsure(
    state: UserState,
    want: Intent,
    session_acknowledged: bool,
    preferred_acknowledged: bool,
    message_acknowledged: bool = False,
) -> UserState:
    """Mark the channels on which a write is due: until acknowledged, it may be out.

    The mark is part of the state committed with the change that made the write due,
    before the writer can send it. So after a crash the hub knows which of its writes
    Graph may have carried out without the hub recording it: readings that show them
    are not taken for the user's own doing, and the next write (sent even if the hub
    believes Graph already agrees) settles it. Only an acknowledgement clears the mark.
    """
    session, dnd = state.teams.hub_session, state.teams.hub_dnd
    session_due = want.session != session.activity or (session.unsure and not session_acknowledged)
    dnd_due = want.preferred_dnd != (dnd.until is not None) or (
        dnd.unsure and not preferred_acknowledged
    )
    message = state.teams.hub_message
    message_due = (
        not want.message_hands_off
        and (want.message, want.message_until) != (message.text, message.until)
    ) or (message.unsure and not message_acknowledged)
    # While unsure, the text last due: a reading showing it is the hub's, not the user's.
    pending = want.message if message_due and not want.message_hands_off else message.pending
    if not message_due:
        pending = None
    now_marks = (session_due, dnd_due, message_due, pending)
    if now_marks == (session.unsure, dnd.unsure, message.unsure, message.pending):
        return state
    teams = replace(
        state.teams,
        hub_session=replace(session, unsure=session_due),
        hub_dnd=replace(dnd, unsure=dnd_due),
        hub_message=replace(message, unsure=message_due, pending=pending),
    )
    return replace(state, teams=teams)


def needs_observation(
    state: TeamsState,
    availability: str,
    activity: str,
    mode: TeamsSyncMode,
    extras: TeamsExtras | None = None,
) -> bool:
    """Whether a reading must go through `observe`: it differs, or it may tell more now.

    A reading equal to the last one still matters if the hub wrote since that one
    was taken (held-by-user is judged against the hub's latest write) or if the
    last one fell into the echo grace after the hub released a write of its own.
    """
    seen = state.seen
    if (availability, activity) != (seen.availability, seen.activity):
        return True
    if extras is not None and (extras.status_message, extras.out_of_office) != (
        seen.status_message,
        seen.out_of_office,
    ):
        return True
    if seen.mode is not mode:
        return True  # judged under another mode: what it means may differ now
    observed = seen.requested_at
    if observed is None:
        return True
    message = state.hub_message
    writes = [state.hub_session.written_at, state.hub_dnd.written_at, message.written_at]
    for released in (state.hub_session.released_at, state.hub_dnd.released_at, message.released_at):
        if released is not None:
            writes.append(released + ECHO_GRACE)
    return any(w is not None and observed <= w for w in writes)


@dataclass(frozen=True, slots=True)
class WritePlan:
    """The Graph writes that bring what the hub asserted to what it wants, in order."""

    set_session: str | None = None  # activity to (re)send
    clear_session: bool = False
    set_preferred_dnd: bool = False
    preferred_duration: timedelta | None = None  # None: Graph's default expiry
    clear_preferred: bool = False
    set_message: str | None = None  # the status message to set
    message_until: datetime | None = None  # its expiry; None: none
    clear_message: bool = False

    def __bool__(self) -> bool:
        return bool(
            self.set_session
            or self.clear_session
            or self.set_preferred_dnd
            or self.clear_preferred
            or self.set_message
            or self.clear_message
        )


def plan_writes(state: UserState, want: Intent, now: datetime, refresh: bool = False) -> WritePlan:
    """What to send: only the difference, and the session again when its refresh is due.

    On a channel whose last write is unsure (see `note_unsure`) what the hub wants is
    sent whatever it believes Graph has, so that an acknowledgement settles it.
    """
    session, dnd = state.teams.hub_session, state.teams.hub_dnd
    set_session: str | None = None
    clear_session = False
    if want.session is not None:
        due = session.written_at is None or now >= session.written_at + SESSION_REFRESH
        if session.activity != want.session or due or refresh or session.unsure:
            set_session = want.session
    elif session.activity is not None or session.unsure:
        clear_session = True
    set_preferred = want.preferred_dnd and (dnd.until is None or dnd.unsure)
    duration = None
    if set_preferred and want.preferred_dnd_until is not None:
        duration = want.preferred_dnd_until - now
    # Only what the hub set: a preferred presence the user replaced is no longer ours.
    clear_preferred = not want.preferred_dnd and (dnd.until is not None or dnd.unsure)
    set_message, message_until, clear_message = _plan_message(state.teams.hub_message, want)
    return WritePlan(
        set_session,
        clear_session,
        set_preferred,
        duration,
        clear_preferred,
        set_message,
        message_until,
        clear_message,
    )


def _plan_message(have: HubMessage, want: Intent) -> tuple[str | None, datetime | None, bool]:
    """Set the wanted text if Graph lacks it; clear only a message the hub set."""
    if want.message_hands_off:
        return None, None, False
    if want.message is not None:
        if (have.text, have.until) != (want.message, want.message_until) or have.unsure:
            return want.message, want.message_until, False
        return None, None, False
    return None, None, have.text is not None or have.unsure
