"""The UC presence model (SPEC §2) as plain, immutable values.

Nothing here does I/O or reads a clock: every time is passed in. A user's whole
state is one value (`UserState`), so a change is one function from the old value
to the new one and the store can persist it as one row.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class Status(StrEnum):
    """Presence status (Präsenzstatus)."""

    AVAILABLE = "available"
    BUSY = "busy"
    AWAY = "away"
    DND = "dnd"
    OFFLINE = "offline"


class Telephony(StrEnum):
    """Telephony status (Telefoniestatus)."""

    IDLE = "idle"
    RINGING = "ringing"
    ON_THE_PHONE = "on_the_phone"


class TelephonySource(StrEnum):
    """What put the user on the phone."""

    PBX = "pbx"
    MEETING = "meeting"
    TEAMS = "teams"


class CallState(StrEnum):
    RINGING = "ringing"
    CONNECTED = "connected"
    ENDED = "ended"


class MeetingState(StrEnum):
    JOINED = "joined"
    LEFT = "left"


class TeamsSyncMode(StrEnum):
    OFF = "off"
    TELEPHONY_AND_PRESENCE = "telephony_and_presence"
    TELEPHONY_ONLY = "telephony_only"


class StatusMessageSync(StrEnum):
    """Which way the Teams status message travels (group setting `teams_status_message`)."""

    OFF = "off"
    UC_TO_TEAMS = "uc_to_teams"  # the UC presence text becomes the Teams status message
    BOTH = "both"  # and a message set in Teams becomes the UC presence note


class ProfileSource(StrEnum):
    """Where an entry of My Profiles comes from."""

    OWN = "own"
    TEMPLATE = "template"
    BUILTIN = "builtin"


class AppointmentOrigin(StrEnum):
    MANUAL = "manual"
    TEAMS = "teams"
    MICSYNC = "micsync"


# Identifiers that travel in URLs; strict so that a typo is a clear 4xx, not a new row.
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$")
# ID_PATTERN in words, for refusals and the OpenAPI document.
ID_RULE = "letters A-Z a-z, digits and . _ @ + - (not first), at most 128 characters"
COLOR_PATTERN = re.compile(r"^#[0-9a-fA-F]{6}$")

# Built-in profile that always exists (SPEC §2); used by appointments without a profile.
BUILTIN_APPOINTMENT_PROFILE = "Termin"
# The Teams sync's built-in DnD state (SPEC §3 rule 4), shown under this name.
BUILTIN_DND_PROFILE = "Nicht stören"


def profile_key(name: str) -> str:
    """What makes two profile names the same: NFC form, case ignored (`ms teams` is
    `MS Teams`). Names are unique by this key within a user's My Profiles."""
    return unicodedata.normalize("NFC", name).casefold()


# Nothing the sync creates may outlive this (SPEC §3 rule 5).
SYNC_HARD_END = timedelta(hours=12)


@dataclass(frozen=True, slots=True)
class Profile:
    """A presence profile: what the user shows while it is active."""

    name: str
    status: Status
    text: str
    color: str
    call_forwarding: str | None = None
    source: ProfileSource = ProfileSource.OWN


@dataclass(frozen=True, slots=True)
class ProfileTemplate:
    """A central profile template of a configuration group."""

    name: str
    status: Status
    text: str
    color: str
    active: bool = True
    call_forwarding: str | None = None

    def as_profile(self) -> Profile:
        return Profile(
            self.name,
            self.status,
            self.text,
            self.color,
            self.call_forwarding,
            ProfileSource.TEMPLATE,
        )


@dataclass(frozen=True, slots=True)
class Appointment:
    """An entry of the user's appointment list; active while start <= now < end."""

    id: str
    subject: str
    color: str | None
    start: datetime
    end: datetime
    profile: str
    origin: AppointmentOrigin
    created_at: datetime
    # Sync-created appointments end here at the latest, whatever their `end` says.
    hard_end: datetime | None = None

    def effective_end(self) -> datetime:
        return self.end if self.hard_end is None else min(self.end, self.hard_end)

    def is_active(self, now: datetime) -> bool:
        return self.start <= now < self.effective_end()


