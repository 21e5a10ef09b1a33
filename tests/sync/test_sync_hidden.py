"""Issue 19: what the hub believes while its own Teams write hides the user's Teams state.

Server and Graph emulator are separate processes, joined by configuration only; every
step goes through public interfaces (REST, the emulator's control API and faults, the
server's clock control). Each test reproduces one defect found from outside.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.teams import EmulatorProcess, eventually
from tests.sync.test_sync_tables import (
    DND_PROFILE,
    LUNCH_PROFILE,
    Colleague,
    group,
    on_teams_phone,
    teams_appointments,
)

SECOND_DND = {"name": "Ruhe", "status": "dnd", "text": "Ruhe bitte", "color": "#990000"}
WAIT = 15.0  # seconds a condition may take on a busy machine


def poll_rounds(api: httpx.Client) -> int:
    return int(api.get("/api/v1/admin/teams-sync").json()["poll"]["rounds"])


def after_rounds(api: httpx.Client, count: int = 2) -> None:
    """Wait until `count` whole poll rounds have read Teams since now."""
    start = poll_rounds(api)
    eventually(lambda: poll_rounds(api), lambda rounds: rounds >= start + count + 1, WAIT)


def writes(emulator: EmulatorProcess, teams_id: str, kind: str) -> int:
    return int(emulator.stats()["users"].get(teams_id, {}).get(kind, 0))


def wait_for_write(emulator: EmulatorProcess, teams_id: str, kind: str, before: int) -> None:
    eventually(lambda: writes(emulator, teams_id, kind), lambda n: n > before, WAIT)


def the_teams_call(colleague: Colleague) -> dict[str, Any]:
    [appointment] = teams_appointments(colleague.presence())
    return appointment


def in_a_teams_call(
    api: httpx.Client, emulator: EmulatorProcess
) -> tuple[Colleague, dict[str, Any]]:
    a = Colleague(api, emulator, "anna", group(api))
    a.add_profile(DND_PROFILE)
    emulator.client_presence(a.teams_id, "Busy", "InACall")
    eventually(a.presence, on_teams_phone, WAIT)
    return a, the_teams_call(a)


@pytest.mark.parametrize("activity", ["InACall", "InAConferenceCall"])
def test_a_pbx_call_keeps_the_appointment_of_a_teams_call_going_on(
    api: httpx.Client, emulator: EmulatorProcess, activity: str
) -> None:
    """Defect 1: the hub's session hid the user's Teams call and its appointment went."""
    a = Colleague(api, emulator, "anna", group(api))
    emulator.client_presence(a.teams_id, "Busy", activity)
    eventually(a.presence, on_teams_phone, WAIT)
    call = the_teams_call(a)

    sent = writes(emulator, a.teams_id, "setPresence")
    a.pbx("pbx-1", "connected")
    wait_for_write(emulator, a.teams_id, "setPresence", sent)  # newest: Teams shows it
    eventually(a.teams, lambda shown: shown == ("Busy", "InACall"), WAIT)
    after_rounds(api)
    assert the_teams_call(a) == call, "the Teams call's appointment changed under a PBX call"

    cleared = writes(emulator, a.teams_id, "clearPresence")
    a.pbx("pbx-1", "ended")
    wait_for_write(emulator, a.teams_id, "clearPresence", cleared)
    after_rounds(api)
    shown = a.presence()
    assert teams_appointments(shown) == [call], "the appointment was made anew (new start)"
    assert on_teams_phone(shown)

    emulator.client_presence(a.teams_id, "Available", "Available")
    eventually(a.presence, lambda p: teams_appointments(p) == [], WAIT)


def test_a_uc_dnd_profile_during_a_teams_call_keeps_it_on_the_phone(
    api: httpx.Client, emulator: EmulatorProcess
) -> None:
    """Defect 2: the hub's preferred DnD hid InACall; telephony went idle mid-call."""
    a, call = in_a_teams_call(api, emulator)
    a.select("Fokus")
    eventually(a.teams, lambda shown: shown == ("DoNotDisturb", "DoNotDisturb"), WAIT)
    after_rounds(api)
    shown = a.presence()
    assert teams_appointments(shown) == [call]
    assert shown["telephony"] == "on_the_phone"

    a.select(None)
    eventually(a.teams, lambda shown: shown == ("Busy", "InACall"), WAIT)
    after_rounds(api)
    assert teams_appointments(a.presence()) == [call], "re-created with a new start"


