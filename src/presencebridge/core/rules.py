"""How each event changes a user's state: `apply(state, event, context, now)`.

Pure: no I/O, no clock. A refused event raises `Rejected` and changes nothing.
Every event also lets time do its work first (calls time out, finished
appointments leave the list), so the state never carries stale entries.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from presencebridge.core import micsync, teams
from presencebridge.core.effective import (
    EffectivePresence,
    effective_presence,
    find_profile,
    my_profiles,
    refuse_reserved_name,
)
from presencebridge.core.errors import Reason, Rejected
from presencebridge.core.model import (
    BUILTIN_APPOINTMENT_PROFILE,
    SYNC_HARD_END,
    Appointment,
    AppointmentOrigin,
    CallState,
    Meeting,
    MeetingState,
    MicrophoneUse,
    Profile,
    ProfileTemplate,
    Selection,
    Status,
    TeamsSyncMode,
    UserState,
)
from presencebridge.core.settings import GroupSettings, effective_mode
from presencebridge.core.telephony import apply_call_event, call_deadline, expire_calls

MAX_PROFILES = 100
MAX_APPOINTMENTS = 500
MAX_OPEN_MEETINGS = 50
MAX_OPEN_CALLS = 50


@dataclass(frozen=True, slots=True)
class GroupContext:
    """What the user's configuration group contributes to a decision."""

    templates: tuple[ProfileTemplate, ...] = ()
    settings: GroupSettings = field(default_factory=GroupSettings)

    def mode(self, state: UserState) -> TeamsSyncMode:
        return effective_mode(self.settings, state.own_mode)


@dataclass(frozen=True, slots=True)
class TelephonyEvent:
    call_id: str
    state: CallState


@dataclass(frozen=True, slots=True)
class MeetingEvent:
    meeting_id: str
    state: MeetingState
    screen_sharing: bool = False
    audio: bool = True


@dataclass(frozen=True, slots=True)
class AddProfile:
    profile: Profile


@dataclass(frozen=True, slots=True)
class DeleteProfile:
    name: str


@dataclass(frozen=True, slots=True)
class ReorderProfiles:
    names: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class SelectProfile:
    name: str | None  # None clears the manual choice


@dataclass(frozen=True, slots=True)
class AddAppointment:
    id: str
    subject: str
    start: datetime
    end: datetime
    profile: str | None = None
    color: str | None = None
    origin: AppointmentOrigin = AppointmentOrigin.MANUAL


@dataclass(frozen=True, slots=True)
class DeleteAppointment:
    id: str


@dataclass(frozen=True, slots=True)
class SetOwnMode:
    mode: TeamsSyncMode | None


@dataclass(frozen=True, slots=True)
class Tick:
    """Time has passed; nothing else happened."""


@dataclass(frozen=True, slots=True)
class MicrophoneReport:
    """The agent saw these whitelisted programs holding the microphone (after debounce)."""

    processes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class AgentStarted:
    """The user's agent (re)connected: what the sync created is reconciled (SPEC §3 rule 5)."""


@dataclass(frozen=True, slots=True)
class TeamsObserved:
    """Graph showed this presence for the user, read at `requested_at`; `extras` the
    status message and out-of-office state (None: the reading did not have them)."""

    availability: str
    activity: str
    sequence: str | None
    requested_at: datetime
    extras: teams.TeamsExtras | None = None


@dataclass(frozen=True, slots=True)
class TeamsSessionWritten:
    """Graph acknowledged the hub's session: set to `activity`, or cleared (None)."""

    activity: str | None


@dataclass(frozen=True, slots=True)
class TeamsMessageWritten:
    """Graph acknowledged the hub's status message `text` (until), or its clearing (None)."""

    text: str | None
    until: datetime | None = None


@dataclass(frozen=True, slots=True)
class TeamsPreferredWritten:
    """Graph acknowledged the hub's DnD preferred presence (until), or its clearing."""

    until: datetime | None
    default_expiry: bool = False  # no end was given: Graph's 1-day default applies


