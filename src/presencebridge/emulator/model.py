"""The presence model the Graph emulator plays, as GRAPH.md describes it.

Pure: no I/O and no clock reads, every time is passed in. One `UserPresence` per
user holds the Teams client's own session, the sessions apps set with
`setPresence`, the user-preferred presence and the status message; `aggregate`
derives what a reader of `/presence` sees at a given moment.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

# What `setPresence` accepts ("Valid pairs only", GRAPH.md).
SESSION_PAIRS = frozenset(
    {
        ("Available", "Available"),
        ("Busy", "InACall"),
        ("Busy", "InAConferenceCall"),
        ("Away", "Away"),
        ("DoNotDisturb", "Presenting"),
    }
)
# What `setUserPreferredPresence` (and a user setting a status by hand) accepts.
PREFERRED_PAIRS = frozenset(
    {
        ("Available", "Available"),
        ("Busy", "Busy"),
        ("DoNotDisturb", "DoNotDisturb"),
        ("BeRightBack", "BeRightBack"),
        ("Away", "Away"),
        ("Offline", "OffWork"),
    }
)
# What Teams shows (GRAPH.md, "What Teams shows"), in GRAPH.md's order: every pair the
# Teams client's own session may hold (the control API's /client). GRAPH.md names
# AvailableIdle, BusyIdle and PresenceUnknown without an activity; the emulator pairs
# each with itself, as Graph reports PresenceUnknown/PresenceUnknown. Offline/Offline
# means Teams is closed or signed out: the client session ends (see `set_client`).
CLIENT_PAIRS = (
    ("Available", "Available"),
    ("Available", "OutOfOffice"),
    ("Busy", "Busy"),
    ("Busy", "InACall"),
    ("Busy", "InAConferenceCall"),
    ("Busy", "InAMeeting"),
    ("DoNotDisturb", "DoNotDisturb"),
    ("DoNotDisturb", "Presenting"),
    ("Away", "Away"),
    ("BeRightBack", "BeRightBack"),
    ("Offline", "OffWork"),
    ("Offline", "Offline"),
    ("AvailableIdle", "AvailableIdle"),
    ("BusyIdle", "BusyIdle"),
    ("PresenceUnknown", "PresenceUnknown"),
)
# Standing among sessions: DoNotDisturb > Busy > Available > Away (GRAPH.md). The idle
# variants stand with their base; BeRightBack, which GRAPH.md does not rank, sits
# between Available and Away. Offline/OffWork and PresenceUnknown (a Teams client may
# hold them) say nothing about being reachable: they stand below everything, so any
# ranked session, an app's included, is shown instead of them.
RANK = {
    "DoNotDisturb": 5,
    "Busy": 4,
    "BusyIdle": 4,
    "Available": 3,
    "AvailableIdle": 3,
    "BeRightBack": 2,
    "Away": 1,
    "Offline": 0,
    "PresenceUnknown": 0,
}
OFFLINE = ("Offline", "Offline")
IN_A_CALL = ("Busy", "InACall")
CLIENT_SESSION_ID = "teams-client"

SESSION_MIN = timedelta(minutes=5)
SESSION_MAX = timedelta(hours=4)
SESSION_DEFAULT = timedelta(minutes=5)
FADE_STEP = timedelta(minutes=5)
PREFERRED_SHORT = timedelta(days=1)  # DoNotDisturb and Busy
PREFERRED_LONG = timedelta(days=7)  # the rest
PREFERRED_MAX = timedelta(days=30)  # GRAPH.md names no bound; a generous one
_DURATION = re.compile(
    r"P(?:(?P<w>\d+)W)?(?:(?P<d>\d+)D)?"
    r"(?:T(?:(?P<h>\d+)H)?(?:(?P<m>\d+)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?"
)


class Invalid(ValueError):
    """A request the model refuses (Graph answers 400)."""


class OutOfRange(Invalid):
    """A well-formed expirationDuration outside PT5M..PT4H."""


class NoSuchSession(LookupError):
    """`clearPresence` for a session the user does not have (Graph answers 404)."""


def parse_duration(text: Any, field_name: str = "expirationDuration") -> timedelta:
    """An ISO 8601 duration such as PT5M, PT1H30M or P1D."""
    if not isinstance(text, str):
        raise Invalid(f"{field_name} must be an ISO 8601 duration such as PT5M")
    match = _DURATION.fullmatch(text.strip().upper())
    if match is None or not any(match.groupdict().values()) or text.strip().endswith("T"):
        raise Invalid(f"{field_name} {text!r} is not an ISO 8601 duration such as PT5M")
    parts = {k: float(v) if v else 0.0 for k, v in match.groupdict().items()}
    return timedelta(
        weeks=parts["w"], days=parts["d"], hours=parts["h"], minutes=parts["m"], seconds=parts["s"]
    )


def _pair(availability: Any, activity: Any, allowed: frozenset[tuple[str, str]], what: str) -> None:
    if not isinstance(availability, str) or not isinstance(activity, str):
        raise Invalid(f"{what}: availability and activity are required strings")
    if (availability, activity) not in allowed:
        valid = ", ".join(f"{a}/{b}" for a, b in sorted(allowed))
        raise Invalid(f"{what}: {availability}/{activity} is not a valid pair (valid: {valid})")


def validate_session_pair(availability: Any, activity: Any) -> None:
    _pair(availability, activity, SESSION_PAIRS, "setPresence")


def validate_client_pair(availability: Any, activity: Any) -> None:
    """A pair of GRAPH.md's "What Teams shows" list; the refusal names the pair."""
    if (availability, activity) in CLIENT_PAIRS:
        return
    pair = f"{availability}/{activity if activity is not None else '(no activity)'}"
    valid = ", ".join(f"{a}/{b}" for a, b in CLIENT_PAIRS)
    raise Invalid(
        f"Teams client: {pair} is not a pair Teams shows (GRAPH.md); valid: {valid}, "
        "or Offline alone (Teams closed)"
    )


