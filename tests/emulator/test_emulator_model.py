"""The pure presence model against GRAPH.md, on a fake timeline."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from presencebridge.emulator import model
from presencebridge.emulator.model import Invalid, NoSuchSession, Sequencer, UserPresence

T0 = datetime(2025, 3, 3, 8, 0, tzinfo=UTC)
APP = "app-session"


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


def counter() -> Sequencer:
    ticks = itertools.count(1)
    return Sequencer(lambda: next(ticks))


def user(client: bool = True) -> UserPresence:
    presence = UserPresence(T0, counter())
    if not client:
        presence.set_client("Offline", None, T0)
        presence.refresh(T0)
    return presence


def seen(presence: UserPresence, at: datetime) -> tuple[str, str]:
    shown = presence.aggregate(at)
    return shown.availability, shown.activity


@pytest.mark.parametrize("pair", sorted(model.SESSION_PAIRS))
def test_every_valid_session_pair_is_shown(pair: tuple[str, str]) -> None:
    presence = user(client=False)
    presence.set_session(APP, *pair, minutes(5), T0)
    assert seen(presence, T0) == pair


@pytest.mark.parametrize(
    "pair",
    [
        ("Busy", "Busy"),
        ("DoNotDisturb", "DoNotDisturb"),
        ("Available", "InACall"),
        ("BeRightBack", "BeRightBack"),
        ("Offline", "OffWork"),
        ("Away", "Presenting"),
        ("available", "available"),
    ],
)
def test_other_session_pairs_are_refused(pair: tuple[str, str]) -> None:
    with pytest.raises(Invalid, match="not a valid pair"):
        model.validate_session_pair(*pair)


@pytest.mark.parametrize("pair", sorted(model.PREFERRED_PAIRS))
def test_preferred_pairs_are_accepted(pair: tuple[str, str]) -> None:
    model.validate_preferred_pair(*pair)


@pytest.mark.parametrize(
    "pair", [("Busy", "InACall"), ("DoNotDisturb", "Presenting"), ("Offline", "Offline")]
)
def test_other_preferred_pairs_are_refused(pair: tuple[str, str]) -> None:
    with pytest.raises(Invalid):
        model.validate_preferred_pair(*pair)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, minutes(5)),
        ("PT5M", minutes(5)),
        ("PT4H", timedelta(hours=4)),
        ("PT1H30M", minutes(90)),
        ("PT300S", minutes(5)),
    ],
)
def test_session_durations_within_bounds(text: str | None, expected: timedelta) -> None:
    assert model.session_duration(text) == expected


@pytest.mark.parametrize("text", ["PT4M59S", "PT4H1M", "P1D", "PT0S", "5 minutes", "PT", 300])
def test_session_durations_outside_bounds_are_refused(text: object) -> None:
    with pytest.raises(Invalid):
        model.session_duration(text)


def test_a_busy_session_disappears_at_expiry() -> None:
    presence = user(client=False)
    presence.set_session(APP, "Busy", "InACall", minutes(5), T0)
    assert seen(presence, T0 + minutes(5) - timedelta(seconds=1)) == ("Busy", "InACall")
    assert seen(presence, T0 + minutes(5)) == ("Offline", "Offline")
    presence.refresh(T0 + minutes(5))
    assert presence.sessions == {}


def test_an_expired_session_leaves_the_teams_client_showing() -> None:
    presence = user()
    presence.set_session(APP, "DoNotDisturb", "Presenting", minutes(10), T0)
    assert seen(presence, T0 + minutes(9)) == ("DoNotDisturb", "Presenting")
    assert seen(presence, T0 + minutes(10)) == ("Available", "Available")


def test_an_available_session_fades_then_disappears() -> None:
    # Microsoft's setPresence: an Available session times out 5 minutes after the last
    # setPresence (Available/AvailableInactive), then Away/Away 5 minutes later, whatever
    # its expirationDuration; at its expiry it is gone.
    presence = user(client=False)
    presence.set_session(APP, "Available", "Available", minutes(15), T0)
    timeline = [
        (0, ("Available", "Available")),
        (4.9, ("Available", "Available")),
        (5, ("Available", "AvailableInactive")),
        (9.9, ("Available", "AvailableInactive")),
        (10, ("Away", "Away")),
        (14.9, ("Away", "Away")),
        (15, ("Offline", "Offline")),
    ]
    for at, expected in timeline:
        assert seen(presence, T0 + minutes(at)) == expected, at
    assert presence.next_deadline(T0) == T0 + minutes(5)
    assert presence.next_deadline(T0 + minutes(5)) == T0 + minutes(10)
    assert presence.next_deadline(T0 + minutes(14)) == T0 + minutes(15)
    assert presence.next_deadline(T0 + minutes(15)) is None


def test_a_long_available_session_fades_without_a_refresh_and_recovers_with_one() -> None:
    presence = user(client=False)
    presence.set_session(APP, "Available", "Available", minutes(240), T0)
    assert seen(presence, T0 + minutes(6)) == ("Available", "AvailableInactive")
    assert seen(presence, T0 + minutes(60)) == ("Away", "Away")
    presence.set_session(APP, "Available", "Available", minutes(240), T0 + minutes(60))
    assert seen(presence, T0 + minutes(64)) == ("Available", "Available")
    assert seen(presence, T0 + minutes(240)) == ("Away", "Away")  # its first expiry is gone
    assert seen(presence, T0 + minutes(300)) == ("Offline", "Offline")


def test_an_available_session_of_five_minutes_expires_before_it_fades() -> None:
    presence = user(client=False)
    presence.set_session(APP, "Available", "Available", minutes(5), T0)
    assert seen(presence, T0 + minutes(4.9)) == ("Available", "Available")
    assert seen(presence, T0 + minutes(5)) == ("Offline", "Offline")


def test_resending_before_expiry_holds_the_state() -> None:
    presence = user(client=False)
    presence.set_session(APP, "Busy", "InACall", minutes(5), T0)
    presence.set_session(APP, "Busy", "InACall", minutes(5), T0 + minutes(4))
    assert seen(presence, T0 + minutes(8)) == ("Busy", "InACall")


def test_clear_presence_of_an_unknown_session_is_refused() -> None:
    presence = user()
    with pytest.raises(NoSuchSession):
        presence.clear_session(APP, T0)
    presence.set_session(APP, "Busy", "InACall", minutes(5), T0)
    presence.clear_session(APP, T0 + minutes(1))
    assert seen(presence, T0 + minutes(1)) == ("Available", "Available")
    with pytest.raises(NoSuchSession):  # gone once it expired (and faded) for good
        presence.set_session(APP, "Away", "Away", minutes(5), T0)
        presence.clear_session(APP, T0 + minutes(6))


@pytest.mark.parametrize(
    ("availability", "default"),
    [
        ("DoNotDisturb", timedelta(days=1)),
        ("Busy", timedelta(days=1)),
        ("Available", timedelta(days=7)),
        ("Away", timedelta(days=7)),
        ("BeRightBack", timedelta(days=7)),
        ("Offline", timedelta(days=7)),
    ],
)
def test_preferred_default_expiry(availability: str, default: timedelta) -> None:
    assert model.preferred_duration(availability, None) == default
    assert model.preferred_duration(availability, "PT2H") == timedelta(hours=2)


def test_a_preferred_dnd_resets_after_24_hours() -> None:
    presence = user()
    duration = model.preferred_duration("DoNotDisturb", None)
    presence.set_preferred("DoNotDisturb", "DoNotDisturb", duration, T0)
    assert seen(presence, T0 + timedelta(hours=23, minutes=59)) == ("DoNotDisturb", "DoNotDisturb")
    assert presence.next_deadline(T0) == T0 + timedelta(days=1)
    assert seen(presence, T0 + timedelta(days=1)) == ("Available", "Available")
    presence.refresh(T0 + timedelta(days=1))
    assert presence.preferred is None


def test_preferred_beats_every_session() -> None:
    presence = user()
    presence.set_session(APP, "DoNotDisturb", "Presenting", minutes(60), T0)
    presence.set_preferred("Away", "Away", timedelta(days=7), T0)
    assert seen(presence, T0) == ("Away", "Away")
    presence.clear_preferred(T0)
    assert seen(presence, T0) == ("DoNotDisturb", "Presenting")


@pytest.mark.parametrize(
    ("preferred", "expected"),
    [
        (("Available", "Available"), ("Busy", "InACall")),
        (("Busy", "Busy"), ("Busy", "InACall")),
        (("DoNotDisturb", "DoNotDisturb"), ("DoNotDisturb", "DoNotDisturb")),
        (("Away", "Away"), ("Away", "Away")),
        (("BeRightBack", "BeRightBack"), ("BeRightBack", "BeRightBack")),
        (("Offline", "OffWork"), ("Offline", "OffWork")),
    ],
)
def test_a_call_shows_through_a_manual_available_or_busy(
    preferred: tuple[str, str], expected: tuple[str, str]
) -> None:
    presence = user()
    presence.set_preferred(*preferred, timedelta(days=1), T0)
    presence.set_session(APP, "Busy", "InACall", minutes(5), T0)
    assert seen(presence, T0) == expected
    # A conference call is not "In a call": the manual state stays.
    presence.set_session(APP, "Busy", "InAConferenceCall", minutes(5), T0)
    assert seen(presence, T0) == preferred


def test_preferred_needs_a_session() -> None:
    presence = user(client=False)
    presence.set_preferred("DoNotDisturb", "DoNotDisturb", timedelta(days=1), T0)
    assert seen(presence, T0) == ("Offline", "Offline")
    presence.set_session(APP, "Available", "Available", minutes(15), T0)
    assert seen(presence, T0) == ("DoNotDisturb", "DoNotDisturb")
    # Still in force while the session fades; gone with the session.
    assert seen(presence, T0 + minutes(12)) == ("DoNotDisturb", "DoNotDisturb")
    assert seen(presence, T0 + minutes(15)) == ("Offline", "Offline")


def test_sessions_rank_dnd_busy_available_away() -> None:
    presence = user(client=False)
    order = [
        ("Away", "Away"),
        ("Available", "Available"),
        ("Busy", "InACall"),
        ("DoNotDisturb", "Presenting"),
    ]
    for index, pair in enumerate(order):
        presence.set_session(f"s{index}", *pair, minutes(60), T0 + minutes(index))
    assert seen(presence, T0 + minutes(5)) == ("DoNotDisturb", "Presenting")
    for index in range(3, 0, -1):
        presence.clear_session(f"s{index}", T0 + minutes(5))
        assert seen(presence, T0 + minutes(5)) == order[index - 1]


def test_equal_standing_goes_to_the_most_recent_session() -> None:
    presence = user(client=False)
    presence.set_session("a", "Busy", "InACall", minutes(60), T0)
    presence.set_session("b", "Busy", "InAConferenceCall", minutes(60), T0 + minutes(1))
    assert seen(presence, T0 + minutes(2)) == ("Busy", "InAConferenceCall")
    presence.set_session("a", "Busy", "InACall", minutes(60), T0 + minutes(3))
    assert seen(presence, T0 + minutes(3)) == ("Busy", "InACall")


def test_the_teams_client_is_a_session_of_its_own() -> None:
    presence = user()
    presence.set_client("Busy", "InAMeeting", T0)
    presence.set_session(APP, "Available", "Available", minutes(5), T0 + minutes(1))
    assert seen(presence, T0 + minutes(1)) == ("Busy", "InAMeeting")
    presence.set_client("Offline", None, T0 + minutes(2))
    assert seen(presence, T0 + minutes(2)) == ("Available", "Available")
    with pytest.raises(Invalid):
        presence.set_client("Sleepy", "Zzz", T0)
    with pytest.raises(Invalid):
        presence.set_client("Busy", None, T0)


def test_sequence_numbers_grow_only_when_the_state_changes() -> None:
    presence = user(client=False)
    first = presence.sequence
    presence.set_session(APP, "Busy", "InACall", minutes(5), T0)
    assert presence.refresh(T0)
    second = presence.sequence
    presence.set_session(APP, "Busy", "InACall", minutes(5), T0 + minutes(1))
    assert not presence.refresh(T0 + minutes(1))
    assert presence.sequence == second
    assert presence.refresh(T0 + minutes(6))  # expiry is a change too
    assert first < second < presence.sequence


def test_sequencer_is_sortable_and_strictly_growing() -> None:
    stamps = Sequencer(lambda: 1_700_000_000_000_000_000)
    values = [stamps() for _ in range(5)]
    assert values == sorted(values)
    assert len(set(values)) == 5
    assert all(len(v) == 20 for v in values)
    assert Sequencer(lambda: 9)() < Sequencer(lambda: 10)()


def test_presence_json_has_graphs_fields() -> None:
    presence = user()
    body = model.presence_json("u1", presence.shown, presence.sequence)
    assert set(body) == {
        "id",
        "availability",
        "activity",
        "statusMessage",
        "outOfOfficeSettings",
        "workLocation",
        "sequenceNumber",
    }
    assert body["outOfOfficeSettings"] == {"message": None, "isOutOfOffice": False}
    assert body["workLocation"] == {
        "workLocationType": "unspecified",
        "source": "none",
        "placeId": None,
    }


def test_graph_time_has_seven_fractional_digits() -> None:
    assert model.graph_time(T0) == "2025-03-03T08:00:00.0000000Z"