Event = (
    TelephonyEvent
    | MeetingEvent
    | AddProfile
    | DeleteProfile
    | ReorderProfiles
    | SelectProfile
    | AddAppointment
    | DeleteAppointment
    | SetOwnMode
    | Tick
    | TeamsObserved
    | TeamsSessionWritten
    | TeamsPreferredWritten
    | TeamsMessageWritten
    | MicrophoneReport
    | AgentStarted
)


def age(state: UserState, now: datetime) -> UserState:
    """Let time act: timed-out calls end, finished appointments leave the list."""
    calls = expire_calls(state.calls, now)
    appointments = tuple(a for a in state.appointments if a.effective_end() > now)
    if calls == state.calls and appointments == state.appointments:
        return state
    return replace(state, calls=calls, appointments=appointments)


def next_deadline(state: UserState, now: datetime) -> datetime | None:
    """The earliest moment at which time alone changes this user's state or presence."""
    moments = [call_deadline(c) for c in state.calls]
    sync = state.teams
    session = sync.hub_session
    if session.activity is not None and session.written_at is not None:
        moments.append(session.written_at + teams.SESSION_REFRESH)
    if sync.hub_dnd.until is not None:
        moments.append(sync.hub_dnd.until)  # Graph drops it then
    if sync.hub_message.until is not None:
        moments.append(sync.hub_message.until)  # Graph removes it then
    if sync.dnd.selected_at is not None:
        moments.append(sync.dnd.selected_at + SYNC_HARD_END)
    for appointment in state.appointments:
        moments.extend(m for m in (appointment.start, appointment.effective_end()) if m > now)
    future = [m for m in moments if m > now]
    return min(future) if future else None


@dataclass(frozen=True, slots=True)
class Applied:
    """A user's state after an event, and the presence it shows."""

    state: UserState
    presence: EffectivePresence


def apply(state: UserState, event: Event, context: GroupContext, now: datetime) -> Applied:
    """The user's state after `event` and its presence; raises `Rejected` if refused."""
    aged = teams.note_outlived_call(state, age(state, now))
    aged = teams.note_dnd_lapse(aged, now)
    aged = teams.note_message_lapse(aged, now)
    changed = _apply(aged, event, context, now)
    mode = context.mode(changed)
    changed = teams.enforce_mode(changed, mode, now)
    if not teams.follows_oof(mode, context.settings.teams_out_of_office):
        changed = teams.unfollow_out_of_office(changed)
    changed = teams.settle_followed(changed, context.templates)
    if changed.microphone is not None and not context.settings.microphone_sync_enable:
        changed = replace(changed, microphone=None)
    # The marks below are not part of the presence (not even of its Teams view).
    presence = effective_presence(changed, context.templates, now)
    hub_dnd = changed.teams.hub_dnd
    # A lapsed or overridden hub DnD is left alone only while that UC DnD lasts.
    if (hub_dnd.lapsed or hub_dnd.overridden) and presence.chosen_status is not Status.DND:
        hub_dnd = replace(hub_dnd, lapsed=False, overridden=False)
        changed = replace(changed, teams=replace(changed.teams, hub_dnd=hub_dnd))
    changed = teams.forget_declined(changed, presence)
    if changed.user.teams_user_id is not None:
        want = teams.intent(
            changed, presence, mode, context.settings.reassert_dnd, now,
            context.settings.teams_status_message,
        )  # fmt: skip
        changed = teams.note_unsure(
            changed,
            want,
            session_acknowledged=isinstance(event, TeamsSessionWritten),
            preferred_acknowledged=isinstance(event, TeamsPreferredWritten),
            message_acknowledged=isinstance(event, TeamsMessageWritten),
        )
    return Applied(changed, presence)


def _apply(state: UserState, event: Event, context: GroupContext, now: datetime) -> UserState:
    return HANDLERS[type(event)](state, event, context, now)


def _telephony(s: UserState, e: TelephonyEvent, c: GroupContext, now: datetime) -> UserState:
    # A PBX that never ends its calls cannot grow a user's state without bound.
    opens_one = e.state is not CallState.ENDED and all(x.call_id != e.call_id for x in s.calls)
    if opens_one and sum(x.state is not CallState.ENDED for x in s.calls) >= MAX_OPEN_CALLS:
        raise Rejected(
            Reason.CONFLICT,
            f"more than {MAX_OPEN_CALLS} open calls",
            "too_many_calls",
            {"max": MAX_OPEN_CALLS},
        )
    return replace(s, calls=apply_call_event(s.calls, e.call_id, e.state, now))