def validate_preferred_pair(availability: Any, activity: Any) -> None:
    _pair(availability, activity, PREFERRED_PAIRS, "setUserPreferredPresence")


def session_duration(value: Any) -> timedelta:
    """`setPresence`'s expirationDuration: PT5M..PT4H, PT5M when absent."""
    if value is None:
        return SESSION_DEFAULT
    duration = parse_duration(value)
    if not SESSION_MIN <= duration <= SESSION_MAX:
        raise OutOfRange(f"expirationDuration {value} is outside PT5M..PT4H")
    return duration


def preferred_duration(availability: str, value: Any) -> timedelta:
    """1 day for DoNotDisturb and Busy, 7 days otherwise, unless given."""
    if value is None:
        return PREFERRED_SHORT if availability in ("DoNotDisturb", "Busy") else PREFERRED_LONG
    duration = parse_duration(value)
    if not timedelta(0) < duration <= PREFERRED_MAX:
        raise Invalid(f"expirationDuration {value} is outside PT1S..P30D")
    return duration


@dataclass
class Session:
    """One presence session: the Teams client's own, or one app's (keyed by sessionId)."""

    session_id: str
    availability: str
    activity: str
    set_at: datetime
    expires_at: datetime | None  # None: held until changed (the Teams client)

    def shown(self, now: datetime) -> tuple[str, str] | None:
        """What the session contributes at `now`; None once it has expired.

        An app's Available session times out 5 minutes after its last setPresence and
        fades: Available/AvailableInactive, then Away/Away 5 minutes later, whatever its
        expirationDuration; at its expiry it disappears (Microsoft's "presence:
        setPresence", Timeout, expiration, and keep alive). The Teams client's own
        session (no expiry) stands for the user at the keyboard and does not fade."""
        if self.expires_at is None:
            return self.availability, self.activity
        if now >= self.expires_at:
            return None
        if self.availability != "Available" or now < self.set_at + FADE_STEP:
            return self.availability, self.activity
        if now < self.set_at + 2 * FADE_STEP:
            return "Available", "AvailableInactive"
        return "Away", "Away"

    def moments(self) -> list[datetime]:
        """The times at which `shown` changes."""
        if self.expires_at is None:
            return []
        fades = (
            [self.set_at + k * FADE_STEP for k in (1, 2)]
            if self.availability == "Available"
            else []
        )
        return [m for m in fades if m < self.expires_at] + [self.expires_at]


@dataclass
class Preferred:
    availability: str
    activity: str
    set_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class StatusMessage:
    content: str
    content_type: str
    published_at: datetime
    expires_at: datetime | None
    expiry: dict[str, Any] | None = field(default=None, compare=False, hash=False)

    def to_json(self, own: bool = True) -> dict[str, Any]:
        """`expiryDateTime` and `publishedDateTime` only for the user themself: Graph
        hides them when another user's presence is read (presenceStatusMessage)."""
        return {
            "message": {"content": self.content, "contentType": self.content_type},
            "expiryDateTime": self.expiry if own else None,
            "publishedDateTime": graph_time(self.published_at) if own else None,
        }


@dataclass(frozen=True)
class OutOfOffice:
    """presence.outOfOfficeSettings: read-only in Graph; Teams sets it from Outlook's
    automatic replies, a scheduled out of office or an out-of-office calendar event
    (the emulator's control API plays those)."""

    is_out_of_office: bool = False
    message: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"message": self.message, "isOutOfOffice": self.is_out_of_office}


