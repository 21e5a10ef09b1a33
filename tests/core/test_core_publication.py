"""The outward presence table (issue 13, docs/rules.md "Publishing presence"), case by
case: what a SIP phone's BLF key, a SIP presence watcher, an XMPP contact and an
Asterisk hint show for a user, from the user's state.

The rows are written out literally here, not read from `OUTWARD`: a change to the
table must change this test too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from presencebridge.core.effective import (
    MICSYNC_TEMPLATE,
    TEAMS_CALL_APPOINTMENT,
    effective_presence,
)
from presencebridge.core.model import (
    Appointment,
    AppointmentOrigin,
    Call,
    CallState,
    Meeting,
    MicrophoneUse,
    Profile,
    ProfileTemplate,
    Selection,
    Status,
    User,
    UserState,
)
from presencebridge.core.publication import OUTWARD, Situation, publication

NOW = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)
AGO = NOW - timedelta(minutes=5)
USER = User("alice", "Alice", "hq", extensions=("2101",))
PROFILES = (
    Profile("Fokus", Status.DND, "Bitte nicht stören", "#aa0000"),
    Profile("Pause", Status.AWAY, "Mittagspause", "#999999"),
    Profile("Abgemeldet", Status.OFFLINE, "Abgemeldet", "#333333"),
    Profile("Besprechung", Status.BUSY, "In einer Besprechung", "#ffaa00"),
)
TEMPLATES = (ProfileTemplate(MICSYNC_TEMPLATE, Status.BUSY, "", "#ff8800"),)


def chosen(name: str) -> UserState:
    return UserState(USER, PROFILES, selection=Selection(name, AGO))


def teams_call() -> UserState:
    call = Appointment(
        TEAMS_CALL_APPOINTMENT, "Teams", None, AGO, NOW + timedelta(hours=1), "Termin",
        AppointmentOrigin.TEAMS, AGO,
    )  # fmt: skip
    return UserState(USER, PROFILES, appointments=(call,))


@dataclass(frozen=True)
class Row:
    situation: Situation
    basic: str
    activity: str | None
    dialog: str
    xmpp: str
    device: str
    note_de: str
    note_en: str


CASES: list[tuple[str, UserState, Row]] = [
    ("nothing chosen", UserState(USER, PROFILES),
     Row(Situation.AVAILABLE, "open", None, "terminated", "", "NOT_INUSE",
         "Verfügbar", "Available")),
    ("a Teams call", teams_call(),
     Row(Situation.HUB_CALL, "open", "on-the-phone", "confirmed", "dnd", "INUSE",
         "Am Telefon (MS Teams)", "On the phone (MS Teams)")),
    ("an audio meeting", UserState(USER, PROFILES, meetings=(Meeting("m1", AGO, False),)),
     Row(Situation.HUB_CALL, "open", "on-the-phone", "confirmed", "dnd", "INUSE",
         "Am Telefon (Meeting)", "On the phone (meeting)")),
    ("Zoom holds the microphone",
     UserState(USER, PROFILES, microphone=MicrophoneUse("zoom", "Zoom Meeting", AGO)),
     Row(Situation.HUB_CALL, "open", "on-the-phone", "confirmed", "dnd", "INUSE",
         "Zoom Meeting", "Zoom Meeting")),
    ("a PBX call: the PBX shows its own dialog",
     UserState(USER, PROFILES, calls=(Call("c1", CallState.CONNECTED, AGO, AGO),)),
     Row(Situation.PBX_CALL, "open", "on-the-phone", "terminated", "dnd", "NOT_INUSE",
         "Am Telefon", "On the phone")),
    ("a PBX call ringing is not yet a call",
     UserState(USER, PROFILES, calls=(Call("c1", CallState.RINGING, AGO, AGO),)),
     Row(Situation.AVAILABLE, "open", None, "terminated", "", "NOT_INUSE",
         "Verfügbar", "Available")),
    ("DnD chosen", chosen("Fokus"),
     Row(Situation.DND, "open", "busy", "terminated", "dnd", "BUSY",
         "Bitte nicht stören", "Bitte nicht stören")),
    ("busy chosen", chosen("Besprechung"),
     Row(Situation.BUSY, "open", "busy", "terminated", "dnd", "NOT_INUSE",
         "In einer Besprechung", "In einer Besprechung")),
    ("away chosen", chosen("Pause"),
     Row(Situation.AWAY, "open", "away", "terminated", "away", "NOT_INUSE",
         "Mittagspause", "Mittagspause")),
    ("offline chosen", chosen("Abgemeldet"),
     Row(Situation.OFFLINE, "closed", None, "terminated", "unavailable", "UNAVAILABLE",
         "Abgemeldet", "Abgemeldet")),
]  # fmt: skip


@pytest.mark.parametrize(("state", "row"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_what_each_outside_system_shows(state: UserState, row: Row) -> None:
    presence = effective_presence(state, TEMPLATES, NOW)
    german = publication(presence, "de")
    assert german.situation is row.situation
    shown = german.outward
    assert (shown.basic, shown.activity, shown.dialog, shown.xmpp, shown.device) == (
        row.basic, row.activity, row.dialog, row.xmpp, row.device,
    )  # fmt: skip
    assert german.note == row.note_de
    assert publication(presence, "en").note == row.note_en


def test_every_situation_has_a_row() -> None:
    assert set(OUTWARD) == set(Situation)
