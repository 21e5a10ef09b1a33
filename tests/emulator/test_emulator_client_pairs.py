"""Issue 19: the Teams client may show every pair GRAPH.md lists, PresenceUnknown included.

Over HTTPS against a real emulator process: the control API sets the Teams client,
Graph's readers (`/users/{id}/presence`, `/communications/presences/{id}`,
`getPresencesByUserId`) see it, and app sessions aggregate with it as GRAPH.md says.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.emulator.support import APP_ID, app_token, bearer, make_users, ok, shown

# GRAPH.md, "What Teams shows", in its order. The bare AvailableIdle, BusyIdle and
# PresenceUnknown carry their own name as activity.
TEAMS_SHOWS = [
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
]
UNKNOWN = ("PresenceUnknown", "PresenceUnknown")


def set_client(control: httpx.Client, user: str, availability: str, activity: str) -> Any:
    body = {"availability": availability, "activity": activity}
    return ok(control.post(f"/_emulator/users/{user}/client", json=body))


def set_presence(
    control: httpx.Client, token: str, user: str, availability: str, activity: str
) -> None:
    body = {"sessionId": APP_ID, "availability": availability, "activity": activity}
    ok(control.post(f"/v1.0/users/{user}/presence/setPresence", json=body, headers=bearer(token)))


def clear_presence(control: httpx.Client, token: str, user: str) -> None:
    ok(
        control.post(
            f"/v1.0/users/{user}/presence/clearPresence",
            json={"sessionId": APP_ID},
            headers=bearer(token),
        )
    )


def by_user_id(control: httpx.Client, token: str, *ids: str) -> dict[str, tuple[str, str]]:
    answer = ok(
        control.post(
            "/v1.0/communications/getPresencesByUserId",
            json={"ids": list(ids)},
            headers=bearer(token),
        )
    )
    return {p["id"]: (p["availability"], p["activity"]) for p in answer["value"]}


def advance(control: httpx.Client, seconds: float) -> None:
    ok(control.post("/_emulator/clock", json={"advance_seconds": seconds}))


@pytest.mark.parametrize("pair", TEAMS_SHOWS, ids="/".join)
def test_every_pair_teams_shows_can_be_set_on_the_client(
    control: httpx.Client, pair: tuple[str, str]
) -> None:
    make_users(control, "u1")
    token = app_token(control)
    described = set_client(control, "u1", *pair)
    presence = described["presence"]
    assert (presence["availability"], presence["activity"]) == pair
    assert shown(control, token, "u1") == pair
    assert by_user_id(control, token, "u1") == {"u1": pair}
    if pair == ("Offline", "Offline"):  # Teams closed or signed out: no client session
        assert described["client"] is None
    else:
        client = described["client"]
        assert (client["availability"], client["activity"]) == pair


def test_presence_unknown_is_what_every_reader_sees(control: httpx.Client) -> None:
    make_users(control, "u1", "u2")
    token = app_token(control)
    before = ok(control.get("/v1.0/users/u1/presence", headers=bearer(token)))
    set_client(control, "u1", *UNKNOWN)
    read = ok(control.get("/v1.0/users/u1/presence", headers=bearer(token)))
    assert (read["availability"], read["activity"]) == UNKNOWN
    assert read["sequenceNumber"] > before["sequenceNumber"]
    other = ok(control.get("/v1.0/communications/presences/u1", headers=bearer(token)))
    assert (other["availability"], other["activity"]) == UNKNOWN
    assert by_user_id(control, token, "u1", "u2") == {
        "u1": UNKNOWN,
        "u2": ("Available", "Available"),
    }
    # Back from unknown: the client shows again what it is set to.
    set_client(control, "u1", "Available", "Available")
    assert by_user_id(control, token, "u1") == {"u1": ("Available", "Available")}


def test_an_app_session_outranks_presence_unknown_until_it_ends(control: httpx.Client) -> None:
    """GRAPH.md ranks sessions DoNotDisturb > Busy > Available > Away and does not rank
    PresenceUnknown: any app session, Away included, shows instead of it."""
    make_users(control, "u1")
    token = app_token(control)
    set_client(control, "u1", *UNKNOWN)
    set_presence(control, token, "u1", "Away", "Away")
    assert shown(control, token, "u1") == ("Away", "Away")
    set_presence(control, token, "u1", "Busy", "InACall")
    assert by_user_id(control, token, "u1") == {"u1": ("Busy", "InACall")}
    clear_presence(control, token, "u1")
    assert shown(control, token, "u1") == UNKNOWN
    # An app session that expires (Busy: PT5M, no fade) gives way the same way.
    set_presence(control, token, "u1", "DoNotDisturb", "Presenting")
    assert shown(control, token, "u1") == ("DoNotDisturb", "Presenting")
    advance(control, 301)
    assert by_user_id(control, token, "u1") == {"u1": UNKNOWN}


def test_a_preferred_presence_beats_presence_unknown(control: httpx.Client) -> None:
    """GRAPH.md: a user-preferred presence beats every session (the client is one)."""
    make_users(control, "u1")
    token = app_token(control)
    set_client(control, "u1", *UNKNOWN)
    body = {"availability": "DoNotDisturb", "activity": "DoNotDisturb"}
    ok(control.post("/_emulator/users/u1/preferred", json=body))
    assert shown(control, token, "u1") == ("DoNotDisturb", "DoNotDisturb")
    ok(control.delete("/_emulator/users/u1/preferred"))
    assert shown(control, token, "u1") == UNKNOWN


def test_a_signed_out_client_leaves_the_app_session_or_offline(control: httpx.Client) -> None:
    make_users(control, "u1")
    token = app_token(control)
    set_presence(control, token, "u1", "Available", "Available")
    set_client(control, "u1", "Offline", "Offline")
    assert shown(control, token, "u1") == ("Available", "Available")
    # The user's preferred presence needs a session: the app's is one.
    ok(
        control.post(
            "/_emulator/users/u1/preferred", json={"availability": "Busy", "activity": "Busy"}
        )
    )
    assert shown(control, token, "u1") == ("Busy", "Busy")
    clear_presence(control, token, "u1")
    assert by_user_id(control, token, "u1") == {"u1": ("Offline", "Offline")}


def test_offwork_on_the_client_gives_way_to_an_app_session(control: httpx.Client) -> None:
    make_users(control, "u1")
    token = app_token(control)
    set_client(control, "u1", "Offline", "OffWork")
    assert shown(control, token, "u1") == ("Offline", "OffWork")
    set_presence(control, token, "u1", "Away", "Away")
    assert shown(control, token, "u1") == ("Away", "Away")
    clear_presence(control, token, "u1")
    assert shown(control, token, "u1") == ("Offline", "OffWork")


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"availability": "Available", "activity": "InACall"}, "Available/InACall"),
        ({"availability": "PresenceUnknown", "activity": "Offline"}, "PresenceUnknown/Offline"),
        ({"availability": "AvailableIdle", "activity": "Away"}, "AvailableIdle/Away"),
        ({"availability": "Busy"}, "Busy/(no activity)"),
        ({"availability": "Sleepy", "activity": "Zzz"}, "Sleepy/Zzz"),
    ],
)
def test_undocumented_client_pairs_are_422_naming_the_pair_and_the_valid_ones(
    control: httpx.Client, body: dict[str, str], named: str
) -> None:
    make_users(control, "u1")
    token = app_token(control)
    refused = control.post("/_emulator/users/u1/client", json=body)
    assert refused.status_code == 422, refused.text
    detail = refused.json()["detail"]
    assert named in detail
    for valid in ("PresenceUnknown/PresenceUnknown", "Offline/Offline", "Busy/InAMeeting"):
        assert valid in detail
    assert shown(control, token, "u1") == ("Available", "Available")  # unchanged


def test_preferred_keeps_graphs_own_pairs(control: httpx.Client) -> None:
    """setUserPreferredPresence knows neither PresenceUnknown nor Offline/Offline."""
    make_users(control, "u1")
    for pair in (UNKNOWN, ("Offline", "Offline")):
        body = {"availability": pair[0], "activity": pair[1]}
        refused = control.post("/_emulator/users/u1/preferred", json=body)
        assert refused.status_code == 422
        detail = refused.json()["detail"]
        assert "/".join(pair) in detail and "Offline/OffWork" in detail
    body = {"availability": "Offline", "activity": "OffWork"}
    ok(control.post("/_emulator/users/u1/preferred", json=body))


def test_equal_availability_goes_to_the_most_recently_set_session(control: httpx.Client) -> None:
    """Both Busy: the session set last shows its activity; every setPresence counts."""
    make_users(control, "u1")
    token = app_token(control)
    set_client(control, "u1", "Busy", "InAConferenceCall")
    advance(control, 1)
    set_presence(control, token, "u1", "Busy", "InACall")
    assert shown(control, token, "u1") == ("Busy", "InACall")
    advance(control, 1)
    set_client(control, "u1", "Busy", "InAConferenceCall")
    assert shown(control, token, "u1") == ("Busy", "InAConferenceCall")
    advance(control, 60)
    set_presence(control, token, "u1", "Busy", "InACall")  # the app's keep-alive re-send
    assert shown(control, token, "u1") == ("Busy", "InACall")
    # A higher availability wins whatever its age.
    advance(control, 1)
    set_client(control, "u1", "DoNotDisturb", "Presenting")
    advance(control, 1)
    set_presence(control, token, "u1", "Busy", "InACall")
    assert shown(control, token, "u1") == ("DoNotDisturb", "Presenting")