WORK_LOCATION_TYPES = ("unspecified", "office", "remote", "timeOff")


@dataclass(frozen=True)
class WorkLocation:
    """One layer of presence.workLocation (manual or automatic)."""

    work_location_type: str
    place_id: str | None = None


def work_location_json(
    manual: WorkLocation | None, automatic: WorkLocation | None
) -> dict[str, Any]:
    """userWorkLocation: the manual layer beats the automatic one; none: unspecified."""
    for source, layer in (("manual", manual), ("automatic", automatic)):
        if layer is not None:
            return {
                "workLocationType": layer.work_location_type,
                "source": source,
                "placeId": layer.place_id,
            }
    return {"workLocationType": "unspecified", "source": "none", "placeId": None}


@dataclass(frozen=True)
class Presence:
    """What a reader sees."""

    availability: str
    activity: str
    status_message: StatusMessage | None = None
    out_of_office: OutOfOffice = OutOfOffice()
    manual_location: WorkLocation | None = None
    automatic_location: WorkLocation | None = None


def graph_time(moment: datetime) -> str:
    """Graph's timestamp format: seven fractional digits and Z."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def presence_json(
    user_id: str, presence: Presence, sequence: str, own: bool = True
) -> dict[str, Any]:
    """The presence resource; `own`: read by the user themself (delegated), who alone
    sees the status message's expiry and publication time."""
    message = presence.status_message
    return {
        "id": user_id,
        "availability": presence.availability,
        "activity": presence.activity,
        "statusMessage": None if message is None else message.to_json(own),
        "outOfOfficeSettings": presence.out_of_office.to_json(),
        "workLocation": work_location_json(presence.manual_location, presence.automatic_location),
        "sequenceNumber": sequence,
    }


class Sequencer:
    """Lexicographically sortable, strictly growing version stamps.

    Based on wall time (not the emulator clock), so stamps keep growing across an
    emulator restart and a reset; a consumer that keeps the last stamp it saw is
    never fooled into discarding a newer state.
    """

    def __init__(self, source: Callable[[], int] = time.time_ns) -> None:
        self._source = source
        self._last = 0

    def __call__(self) -> str:
        self._last = max(self._last + 1, self._source())
        return f"{self._last:020d}"


def _standing(session: Session, shown: tuple[str, str]) -> tuple[int, datetime, bool]:
    # The session with the highest-ranked availability is shown, with its own activity.
    # GRAPH.md ranks availabilities only (DoNotDisturb > Busy > Available > Away) and is
    # silent on equal ones, so ties go to the most recently set session: the latest
    # change is the freshest news about the user (the hub's own precedence table breaks
    # ties the same way). At the very same instant an app session beats the client, so
    # the outcome does not depend on dict order.
    #
    # Example: the Teams client is Busy/InAConferenceCall and an app sets Busy/InACall
    # afterwards: readers see Busy/InACall. If the client changes to another Busy pair
    # later, that shows; the app's next setPresence (its keep-alive re-send included,
    # since every setPresence restarts the session) takes the activity back. A faded
    # session (Available/AvailableInactive, then Away/Away) keeps the time it was set.
    # BusyIdle and AvailableIdle tie with Busy and Available in the same way.
    return RANK.get(shown[0], 0), session.set_at, session.session_id != CLIENT_SESSION_ID