def test_a_teams_call_past_its_hard_end_does_not_come_back_under_a_pbx_call(
    api: httpx.Client, emulator: EmulatorProcess
) -> None:
    """Defect 3: a PBX call on top dropped the "outlived" mark; 12 more hours followed."""
    a, _ = in_a_teams_call(api, emulator)
    api.post("/api/v1/admin/clock", json={"advance_seconds": 12 * 3600 + 60})
    eventually(a.presence, lambda p: teams_appointments(p) == [], WAIT)

    sent = writes(emulator, a.teams_id, "setPresence")
    a.pbx("pbx-1", "connected")
    wait_for_write(emulator, a.teams_id, "setPresence", sent)
    after_rounds(api)
    cleared = writes(emulator, a.teams_id, "clearPresence")
    a.pbx("pbx-1", "ended")
    wait_for_write(emulator, a.teams_id, "clearPresence", cleared)
    after_rounds(api)
    shown = a.presence()
    assert teams_appointments(shown) == [], "the stuck Teams call got another 12 hours"
    assert shown["telephony"] == "idle"

    # Once Teams shows the call ended, the next one counts again.
    emulator.client_presence(a.teams_id, "Available", "Available")
    after_rounds(api)
    emulator.client_presence(a.teams_id, "Busy", "InACall")
    eventually(a.presence, on_teams_phone, WAIT)


def test_the_hubs_dnd_is_not_taken_for_a_teams_dnd_under_graph_latency(
    api: httpx.Client, emulator: EmulatorProcess
) -> None:
    """Defect 4: a read sent before Graph acknowledged the hub's DnD, answered after it,
    flipped the UC side Ruhe -> Fokus -> Ruhe and Teams DnD -> Available -> DnD (at
    700 ms most tries catch a read in flight while the write is acknowledged)."""
    a = Colleague(api, emulator, "anna", group(api))
    a.add_profile(DND_PROFILE)
    a.add_profile(SECOND_DND)
    a.add_profile(LUNCH_PROFILE)
    emulator.post("/_emulator/faults", {"latency_ms": 700})
    tries = 4
    for attempt in range(tries):
        sent = writes(emulator, a.teams_id, "setUserPreferredPresence")
        a.select("Ruhe")
        wait_for_write(emulator, a.teams_id, "setUserPreferredPresence", sent)
        after_rounds(api, 2)
        assert a.presence()["profile"] == "Ruhe"
        cleared = writes(emulator, a.teams_id, "clearUserPreferredPresence")
        a.select("Mittag" if attempt % 2 else None)
        wait_for_write(emulator, a.teams_id, "clearUserPreferredPresence", cleared)
        after_rounds(api, 2)
        assert a.presence()["status"] != "dnd"

    # Each try: one DnD set and one cleared, and the UC side never showed the first DnD
    # profile (which a Teams DnD would have selected).
    assert writes(emulator, a.teams_id, "setUserPreferredPresence") == tries
    assert writes(emulator, a.teams_id, "clearUserPreferredPresence") == tries
    history = api.get(f"/api/v1/users/{a.id}/history", params={"limit": 200}).json()
    assert [h for h in history if h["text"] == DND_PROFILE["text"]] == []


def test_the_built_in_dnd_state_is_not_a_profile_of_the_same_name(
    api: httpx.Client, emulator: EmulatorProcess
) -> None:
    """Defect 7: an own away profile named "Nicht stören" was selected by a Teams DnD.
    Such a profile can no longer be made (issue 18: the built-in names are reserved; a
    stored one is still told apart, tests/core/test_core_codec.py): the API refuses it,
    naming the field, and a Teams DnD still shows the built-in state."""
    a = Colleague(api, emulator, "anna", group(api))
    body = {"name": "Nicht stören", "status": "away", "text": "Weg", "color": "#999999"}
    refused = api.post(f"/api/v1/users/{a.id}/profiles", json=body)
    assert refused.status_code == 422 and refused.json()["detail"].startswith("name: ")
    emulator.preferred(a.teams_id, "DoNotDisturb", "DoNotDisturb")
    shown = eventually(a.presence, lambda p: p["teams"]["availability"] == "DoNotDisturb", WAIT)
    assert shown["status"] == "dnd"
