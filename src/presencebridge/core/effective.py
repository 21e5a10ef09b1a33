"""Effective presence: one precedence table over everything that wants a say.

The candidates are the user's manual profile choice, each active appointment and
the telephony status. The highest standing wins; among equal standings the most
recent wins (SPEC §2). The table below is the whole rule.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import IntEnum, StrEnum

from presencebridge.core.errors import Reason, Rejected
from presencebridge.core.model import (
    BUILTIN_APPOINTMENT_PROFILE,
    BUILTIN_DND_PROFILE,
    NO_TEAMS,
    NO_TEAMS_VIEW,
    Appointment,
    AppointmentOrigin,
    MicrophoneUse,
    Profile,
    ProfileSource,
    ProfileTemplate,
    Status,
    TeamsView,
    Telephony,
    TelephonySource,
    UserState,
    profile_key,
)
from presencebridge.core.telephony import telephony_status
from presencebridge.core.texts import Text


class Standing(StrEnum):
    """What a candidate claims; `on_the_phone` is telephony, the rest are statuses."""

    ON_THE_PHONE = "on_the_phone"
    DND = "dnd"
    BUSY = "busy"
    AWAY = "away"
    AVAILABLE = "available"
    OFFLINE = "offline"
    NOTHING_CHOSEN = "nothing_chosen"  # the baseline: shown as available


# Higher wins; equal standings are decided by recency.
PRECEDENCE: dict[Standing, int] = {
    Standing.ON_THE_PHONE: 3,
    Standing.DND: 3,
    Standing.BUSY: 2,
    Standing.AWAY: 1,
    Standing.AVAILABLE: 1,
    Standing.OFFLINE: 0,
    Standing.NOTHING_CHOSEN: -1,
}


class CandidateKind(IntEnum):
    """Final tie-break when two candidates claim the same standing at the same instant."""

    BASELINE = 0
    SELECTION = 1
    APPOINTMENT = 2
    MICROPHONE = 3
    TELEPHONY = 4


BUILTIN_PROFILES: tuple[Profile, ...] = (
    Profile(
        BUILTIN_APPOINTMENT_PROFILE,
        Status.BUSY,
        Text.APPOINTMENT,
        "#e8a33d",
        None,
        ProfileSource.BUILTIN,
    ),
)

# Selected by the Teams sync when a Teams DnD arrives and the user has no DnD profile
# (SPEC §3 rule 4); not part of My Profiles.
BUILTIN_DND = Profile(
    BUILTIN_DND_PROFILE, Status.DND, Text.DO_NOT_DISTURB, "#c4314b", None, ProfileSource.BUILTIN
)
# The appointment the Teams sync keeps while the user is in a Teams call (SPEC §3 rule 1).
TEAMS_CALL_APPOINTMENT = "teams-call"
# The appointment the Teams sync keeps while Teams shows the user out of office (SPEC §3
# rule 6), its profile the user's first with the status away, else this one (not part of
# My Profiles).
TEAMS_OOF_APPOINTMENT = "teams-oof"
BUILTIN_OOF = Profile(
    "Abwesend", Status.AWAY, Text.OUT_OF_OFFICE_TEAMS, "#fcd116", None, ProfileSource.BUILTIN
)
# Its profile (SPEC §3 rule 2): `MS Teams` while the user has one, else `Termin`.
TEAMS_PROFILE = "MS Teams"
# Names an own profile may not take: an own profile shadows a built-in of the same name
# (`my_profiles`), so `Termin` would silently replace what appointments without a profile
# and the Teams sync use, and `Nicht stören` / `Abwesend` would hide the sync's own states.
# `MS Teams` is no such name: the sync looks for the user's own `MS Teams` on purpose.
RESERVED_PROFILE_NAMES = (BUILTIN_APPOINTMENT_PROFILE, BUILTIN_DND_PROFILE, BUILTIN_OOF.name)


def reserved_name(name: str) -> str | None:
    """The built-in name `name` would shadow (case and Unicode form ignored), or None."""
    key = profile_key(name.strip())
    return next((r for r in RESERVED_PROFILE_NAMES if profile_key(r) == key), None)


def refuse_reserved_name(name: str, code: str) -> None:
    """Raise `Rejected` (422 naming `name`, console `code`) if `name` shadows a built-in."""
    reserved = reserved_name(name)
    if reserved is not None:
        raise Rejected(
            Reason.INVALID,
            f"name: {name!r} is the name of a built-in profile ({reserved!r}); choose another name",
            code,
            {"name": name},
        )


TELEPHONY_TEXT: dict[TelephonySource, Text] = {
    TelephonySource.PBX: Text.ON_THE_PHONE,
    TelephonySource.MEETING: Text.ON_THE_PHONE_MEETING,
    TelephonySource.TEAMS: Text.ON_THE_PHONE_TEAMS,
}
ON_THE_PHONE_COLOR = "#c4314b"
AVAILABLE_COLOR = "#6bb700"
_BEGINNING = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Candidate:
    standing: Standing
    since: datetime
    kind: CandidateKind
    status: Status
    profile: str | None
    text: str
    color: str
    call_forwarding: str | None
    key: str  # stable tie-break among candidates of one kind
    until: datetime | None = None

    def order(self) -> tuple[int, datetime, int, str]:
        return (PRECEDENCE[self.standing], self.since, self.kind, self.key)


@dataclass(frozen=True, slots=True)
class EffectivePresence:
    status: Status
    profile: str | None
    text: str
    color: str
    call_forwarding: str | None
    telephony: Telephony
    telephony_source: TelephonySource | None
    appointments: tuple[Appointment, ...]
    teams: TeamsView
    source: CandidateKind
    until: datetime | None = None  # when the winning appointment ends, if one wins
    microphone: MicrophoneUse | None = None
    # What the user chose on the UC side (profile, appointments, microphone), telephony
    # and the Teams call left aside: a DnD chosen stays DnD in Teams during a PBX call.
    chosen_status: Status = Status.AVAILABLE
    chosen_until: datetime | None = None
    # The chosen side's forwarding: a PBX call the user makes must not lift a chosen
    # profile's forwarding at the PBX for its length (core/pbx_features.py).
    chosen_call_forwarding: str | None = None
    # The presence text the user chose on the UC side (a profile selected by hand, an
    # appointment's subject, Microphone Sync's service): what may become the Teams status
    # message. None when nothing is chosen or the choice came from Teams itself.
    chosen_text: str | None = None


def my_profiles(state: UserState, templates: tuple[ProfileTemplate, ...]) -> tuple[Profile, ...]:
    """My Profiles: the user's own, then the group's active templates, then built-ins.

    An own profile shadows a template or built-in of the same name.
    """
    seen = {profile_key(p.name) for p in state.profiles}
    result = list(state.profiles)
    for extra in (*(t.as_profile() for t in templates if t.active), *BUILTIN_PROFILES):
        if profile_key(extra.name) not in seen:
            seen.add(profile_key(extra.name))
            result.append(extra)
    return tuple(result)


MICSYNC_TEMPLATE = "MicSync"


def micsync_template(templates: tuple[ProfileTemplate, ...]) -> ProfileTemplate | None:
    """The group's active central template `MicSync`, without which Microphone Sync is off."""
    return next((t for t in templates if t.name == MICSYNC_TEMPLATE and t.active), None)