class UserPresence:
    """One user's presence sessions, preferred presence and status message."""

    def __init__(self, now: datetime, sequencer: Callable[[], str]) -> None:
        self._sequencer = sequencer
        # A new user has Teams running: its client session is Available.
        self.client: Session | None = Session(
            CLIENT_SESSION_ID, "Available", "Available", now, None
        )
        self.sessions: dict[str, Session] = {}
        self.preferred: Preferred | None = None
        self.status_message: StatusMessage | None = None
        self.out_of_office = OutOfOffice()
        self.manual_location: WorkLocation | None = None
        self.automatic_location: WorkLocation | None = None
        self.shown = self.aggregate(now)
        self.sequence = sequencer()

    # -- writes (each prunes what time has removed first) --------------------------------

    def set_session(
        self, session_id: str, availability: str, activity: str, duration: timedelta, now: datetime
    ) -> None:
        validate_session_pair(availability, activity)
        if not SESSION_MIN <= duration <= SESSION_MAX:
            raise Invalid("expirationDuration is outside PT5M..PT4H")
        self.prune(now)
        self.sessions[session_id] = Session(session_id, availability, activity, now, now + duration)

    def clear_session(self, session_id: str, now: datetime) -> None:
        self.prune(now)
        if self.sessions.pop(session_id, None) is None:
            raise NoSuchSession(session_id)

    def set_client(self, availability: str, activity: str | None, now: datetime) -> None:
        """The Teams client's own state, one of `CLIENT_PAIRS`. Offline/Offline (or
        Offline without an activity) means Teams closed or signed out: the client
        session ends, and the user shows Offline/Offline unless another session exists."""
        if availability == "Offline" and activity in (None, "Offline"):
            self.client = None
            return
        validate_client_pair(availability, activity)
        assert activity is not None
        self.client = Session(CLIENT_SESSION_ID, availability, activity, now, None)

    def set_preferred(
        self, availability: str, activity: str, duration: timedelta, now: datetime
    ) -> None:
        validate_preferred_pair(availability, activity)
        self.prune(now)
        self.preferred = Preferred(availability, activity, now, now + duration)

    def clear_preferred(self, now: datetime) -> None:
        self.prune(now)
        self.preferred = None

    def set_status_message(self, message: StatusMessage | None, now: datetime) -> None:
        self.prune(now)
        self.status_message = message

    def set_out_of_office(self, settings: OutOfOffice, now: datetime) -> None:
        self.prune(now)
        self.out_of_office = settings

    def set_location(self, layer: str, location: WorkLocation | None, now: datetime) -> None:
        """`layer` "manual" or "automatic"; None clears it."""
        self.prune(now)
        if layer == "manual":
            self.manual_location = location
        else:
            self.automatic_location = location

    # -- reading -------------------------------------------------------------------------

    def all_sessions(self) -> list[Session]:
        return ([self.client] if self.client else []) + list(self.sessions.values())

    def aggregate(self, now: datetime) -> Presence:
        message = self.status_message
        if message is not None and message.expires_at is not None and now >= message.expires_at:
            message = None
        pair = self._pair(now)
        return Presence(
            *pair, message, self.out_of_office, self.manual_location, self.automatic_location
        )

    def _pair(self, now: datetime) -> tuple[str, str]:
        live = [(s, shown) for s in self.all_sessions() if (shown := s.shown(now)) is not None]
        if not live:
            # The preferred presence takes effect only while a session exists.
            return OFFLINE
        preferred = self.preferred
        if preferred is not None and now < preferred.expires_at:
            if preferred.availability in ("Available", "Busy") and any(
                shown == IN_A_CALL for _, shown in live
            ):
                return IN_A_CALL
            return preferred.availability, preferred.activity
        _, best = max(live, key=lambda item: _standing(*item))
        return best

    def prune(self, now: datetime) -> None:
        """Forget what has expired for good (expired sessions, old preferences)."""
        self.sessions = {k: s for k, s in self.sessions.items() if s.shown(now) is not None}
        if self.preferred is not None and now >= self.preferred.expires_at:
            self.preferred = None
        message = self.status_message
        if message is not None and message.expires_at is not None and now >= message.expires_at:
            self.status_message = None

    def refresh(self, now: datetime) -> bool:
        """Bring `shown` and `sequence` up to `now`; True if what readers see changed."""
        self.prune(now)
        presence = self.aggregate(now)
        if presence == self.shown:
            return False
        self.shown = presence
        self.sequence = self._sequencer()
        return True

    def next_deadline(self, now: datetime) -> datetime | None:
        """The next moment after `now` at which time alone may change what is shown."""
        moments = [m for s in self.all_sessions() for m in s.moments()]
        if self.preferred is not None:
            moments.append(self.preferred.expires_at)
        if self.status_message is not None and self.status_message.expires_at is not None:
            moments.append(self.status_message.expires_at)
        future = [m for m in moments if m > now]
        return min(future) if future else None

    def describe(self, now: datetime) -> dict[str, Any]:
        """The full state, for the control API."""

        def session(s: Session) -> dict[str, Any]:
            shown = s.shown(now)
            gone = s.moments()[-1] if s.moments() else None
            return {
                "sessionId": s.session_id,
                "availability": s.availability,
                "activity": s.activity,
                "setAt": graph_time(s.set_at),
                "expiresAt": None if s.expires_at is None else graph_time(s.expires_at),
                "disappearsAt": None if gone is None else graph_time(gone),
                "shown": None
                if shown is None
                else {"availability": shown[0], "activity": shown[1]},
            }

        preferred = self.preferred
        return {
            "client": None if self.client is None else session(self.client),
            "sessions": [session(s) for s in self.sessions.values()],
            "outOfOffice": self.out_of_office.to_json(),
            "statusMessage": None
            if self.status_message is None
            else self.status_message.to_json(own=True),
            "preferred": None
            if preferred is None
            else {
                "availability": preferred.availability,
                "activity": preferred.activity,
                "setAt": graph_time(preferred.set_at),
                "expiresAt": graph_time(preferred.expires_at),
                "inEffect": any(s.shown(now) for s in self.all_sessions()),
            },
        }