def _delete_profile(s: UserState, e: DeleteProfile, c: GroupContext, now: datetime) -> UserState:
    found = find_profile(s.profiles, e.name)
    if found is None:
        raise Rejected(
            Reason.NOT_FOUND,
            f"user has no own profile named {e.name!r}",
            "profile_not_own",
            {"name": e.name},
        )
    return replace(s, profiles=tuple(p for p in s.profiles if p is not found))


def _delete_appointment(
    s: UserState, e: DeleteAppointment, c: GroupContext, now: datetime
) -> UserState:
    if not any(a.id == e.id for a in s.appointments):
        raise Rejected(
            Reason.NOT_FOUND, f"no appointment {e.id!r}", "appointment_unknown", {"id": e.id}
        )
    return replace(s, appointments=tuple(a for a in s.appointments if a.id != e.id))


def _agent_started(s: UserState, e: AgentStarted, c: GroupContext, now: datetime) -> UserState:
    # Whatever the sync created may be stale after the agent was away: remove it; the
    # next reading (judged afresh) and report re-create what still holds. A call past
    # its hard end stays outlived (SPEC §3 rule 5): only Teams showing no call ends that.
    kept = tuple(a for a in s.appointments if a.origin is AppointmentOrigin.MANUAL)
    seen = replace(s.teams.seen, mode=None)
    return replace(s, appointments=kept, microphone=None, teams=replace(s.teams, seen=seen))


def _observed(s: UserState, e: TeamsObserved, c: GroupContext, now: datetime) -> UserState:
    mode, templates = c.mode(s), c.templates
    return teams.observe(
        s, e.availability, e.activity, e.sequence, e.requested_at, mode, templates, now,
        e.extras, c.settings.teams_out_of_office,
    )  # fmt: skip


def _session_written(
    s: UserState, e: TeamsSessionWritten, c: GroupContext, now: datetime
) -> UserState:
    return teams.note_session_written(s, e.activity, now)


def _preferred_written(
    s: UserState, e: TeamsPreferredWritten, c: GroupContext, now: datetime
) -> UserState:
    return teams.note_preferred_written(s, e.until, e.default_expiry, now)


# What each event does to the user's state (before the steps every event shares, `apply`).
HANDLERS: dict[type[Any], Callable[[UserState, Any, GroupContext, datetime], UserState]] = {
    TelephonyEvent: _telephony,
    MeetingEvent: lambda s, e, c, now: _meeting(s, e, now),
    AddProfile: lambda s, e, c, now: _add_profile(s, e.profile),
    DeleteProfile: _delete_profile,
    ReorderProfiles: lambda s, e, c, now: _reorder(s, e.names),
    SelectProfile: lambda s, e, c, now: _select(s, e.name, c, now),
    AddAppointment: lambda s, e, c, now: _add_appointment(s, e, c, now),
    DeleteAppointment: _delete_appointment,
    SetOwnMode: lambda s, e, c, now: replace(s, own_mode=e.mode),
    Tick: lambda s, e, c, now: s,
    MicrophoneReport: lambda s, e, c, now: _microphone(s, e.processes, c, now),
    AgentStarted: _agent_started,
    TeamsObserved: _observed,
    TeamsSessionWritten: _session_written,
    TeamsPreferredWritten: _preferred_written,
    TeamsMessageWritten: lambda s, e, c, now: teams.note_message_written(s, e.text, e.until, now),
}


def _microphone(
    state: UserState, processes: tuple[str, ...], context: GroupContext, now: datetime
) -> UserState:
    settings = context.settings
    if not settings.microphone_sync_enable:
        return replace(state, microphone=None)
    chosen = micsync.choose(
        processes, micsync.effective_whitelist(settings.microphone_sync_whitelist)
    )
    current = state.microphone
    if chosen is None:
        return replace(state, microphone=None)
    if current is not None and current.process == chosen:
        return state
    return replace(state, microphone=MicrophoneUse(chosen, micsync.friendly_name(chosen), now))