def find_profile(profiles: tuple[Profile, ...], name: str) -> Profile | None:
    key = profile_key(name)
    return next((p for p in profiles if profile_key(p.name) == key), None)


def teams_call_profile(profiles: tuple[Profile, ...]) -> Profile:
    """The profile of the Teams call appointment as it is now (one rule, both ways:
    an `MS Teams` profile created, changed or removed during a call applies at once)."""
    return find_profile(profiles, TEAMS_PROFILE) or BUILTIN_PROFILES[0]


def teams_oof_profile(profiles: tuple[Profile, ...]) -> Profile:
    """The profile of the out-of-office appointment as it is now: the first away one."""
    return next((p for p in profiles if p.status is Status.AWAY), BUILTIN_OOF)


def _from_profile(profile: Profile, since: datetime, kind: CandidateKind, key: str) -> Candidate:
    return Candidate(
        Standing(profile.status.value),
        since,
        kind,
        profile.status,
        profile.name,
        profile.text,
        profile.color,
        profile.call_forwarding,
        key,
    )


def active_teams_call(state: UserState, now: datetime) -> Appointment | None:
    """The active "On the phone (MS Teams)" appointment the Teams sync created, if any."""
    return next(
        (a for a in state.appointments if a.id == TEAMS_CALL_APPOINTMENT and a.is_active(now)),
        None,
    )


def user_telephony(
    state: UserState, now: datetime
) -> tuple[Telephony, TelephonySource | None, datetime | None]:
    call = active_teams_call(state, now)
    return telephony_status(state.calls, state.meetings, None if call is None else call.start)


BASELINE = Candidate(
    Standing.NOTHING_CHOSEN,
    _BEGINNING,
    CandidateKind.BASELINE,
    Status.AVAILABLE,
    None,
    Text.AVAILABLE,
    AVAILABLE_COLOR,
    None,
    "",
)


PhoneStatus = tuple[Telephony, TelephonySource | None, datetime | None]


