"""The profile's call forwarding and DnD at the PBX (issue 17, docs/rules.md "PBX
connectors and published presence"): what the PBX should have, and the restore rule,
written out row by row (not read from the module: a change to the table must change
this test too)."""

from __future__ import annotations

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
    MicrophoneUse,
    Profile,
    ProfileTemplate,
    Selection,
    Status,
    User,
    UserState,
)
from presencebridge.core.pbx_features import (
    Feature,
    Held,
    Step,
    decode_held,
    encode_held,
    step,
    wanted,
)
from presencebridge.core.publication import publication

NOW = datetime(2026, 3, 3, 10, 0, tzinfo=UTC)
AGO = NOW - timedelta(minutes=5)
USER = User("alice", "Alice", "hq", extensions=("2101",))
TEAMS = Profile("MS Teams", Status.BUSY, "In Teams", "#5558af", "2199")
FOKUS = Profile("Fokus", Status.DND, "Bitte nicht stören", "#aa0000", "2150")
PAUSE = Profile("Pause", Status.AWAY, "Mittagspause", "#999999")
MICSYNC = ProfileTemplate(MICSYNC_TEMPLATE, Status.BUSY, "", "#ff8800", call_forwarding="2170")


def teams_call(*profiles: Profile) -> UserState:
    call = Appointment(
        TEAMS_CALL_APPOINTMENT, "Teams", None, AGO, NOW + timedelta(hours=1), "Termin",
        AppointmentOrigin.TEAMS, AGO,
    )  # fmt: skip
    return UserState(USER, profiles, appointments=(call,))


def chosen(name: str, at: datetime = AGO) -> UserState:
    return UserState(USER, (TEAMS, FOKUS, PAUSE), selection=Selection(name, at))


PBX_CALL = Call("c1", CallState.CONNECTED, NOW - timedelta(minutes=1), NOW)

WANTED: list[tuple[str, UserState, tuple[ProfileTemplate, ...], str | None, str | None]] = [
    ("nothing chosen", UserState(USER, (TEAMS,)), (), None, None),
    ("a Teams call with the MS Teams profile", teams_call(TEAMS), (), "2199", None),
    ("a Teams call without an MS Teams profile", teams_call(PAUSE), (), None, None),
    ("MS Teams profile but no Teams call", UserState(USER, (TEAMS,)), (), None, None),
    ("a DnD profile with forwarding", chosen("Fokus"), (), "2150", "YES"),
    ("an away profile", chosen("Pause"), (), None, None),
    ("DnD chosen, then a PBX call: DnD and its forwarding stay on",
     UserState(USER, (FOKUS,), selection=Selection("Fokus", AGO), calls=(PBX_CALL,)),
     (), "2150", "YES"),
    ("a PBX call alone forwards nothing",
     UserState(USER, (FOKUS,), calls=(PBX_CALL,)), (), None, None),
    ("a Teams call replaces the chosen profile's forwarding",
     UserState(USER, (TEAMS, FOKUS), selection=Selection("Fokus", AGO - timedelta(hours=1)),
               appointments=teams_call().appointments),
     (), "2199", "YES"),
    ("Microphone Sync's template forwards",
     UserState(USER, (), microphone=MicrophoneUse("zoom", "Zoom Meeting", AGO)),
     (MICSYNC,), "2170", None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("state", "templates", "forward", "dnd"),
    [c[1:] for c in WANTED],
    ids=[c[0] for c in WANTED],
)
def test_what_the_pbx_should_have(
    state: UserState,
    templates: tuple[ProfileTemplate, ...],
    forward: str | None,
    dnd: str | None,
) -> None:
    presence = effective_presence(state, templates, NOW)
    assert wanted(presence) == {Feature.FORWARD: forward, Feature.DND: dnd}
    assert dict(publication(presence, "en").pbx) == {Feature.FORWARD: forward, Feature.DND: dnd}


def test_a_withdrawn_user_wants_nothing() -> None:
    assert wanted(None) == {Feature.FORWARD: None, Feature.DND: None}


H = Held  # (before, written, yielded)
STEPS: list[tuple[str, str | None, Held | None, str | None, Step]] = [
    ("nothing held, nothing wanted", "2100", None, None, Step(False, None, None)),
    ("set: remember the user's own value first", "2100", None, "2199",
     Step(True, "2199", H("2100", "2199"))),
    ("set where the user had none", None, None, "2199", Step(True, "2199", H(None, "2199"))),
    ("an empty value is none", "", None, "2199", Step(True, "2199", H(None, "2199"))),
    ("the PBX has it already: nothing to write", "2199", None, "2199",
     Step(False, "2199", H("2199", "2199"))),
    ("still wanted, unchanged", "2199", H("2100", "2199"), "2199",
     Step(False, "2199", H("2100", "2199"))),
    ("the profile's target changed", "2199", H("2100", "2199"), "2150",
     Step(True, "2150", H("2100", "2150"))),
    ("ends: the user's own value back", "2199", H("2100", "2199"), None,
     Step(True, "2100", None)),
    ("ends: the user had none, the key goes", "2199", H(None, "2199"), None,
     Step(True, None, None)),
    ("the user changed it during: kept, said so", "2198", H("2100", "2199"), "2199",
     Step(False, None, H("2100", "2199", True), True)),
    ("the user removed it during: kept, said so", None, H("2100", "2199"), "2199",
     Step(False, None, H("2100", "2199", True), True)),
    ("yielded: the hub keeps its hands off", "2198", H("2100", "2199", True), "2199",
     Step(False, None, H("2100", "2199", True))),
    ("yielded, and the reason ends: forget, leave the user's value", "2198",
     H("2100", "2199", True), None, Step(False, None, None)),
    ("changed by the user and ends at once: kept, said so", "2198", H("2100", "2199"), None,
     Step(False, None, None, True)),
]  # fmt: skip


@pytest.mark.parametrize(
    ("current", "held", "want", "expected"),
    [c[1:] for c in STEPS],
    ids=[c[0] for c in STEPS],
)
def test_the_restore_rule(
    current: str | None, held: Held | None, want: str | None, expected: Step
) -> None:
    assert step(current, held, want) == expected


def test_a_whole_teams_call_gives_back_exactly_what_the_user_had() -> None:
    pbx: str | None = "2100"
    held: Held | None = None
    for want in ("2199", "2199", None):
        done = step(pbx, held, want)
        pbx = done.value if done.write else pbx
        held = done.held
        assert not done.user_changed
    assert (pbx, held) == ("2100", None)


@pytest.mark.parametrize("held", [H(None, "2199"), H("2100", "2199", True), H("+49 30 1234", None)])
def test_held_survives_the_store(held: Held) -> None:
    assert decode_held(encode_held(held)) == held


@pytest.mark.parametrize("text", [None, "", "garbage", "[]", '{"before": 1}', '{"yielded": 1}'])
def test_anything_else_in_the_store_is_nothing_held(text: str | None) -> None:
    assert decode_held(text) is None