@dataclass(frozen=True, slots=True)
class Call:
    """One PBX call of a user, as far as its events have told us."""

    call_id: str
    state: CallState
    since: datetime  # when the call reached `state`
    first_seen: datetime


@dataclass(frozen=True, slots=True)
class Meeting:
    """A UC meeting the user has joined (left meetings are dropped)."""

    meeting_id: str
    joined_at: datetime
    screen_sharing: bool
    # A meeting joined only to share the screen does not put the user on the phone (SPEC §4).
    audio: bool = True


@dataclass(frozen=True, slots=True)
class Selection:
    """The user's manual choice of profile and when it was made.

    `builtin` marks the Teams sync's built-in DnD state (SPEC §3 rule 4): it is that
    state whatever profiles of the same name the user has.
    """

    profile: str
    at: datetime
    builtin: bool = False


@dataclass(frozen=True, slots=True)
class MicrophoneUse:
    """A whitelisted program holding the user's microphone, as the agent reported it."""

    process: str  # normalised process name, e.g. "zoom"
    service: str  # the friendly name shown as presence text, e.g. "Zoom Meeting"
    since: datetime


@dataclass(frozen=True, slots=True)
class TeamsView:
    """What readers of the presence resource see of the user's Teams side."""

    availability: str | None = None
    activity: str | None = None
    held_by_user: bool = False
    status_message: str | None = None  # the user's Teams status message, as read
    out_of_office: bool = False  # Teams shows the user out of office (Outlook's OOF)
    # The status message shown is the user's own, set in Teams: the hub leaves it alone.
    message_held_by_user: bool = False


@dataclass(frozen=True, slots=True)
class TeamsReading:
    """The last reading of the user's Teams presence, and how it was judged."""

    availability: str | None = None
    activity: str | None = None
    sequence: str | None = None
    requested_at: datetime | None = None  # when the read that showed it was requested
    mode: TeamsSyncMode | None = None  # the sync mode it was judged in
    held_by_user: bool = False  # Teams shows what the hub's writes cannot explain
    status_message: str | None = None  # the Teams status message (plain text)
    out_of_office: bool = False  # `outOfOfficeSettings.isOutOfOffice`
    message_by_user: bool = False  # that message is not one of the hub's (SPEC §4 rule 3)


@dataclass(frozen=True, slots=True)
class HubSession:
    """The hub's own presence session in Teams (SPEC §4: a call on the UC side)."""

    activity: str | None = None  # acknowledged by Graph, e.g. "InACall"
    written_at: datetime | None = None
    released_at: datetime | None = None  # when Graph acknowledged its clearing
    # A write became due and no acknowledgement has come since: it may be out at Graph,
    # applied or not (the hub may have died before recording it). Set in the same
    # commit as the change that made it due, so it survives a crash.
    unsure: bool = False


@dataclass(frozen=True, slots=True)
class HubDnd:
    """The hub's DnD preferred presence in Teams (SPEC §4: a DnD on the UC side)."""

    until: datetime | None = None  # acknowledged by Graph; it drops it then
    written_at: datetime | None = None
    default_expiry: bool = False  # set without an end: Graph's 1-day reset applies
    released_at: datetime | None = None  # cleared, replaced by a re-sent one, or lapsed
    unsure: bool = False  # as `HubSession.unsure`
    # Graph reset it (1-day expiry) while the UC DnD lasted: not re-asserted unless
    # the group says `reassert_dnd`.
    lapsed: bool = False
    # The user replaced it by hand in Teams (or reset a DnD of their own over a UC DnD
    # chosen during it): never set over the user's word while that UC DnD lasts.
    overridden: bool = False