def candidates(
    state: UserState,
    templates: tuple[ProfileTemplate, ...],
    now: datetime,
    phone: PhoneStatus | None = None,
) -> list[Candidate]:
    """Everything that wants a say in the user's presence now (`phone`: the user's
    telephony if known already)."""
    profiles = my_profiles(state, templates)
    found = [BASELINE, *_selection(state, profiles), *_appointments(state, profiles, now)]
    mic = state.microphone
    template = micsync_template(templates)
    if mic is not None and template is not None:
        # Microphone Sync shows the central template MicSync with the service's name (SPEC §6).
        candidate = _from_profile(template.as_profile(), mic.since, CandidateKind.MICROPHONE, "")
        found.append(replace(candidate, text=mic.service))
    found.extend(_telephony(profiles, phone or user_telephony(state, now)))
    return found


def _selection(state: UserState, profiles: tuple[Profile, ...]) -> list[Candidate]:
    selected = state.selection
    if selected is None:
        return []
    # The sync may select its built-in DnD state, which is not in My Profiles.
    chosen = BUILTIN_DND if selected.builtin else find_profile(profiles, selected.profile)
    return (
        [] if chosen is None else [_from_profile(chosen, selected.at, CandidateKind.SELECTION, "")]
    )


def _appointments(
    state: UserState, profiles: tuple[Profile, ...], now: datetime
) -> list[Candidate]:
    found = []
    for appointment in state.appointments:
        if not appointment.is_active(now):
            continue
        if appointment.id == TEAMS_CALL_APPOINTMENT:
            profile = teams_call_profile(profiles)
        elif appointment.id == TEAMS_OOF_APPOINTMENT:
            profile = teams_oof_profile(profiles)
        else:
            profile = find_profile(profiles, appointment.profile) or BUILTIN_PROFILES[0]
        candidate = _from_profile(profile, appointment.start, CandidateKind.APPOINTMENT, "")
        found.append(
            replace(
                candidate,
                text=appointment.subject,
                color=appointment.color or profile.color,
                key=appointment.id,
                until=appointment.effective_end(),
            )
        )
    return found


def _telephony(profiles: tuple[Profile, ...], phone: PhoneStatus) -> list[Candidate]:
    telephony, source, since = phone
    if telephony is not Telephony.ON_THE_PHONE or source is None or since is None:
        return []
    candidate = Candidate(
        Standing.ON_THE_PHONE,
        since,
        CandidateKind.TELEPHONY,
        Status.BUSY,
        None,
        TELEPHONY_TEXT[source],
        ON_THE_PHONE_COLOR,
        None,
        "",
    )
    if source is TelephonySource.TEAMS:
        # The Teams call's profile (e.g. `MS Teams` forwarding to voicemail) applies.
        teams_profile = teams_call_profile(profiles)
        candidate = replace(
            candidate, profile=teams_profile.name, call_forwarding=teams_profile.call_forwarding
        )
    return [candidate]


def effective_presence(
    state: UserState, templates: tuple[ProfileTemplate, ...], now: datetime
) -> EffectivePresence:
    """The user's presence as everyone sees it, derived from the state alone."""
    phone = user_telephony(state, now)
    found = candidates(state, templates, now, phone)
    winner = max(found, key=Candidate.order)
    chosen = max(
        (
            c
            for c in found
            if c.kind is not CandidateKind.TELEPHONY and c.key != TEAMS_CALL_APPOINTMENT
        ),
        key=Candidate.order,
    )
    telephony, source, _ = phone
    return EffectivePresence(
        status=winner.status,
        profile=winner.profile,
        text=winner.text,
        color=winner.color,
        call_forwarding=winner.call_forwarding,
        telephony=telephony,
        telephony_source=source,
        appointments=tuple(sorted(state.appointments, key=lambda a: (a.start, a.id))),
        teams=NO_TEAMS_VIEW if state.teams is NO_TEAMS else state.teams.view(),
        source=winner.kind,
        until=winner.until,
        microphone=state.microphone,
        chosen_status=chosen.status,
        chosen_until=chosen.until,
        chosen_call_forwarding=chosen.call_forwarding,
        chosen_text=_chosen_on_uc_side(state, chosen),
    )


def _chosen_on_uc_side(state: UserState, chosen: Candidate) -> str | None:
    """The chosen candidate's text if the user chose it on the UC side; what the Teams
    sync selected or created (a Teams DnD, out of office) would only echo Teams back."""
    if chosen.kind is CandidateKind.SELECTION:
        selected = state.selection
        if selected is None or selected.builtin or selected.at == state.teams.dnd.selected_at:
            return None
    elif chosen.kind is CandidateKind.APPOINTMENT:
        made = next((a for a in state.appointments if a.id == chosen.key), None)
        if made is None or made.origin is AppointmentOrigin.TEAMS:
            return None
    elif chosen.kind is not CandidateKind.MICROPHONE:
        return None
    return chosen.text.strip() or None