def _meeting(state: UserState, event: MeetingEvent, now: datetime) -> UserState:
    others = tuple(m for m in state.meetings if m.meeting_id != event.meeting_id)
    if event.state is MeetingState.LEFT:
        return replace(state, meetings=others)
    current = next((m for m in state.meetings if m.meeting_id == event.meeting_id), None)
    if current is None and len(others) >= MAX_OPEN_MEETINGS:
        raise Rejected(Reason.CONFLICT, f"more than {MAX_OPEN_MEETINGS} open meetings")
    joined_at = current.joined_at if current is not None else now
    meeting = Meeting(event.meeting_id, joined_at, event.screen_sharing, event.audio)
    return replace(state, meetings=tuple(sorted((*others, meeting), key=lambda m: m.meeting_id)))


def _add_profile(state: UserState, profile: Profile) -> UserState:
    refuse_reserved_name(profile.name, "profile_reserved")
    if find_profile(state.profiles, profile.name) is not None:
        raise Rejected(
            Reason.CONFLICT,
            f"a profile named {profile.name!r} exists already",
            "profile_exists",
            {"name": profile.name},
        )
    if len(state.profiles) >= MAX_PROFILES:
        raise Rejected(
            Reason.CONFLICT,
            f"at most {MAX_PROFILES} profiles per user",
            "too_many_profiles",
            {"max": MAX_PROFILES},
        )
    return replace(state, profiles=(*state.profiles, profile))


def _reorder(state: UserState, names: tuple[str, ...]) -> UserState:
    own = [p.name for p in state.profiles]
    if sorted(names) != sorted(own) or len(set(names)) != len(names):
        raise Rejected(
            Reason.INVALID,
            f"the new order must name each own profile once: {', '.join(own)}",
            "profile_order",
            {"names": ", ".join(own)},
        )
    by_name = {p.name: p for p in state.profiles}
    return replace(state, profiles=tuple(by_name[n] for n in names))


def _select(state: UserState, name: str | None, context: GroupContext, now: datetime) -> UserState:
    if name is None:
        return replace(state, selection=None)
    found = find_profile(my_profiles(state, context.templates), name)
    if found is None:
        raise Rejected(
            Reason.NOT_FOUND,
            f"{name!r} is not in the user's profiles",
            "profile_unknown",
            {"name": name},
        )
    return replace(state, selection=Selection(found.name, now))


def _add_appointment(
    state: UserState, event: AddAppointment, context: GroupContext, now: datetime
) -> UserState:
    if event.end <= event.start:
        raise Rejected(
            Reason.INVALID, "an appointment must end after it starts", "appointment_order"
        )
    if event.end <= now:
        raise Rejected(Reason.INVALID, "the appointment has already ended", "appointment_ended")
    if any(a.id == event.id for a in state.appointments):
        raise Rejected(
            Reason.CONFLICT,
            f"appointment {event.id!r} exists already",
            "appointment_exists",
            {"id": event.id},
        )
    if len(state.appointments) >= MAX_APPOINTMENTS:
        raise Rejected(
            Reason.CONFLICT,
            f"at most {MAX_APPOINTMENTS} appointments per user",
            "too_many_appointments",
            {"max": MAX_APPOINTMENTS},
        )
    profile_name = event.profile or BUILTIN_APPOINTMENT_PROFILE
    if find_profile(my_profiles(state, context.templates), profile_name) is None:
        raise Rejected(
            Reason.NOT_FOUND,
            f"{profile_name!r} is not in the user's profiles",
            "profile_unknown",
            {"name": profile_name},
        )
    appointment = Appointment(
        id=event.id,
        subject=event.subject,
        color=event.color,
        start=event.start,
        end=event.end,
        profile=profile_name,
        origin=event.origin,
        created_at=now,
        hard_end=None if event.origin is AppointmentOrigin.MANUAL else now + SYNC_HARD_END,
    )
    return replace(state, appointments=(*state.appointments, appointment))