@dataclass(frozen=True, slots=True)
class HubMessage:
    """The hub's Teams status message: the UC presence text (`teams_status_message`).

    Graph carries no origin for a message either: the hub remembers what it wrote, and
    the text before that, so that only a message it cannot explain counts as the user's.
    """

    text: str | None = None  # acknowledged by Graph
    until: datetime | None = None  # the expiry it was given; Graph removes it then
    written_at: datetime | None = None
    previous: str | None = None  # the hub's text before, cleared or replaced at released_at
    released_at: datetime | None = None
    unsure: bool = False  # as `HubSession.unsure`
    pending: str | None = None  # the text of the write that is due while unsure
    # The user removed or replaced this text of the hub's in Teams: it is not set again
    # while the UC side shows it (a new UC text is).
    declined: str | None = None


@dataclass(frozen=True, slots=True)
class FollowedCall:
    """The user's Teams call as the sync follows it (SPEC §3 rules 1, 3, 5).

    Its appointment is in the user's appointment list while it is followed."""

    outlived: bool = False  # ended by the 12-hour hard end; not taken up while it lasts


@dataclass(frozen=True, slots=True)
class FollowedDnd:
    """The user's Teams DnD as the sync follows it (SPEC §3 rules 4, 5)."""

    selected_at: datetime | None = None  # when the sync selected the DnD profile
    replaced: Selection | None = None  # the choice it replaced, restored after
    outlived: bool = False  # as `FollowedCall.outlived`


# Each channel's untouched state, one shared value (see `TeamsState`).
NO_READING = TeamsReading()
NO_HUB_SESSION = HubSession()
NO_HUB_DND = HubDnd()
NO_HUB_MESSAGE = HubMessage()
NO_FOLLOWED_CALL = FollowedCall()
NO_FOLLOWED_DND = FollowedDnd()


@dataclass(frozen=True, slots=True)
class TeamsState:
    """The Teams half of a user's state, one small state per channel.

    Graph carries no origin field, so everything the hub wrote is remembered (the
    hub's session and its DnD); that is what tells an echo of the hub's own write from
    a real Teams change. What the sync follows from Teams to the UC side is the call
    and the DnD. `core/teams.py` holds the tables that move each of them.
    """

    # The defaults are shared values (they are immutable): a user who never touched a
    # channel costs no object of their own for it.
    seen: TeamsReading = NO_READING
    hub_session: HubSession = NO_HUB_SESSION
    hub_dnd: HubDnd = NO_HUB_DND
    hub_message: HubMessage = NO_HUB_MESSAGE
    call: FollowedCall = NO_FOLLOWED_CALL
    dnd: FollowedDnd = NO_FOLLOWED_DND

    def view(self) -> TeamsView:
        seen = self.seen
        return TeamsView(
            seen.availability, seen.activity, seen.held_by_user, seen.status_message,
            seen.out_of_office, seen.message_by_user and seen.status_message is not None,
        )  # fmt: skip


# A user's Teams half before anything happened on it: one shared value, and its view
# (every presence worked out for a user without Teams carries it).
NO_TEAMS = TeamsState()
NO_TEAMS_VIEW = NO_TEAMS.view()


@dataclass(frozen=True, slots=True)
class User:
    """The directory data of a user."""

    id: str
    display_name: str
    group: str
    teams_user_id: str | None = None
    email: str | None = None  # UPN or e-mail address
    extensions: tuple[str, ...] = ()  # PBX extensions, e.g. "2101"; unique across users
    numbers: tuple[str, ...] = ()  # phone numbers in E.164, e.g. "+49301234567"; unique
    # Users a directory made: "<source>:<the directory's key>" (issue 12); None: by hand.
    directory_key: str | None = None


@dataclass(frozen=True, slots=True)
class UserState:
    """Everything the hub knows about one user; effective presence derives from it."""

    user: User
    profiles: tuple[Profile, ...] = ()  # own entries of My Profiles, in order
    selection: Selection | None = None
    appointments: tuple[Appointment, ...] = ()
    calls: tuple[Call, ...] = ()  # includes ended calls for a while, so late events are harmless
    meetings: tuple[Meeting, ...] = ()
    own_mode: TeamsSyncMode | None = None  # the user's own teams_sync_mode choice
    teams: TeamsState = NO_TEAMS  # shared while the user has no Teams state of their own
    microphone: MicrophoneUse | None = None
