"""The precedence table of effective presence (SPEC §2), case by case.

Every case builds a user's state with the public constructors of the model and
states what the user (and everyone watching them) must see at `NOW`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from presencebridge.core.effective import effective_presence, my_profiles
from presencebridge.core.model import (
    BUILTIN_APPOINTMENT_PROFILE,
    SYNC_HARD_END,
    Appointment,
    AppointmentOrigin,
    Call,
    CallState,
    Meeting,
    Profile,
    ProfileSource,
    ProfileTemplate,
    Selection,
    Status,
    Telephony,
    TelephonySource,
    User,
    UserState,
)
from presencebridge.core.texts import Text

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
NOW = T0 + timedelta(hours=1)
USER = User("alice", "Alice Example", "berlin")


def at(minutes: int) -> datetime:
    """A moment relative to `NOW` (negative: in the past)."""
    return NOW + timedelta(minutes=minutes)


FOCUS = Profile("Focus", Status.DND, "Focus time", "#aa0000", "voicemail")
LUNCH = Profile("Lunch", Status.AWAY, "At lunch", "#999999")
DESK = Profile("Desk", Status.AVAILABLE, "At my desk", "#00aa00")
MEETING_ROOM = Profile("In a meeting", Status.BUSY, "In a meeting", "#ffaa00", "+4930123")
SIGNED_OFF = Profile("Signed off", Status.OFFLINE, "Signed off", "#333333")
OWN = (FOCUS, LUNCH, DESK, MEETING_ROOM, SIGNED_OFF)

MS_TEAMS = ProfileTemplate("MS Teams", Status.BUSY, "In a Teams call", "#5b5fc7", True, "voicemail")
QUIET = ProfileTemplate("Quiet", Status.DND, "Quiet hours", "#111111")
RETIRED = ProfileTemplate("Retired", Status.AWAY, "Old template", "#222222", active=False)
TEMPLATES = (MS_TEAMS, QUIET, RETIRED)


def state(
    *,
    selection: tuple[str, int] | None = None,
    appointments: tuple[Appointment, ...] = (),
    calls: tuple[Call, ...] = (),
    meetings: tuple[Meeting, ...] = (),
    profiles: tuple[Profile, ...] = OWN,
) -> UserState:
    return UserState(
        user=USER,
        profiles=profiles,
        selection=None if selection is None else Selection(selection[0], at(selection[1])),
        appointments=appointments,
        calls=calls,
        meetings=meetings,
    )


def appointment(
    start: int,
    end: int,
    *,
    profile: str = BUILTIN_APPOINTMENT_PROFILE,
    subject: str = "Weekly sync",
    origin: AppointmentOrigin = AppointmentOrigin.MANUAL,
    hard_end: int | None = None,
    ident: str = "a1",
) -> Appointment:
    return Appointment(
        id=ident,
        subject=subject,
        color=None,
        start=at(start),
        end=at(end),
        profile=profile,
        origin=origin,
        created_at=at(start - 5),
        hard_end=None if hard_end is None else at(hard_end),
    )


def call(call_state: CallState, since: int, call_id: str = "c1") -> Call:
    return Call(call_id, call_state, at(since), at(since - 1))


@dataclass(frozen=True)
class Expect:
    status: Status
    text: str
    profile: str | None = None
    telephony: Telephony = Telephony.IDLE
    telephony_source: TelephonySource | None = None
    call_forwarding: str | None = None


@dataclass(frozen=True)
class Case:
    description: str
    state: UserState
    expect: Expect
    templates: tuple[ProfileTemplate, ...] = TEMPLATES


AVAILABLE = Expect(Status.AVAILABLE, Text.AVAILABLE)
PBX_CALL = Expect(Status.BUSY, Text.ON_THE_PHONE, None, Telephony.ON_THE_PHONE, TelephonySource.PBX)
FOCUSED = Expect(Status.DND, "Focus time", "Focus", call_forwarding="voicemail")
TERMIN = Expect(Status.BUSY, "Weekly sync", BUILTIN_APPOINTMENT_PROFILE)

CASES: list[Case] = [
    Case("nothing at all: available", state(), AVAILABLE),
    Case("nothing at all, no group templates: available", state(), AVAILABLE, templates=()),
    Case("a dnd profile selected: dnd", state(selection=("Focus", -30)), FOCUSED),
    Case(
        "an away profile selected: away",
        state(selection=("Lunch", -30)),
        Expect(Status.AWAY, "At lunch", "Lunch"),
    ),
    Case(
        "a busy profile selected: busy, with its call forwarding",
        state(selection=("In a meeting", -30)),
        Expect(Status.BUSY, "In a meeting", "In a meeting", call_forwarding="+4930123"),
    ),
    Case(
        "an offline profile selected: offline",
        state(selection=("Signed off", -30)),
        Expect(Status.OFFLINE, "Signed off", "Signed off"),
    ),
    Case(
        "a central template selected: its status and call forwarding",
        state(selection=("MS Teams", -30)),
        Expect(Status.BUSY, "In a Teams call", "MS Teams", call_forwarding="voicemail"),
    ),
    Case(
        "the built-in Termin selected by hand: busy with the built-in text",
        state(selection=(BUILTIN_APPOINTMENT_PROFILE, -30)),
        Expect(Status.BUSY, Text.APPOINTMENT, BUILTIN_APPOINTMENT_PROFILE),
    ),
    Case(
        "a selection of a profile that no longer exists is ignored",
        state(selection=("Deleted profile", -30)),
        AVAILABLE,
    ),
    Case(
        "a selection of an inactive template is ignored",
        state(selection=("Retired", -30)),
        AVAILABLE,
    ),
    Case(
        "a connected PBX call: on the phone",
        state(calls=(call(CallState.CONNECTED, -5),)),
        PBX_CALL,
    ),
    Case(
        "a connected PBX call beats an earlier busy selection",
        state(selection=("In a meeting", -30), calls=(call(CallState.CONNECTED, -5),)),
        PBX_CALL,
    ),
    Case(
        "a connected PBX call beats a later busy selection (on the phone outranks busy)",
        state(selection=("In a meeting", -1), calls=(call(CallState.CONNECTED, -5),)),
        PBX_CALL,
    ),
    Case(
        "a dnd selection made after the call connected wins",
        state(selection=("Focus", -2), calls=(call(CallState.CONNECTED, -5),)),
        Expect(
            Status.DND,
            "Focus time",
            "Focus",
            Telephony.ON_THE_PHONE,
            TelephonySource.PBX,
            "voicemail",
        ),
    ),
    Case(
        "a call connected after the dnd selection wins",
        state(selection=("Focus", -20), calls=(call(CallState.CONNECTED, -5),)),
        PBX_CALL,
    ),
    Case(
        "a call that rang before the dnd selection but connected after it wins",
        state(
            selection=("Focus", -10),
            calls=(Call("c1", CallState.CONNECTED, at(-5), at(-15)),),
        ),
        PBX_CALL,
    ),
    Case(
        "ringing alone keeps the status; telephony shows ringing",
        state(calls=(call(CallState.RINGING, -1),)),
        Expect(Status.AVAILABLE, Text.AVAILABLE, None, Telephony.RINGING, TelephonySource.PBX),
    ),
    Case(
        "ringing during dnd keeps dnd; telephony shows ringing",
        state(selection=("Focus", -30), calls=(call(CallState.RINGING, -1),)),
        Expect(
            Status.DND, "Focus time", "Focus", Telephony.RINGING, TelephonySource.PBX, "voicemail"
        ),
    ),
    Case(
        "one call connected and another ringing: on the phone",
        state(calls=(call(CallState.CONNECTED, -5, "c1"), call(CallState.RINGING, -1, "c2"))),
        PBX_CALL,
    ),
    Case("an ended call changes nothing", state(calls=(call(CallState.ENDED, -1),)), AVAILABLE),
    Case(
        "an ended call leaves the selected profile in place",
        state(selection=("Lunch", -30), calls=(call(CallState.ENDED, -1),)),
        Expect(Status.AWAY, "At lunch", "Lunch"),
    ),
    Case(
        "an active appointment (built-in Termin) is busy with its subject",
        state(appointments=(appointment(-10, 20),)),
        TERMIN,
    ),
    Case(
        "an active appointment beats an earlier manual available selection",
        state(selection=("Desk", -30), appointments=(appointment(-10, 20),)),
        TERMIN,
    ),
    Case(
        "an active appointment beats a later manual available selection",
        state(selection=("Desk", -1), appointments=(appointment(-10, 20),)),
        TERMIN,
    ),
    Case(
        "an active appointment beats a later away selection",
        state(selection=("Lunch", -1), appointments=(appointment(-10, 20),)),
        TERMIN,
    ),
    Case(
        "a dnd selection beats an active appointment",
        state(selection=("Focus", -30), appointments=(appointment(-10, 20),)),
        FOCUSED,
    ),
    Case(
        "an appointment that starts right now is active",
        state(selection=("Desk", -30), appointments=(appointment(0, 20),)),
        TERMIN,
    ),
    Case(
        "an appointment not yet started does not count",
        state(selection=("Desk", -30), appointments=(appointment(1, 20),)),
        Expect(Status.AVAILABLE, "At my desk", "Desk"),
    ),
    Case(
        "an appointment that has ended does not count",
        state(selection=("Desk", -90), appointments=(appointment(-60, -1),)),
        Expect(Status.AVAILABLE, "At my desk", "Desk"),
    ),
    Case(
        "an appointment ending right now does not count",
        state(appointments=(appointment(-60, 0),)),
        AVAILABLE,
    ),
    Case(
        "a sync appointment past its hard end does not count, whatever its end says",
        state(
            appointments=(
                appointment(
                    -13 * 60,
                    24 * 60,
                    profile="MS Teams",
                    origin=AppointmentOrigin.TEAMS,
                    hard_end=-60,
                ),
            )
        ),
        AVAILABLE,
    ),
    Case(
        "an active appointment with a template profile reports its call forwarding",
        state(
            appointments=(
                appointment(
                    -10,
                    600,
                    profile="MS Teams",
                    subject="On the phone (MS Teams)",
                    origin=AppointmentOrigin.TEAMS,
                    hard_end=-10 + 12 * 60,
                ),
            )
        ),
        Expect(Status.BUSY, "On the phone (MS Teams)", "MS Teams", call_forwarding="voicemail"),
    ),
    Case(
        "an active appointment with a dnd profile beats a later busy selection",
        state(
            selection=("In a meeting", -1),
            appointments=(appointment(-10, 20, profile="Quiet", subject="Deep work"),),
        ),
        Expect(Status.DND, "Deep work", "Quiet"),
    ),
    Case(
        "equal standing: an away selection made after an available appointment began wins",
        state(
            selection=("Lunch", -5),
            appointments=(appointment(-10, 20, profile="Desk", subject="Open office"),),
        ),
        Expect(Status.AWAY, "At lunch", "Lunch"),
    ),
    Case(
        "equal standing: an available appointment that began after the away selection wins",
        state(
            selection=("Lunch", -30),
            appointments=(appointment(-10, 20, profile="Desk", subject="Open office"),),
        ),
        Expect(Status.AVAILABLE, "Open office", "Desk"),
    ),
    Case(
        "equal standing: the most recent of two active busy appointments wins",
        state(
            appointments=(
                appointment(-30, 30, ident="early", subject="Early"),
                appointment(-10, 30, ident="late", subject="Late", profile="In a meeting"),
            )
        ),
        Expect(Status.BUSY, "Late", "In a meeting", call_forwarding="+4930123"),
    ),
    Case(
        "a connected call beats an active busy appointment",
        state(appointments=(appointment(-10, 20),), calls=(call(CallState.CONNECTED, -20),)),
        PBX_CALL,
    ),
    Case(
        "a joined meeting with audio: on the phone from the meeting",
        state(meetings=(Meeting("m1", at(-3), screen_sharing=False, audio=True),)),
        Expect(
            Status.BUSY,
            Text.ON_THE_PHONE_MEETING,
            None,
            Telephony.ON_THE_PHONE,
            TelephonySource.MEETING,
        ),
    ),
    Case(
        "a joined meeting with audio and screen sharing: on the phone from the meeting",
        state(meetings=(Meeting("m1", at(-3), screen_sharing=True, audio=True),)),
        Expect(
            Status.BUSY,
            Text.ON_THE_PHONE_MEETING,
            None,
            Telephony.ON_THE_PHONE,
            TelephonySource.MEETING,
        ),
    ),
    Case(
        "screen sharing only (no audio) changes nothing",
        state(meetings=(Meeting("m1", at(-3), screen_sharing=True, audio=False),)),
        AVAILABLE,
    ),
    Case(
        "screen sharing only keeps the selected away profile",
        state(
            selection=("Lunch", -30),
            meetings=(Meeting("m1", at(-3), screen_sharing=True, audio=False),),
        ),
        Expect(Status.AWAY, "At lunch", "Lunch"),
    ),
    Case(
        "a PBX call during a meeting: the PBX is named as the source",
        state(
            calls=(call(CallState.CONNECTED, -1),),
            meetings=(Meeting("m1", at(-3), screen_sharing=False, audio=True),),
        ),
        PBX_CALL,
    ),
    Case(
        "an own profile shadows the group template of the same name",
        state(
            selection=("MS Teams", -30),
            profiles=(Profile("MS Teams", Status.DND, "Mine", "#010101", "+4940999"),),
        ),
        Expect(Status.DND, "Mine", "MS Teams", call_forwarding="+4940999"),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.description for c in CASES])
def test_precedence_table(case: Case) -> None:
    presence = effective_presence(case.state, case.templates, NOW)
    seen = Expect(
        presence.status,
        presence.text,
        presence.profile,
        presence.telephony,
        presence.telephony_source,
        presence.call_forwarding,
    )
    assert seen == case.expect


def test_presence_lists_the_appointments_in_start_order() -> None:
    later = appointment(30, 60, ident="later")
    sooner = appointment(-10, 20, ident="sooner")
    past_due = appointment(-60, -30, ident="past")
    presence = effective_presence(state(appointments=(later, sooner, past_due)), (), NOW)
    assert [a.id for a in presence.appointments] == ["past", "sooner", "later"]


def test_appointment_colour_overrides_the_profile_colour() -> None:
    coloured = Appointment(
        "a1", "Dentist", "#123456", at(-5), at(30), "Termin", AppointmentOrigin.MANUAL, at(-60)
    )
    plain = appointment(-5, 30)
    assert effective_presence(state(appointments=(coloured,)), (), NOW).color == "#123456"
    termin = next(p for p in my_profiles(state(), ()) if p.name == BUILTIN_APPOINTMENT_PROFILE)
    assert effective_presence(state(appointments=(plain,)), (), NOW).color == termin.color


def test_my_profiles_orders_own_then_active_templates_then_builtin() -> None:
    names = [p.name for p in my_profiles(state(), TEMPLATES)]
    assert names == [
        "Focus",
        "Lunch",
        "Desk",
        "In a meeting",
        "Signed off",
        "MS Teams",
        "Quiet",
        BUILTIN_APPOINTMENT_PROFILE,
    ]


def test_my_profiles_marks_where_each_entry_comes_from() -> None:
    sources = {p.name: p.source for p in my_profiles(state(), TEMPLATES)}
    assert sources["Focus"] is ProfileSource.OWN
    assert sources["MS Teams"] is ProfileSource.TEMPLATE
    assert sources[BUILTIN_APPOINTMENT_PROFILE] is ProfileSource.BUILTIN


def test_inactive_templates_are_not_in_my_profiles() -> None:
    assert "Retired" not in [p.name for p in my_profiles(state(), TEMPLATES)]
    reactivated = ProfileTemplate("Retired", Status.AWAY, "Old template", "#222222", active=True)
    assert "Retired" in [p.name for p in my_profiles(state(), (reactivated,))]


def test_own_profile_shadows_a_template_of_the_same_name() -> None:
    mine = Profile("Quiet", Status.BUSY, "My quiet", "#0f0f0f")
    profiles = my_profiles(state(profiles=(mine,)), TEMPLATES)
    quiet = [p for p in profiles if p.name == "Quiet"]
    assert quiet == [mine]
    assert [p.name for p in profiles] == ["Quiet", "MS Teams", BUILTIN_APPOINTMENT_PROFILE]


def test_builtin_termin_is_always_present_and_busy() -> None:
    profiles = my_profiles(state(profiles=()), ())
    assert [(p.name, p.status) for p in profiles] == [(BUILTIN_APPOINTMENT_PROFILE, Status.BUSY)]


def test_teams_appointment_expires_at_its_hard_end_in_presence() -> None:
    created = at(-60)
    teams = Appointment(
        "t1",
        "On the phone (MS Teams)",
        None,
        created,
        created + timedelta(days=2),
        "MS Teams",
        AppointmentOrigin.TEAMS,
        created,
        created + SYNC_HARD_END,
    )
    user = state(appointments=(teams,))
    before = effective_presence(user, TEMPLATES, created + SYNC_HARD_END - timedelta(seconds=1))
    after = effective_presence(user, TEMPLATES, created + SYNC_HARD_END)
    assert (before.status, before.profile) == (Status.BUSY, "MS Teams")
    assert (after.status, after.profile) == (Status.AVAILABLE, None)
