"""SPEC §3 and §4 end to end: server and Graph emulator as separate processes, poll mode.

Every row of the tables is driven through public interfaces only: the emulator's
control API plays the users' Teams clients, the REST API plays the PBX, and both
sides are read back the way their users see them.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.teams import EmulatorProcess, new_teams_id
from tests.support.waiting import eventually

DND_PROFILE = {"name": "Fokus", "status": "dnd", "text": "Bitte nicht stören", "color": "#aa0000"}
LUNCH_PROFILE = {"name": "Mittag", "status": "away", "text": "Mittagspause", "color": "#ffcc00"}


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    process = EmulatorProcess(tmp_path_factory.mktemp("emulator") / "tls")
    process.start()
    yield process
    process.stop()


class Colleague:
    """One user known to both sides."""

    def __init__(self, api: httpx.Client, emulator: EmulatorProcess, name: str, group: str) -> None:
        self.api = api
        self.emulator = emulator
        self.id = f"{name}-{new_teams_id()[:8]}"
        self.teams_id = new_teams_id()
        emulator.add_user(self.teams_id)
        body = {"id": self.id, "display_name": name, "group": group, "teams_user_id": self.teams_id}
        assert api.post("/api/v1/users", json=body).status_code == 201

    def presence(self) -> dict[str, Any]:
        result: dict[str, Any] = self.api.get(f"/api/v1/users/{self.id}/presence").json()
        return result

    def teams(self) -> tuple[str, str]:
        return self.emulator.shown(self.teams_id)

    def pbx(self, call_id: str, state: str) -> None:
        event = {"user": self.id, "call_id": call_id, "state": state}
        assert self.api.post("/api/v1/telephony/events", json=event).status_code == 200

    def add_profile(self, profile: dict[str, Any]) -> None:
        assert self.api.post(f"/api/v1/users/{self.id}/profiles", json=profile).status_code == 201

    def select(self, name: str | None) -> None:
        assert self.api.put(f"/api/v1/users/{self.id}/profile", json={"name": name}).is_success


def group(api: httpx.Client, mode: str = "telephony_and_presence", **settings: Any) -> str:
    group_id = f"g-{new_teams_id()[:8]}"
    body = {"id": group_id, "name": group_id, "settings": {"teams_sync_mode": mode, **settings}}
    assert api.post("/api/v1/groups", json=body).status_code == 201
    return group_id


def on_teams_phone(p: dict[str, Any]) -> bool:
    return bool(p["telephony"] == "on_the_phone" and p["telephony_source"] == "teams")


def teams_appointments(p: dict[str, Any]) -> list[dict[str, Any]]:
    return [a for a in p["appointments"] if a["origin"] == "teams"]


@pytest.mark.parametrize("activity", ["InACall", "InAConferenceCall"])
def test_teams_call_shows_on_the_phone_ms_teams_for_both(
    api: httpx.Client, emulator: EmulatorProcess, activity: str
) -> None:
    """Rows 1 and 2: a Teams call (audio or video) A -> B."""
    g = group(api)
    a, b = Colleague(api, emulator, "anna", g), Colleague(api, emulator, "ben", g)
    emulator.client_presence(a.teams_id, "Busy", activity)
    emulator.client_presence(b.teams_id, "Busy", activity)
    for user in (a, b):
        shown = eventually(user.presence, on_teams_phone)
        assert shown["text"] == "On the phone (MS Teams)"
        [appointment] = teams_appointments(shown)
        assert appointment["subject"] == "On the phone (MS Teams)"
        assert appointment["profile"] == "Termin"  # no `MS Teams` profile in this group
        assert user.teams() == ("Busy", activity)
    german = api.get(f"/api/v1/users/{a.id}/presence?lang=de").json()
    assert german["text"] == "Am Telefon (MS Teams)"

    emulator.client_presence(a.teams_id, "Available", "Available")
    emulator.client_presence(b.teams_id, "Available", "Available")
    for user in (a, b):
        shown = eventually(user.presence, lambda p: p["telephony"] == "idle")
        assert teams_appointments(shown) == []


@pytest.mark.parametrize(
    "a_shares_with_video", [False, True], ids=["sharing-only", "video+sharing"]
)
def test_screen_sharing_shows_dnd_for_the_presenter(
    api: httpx.Client, emulator: EmulatorProcess, a_shares_with_video: bool
) -> None:
    """Rows 3 and 4: A presents (DoNotDisturb/Presenting), B is in the call."""
    g = group(api)
    a, b = Colleague(api, emulator, "anna", g), Colleague(api, emulator, "ben", g)
    a.add_profile(LUNCH_PROFILE)
    a.add_profile(DND_PROFILE)
    a.select("Mittag")
    emulator.client_presence(a.teams_id, "DoNotDisturb", "Presenting")
    emulator.client_presence(b.teams_id, "Busy", "InACall")
    shown_a = eventually(a.presence, lambda p: p["status"] == "dnd")
    assert shown_a["profile"] == "Fokus"  # the first DnD profile of My Profiles
    assert teams_appointments(shown_a) == []
    eventually(b.presence, on_teams_phone)
    assert a.teams() == ("DoNotDisturb", "Presenting")

    # Sharing ends: A's earlier choice comes back.
    emulator.client_presence(a.teams_id, "Available", "Available")
    restored = eventually(a.presence, lambda p: p["status"] != "dnd")
    assert restored["profile"] == "Mittag"


def test_screen_sharing_changes_nothing_in_telephony_only_mode(
    api: httpx.Client, emulator: EmulatorProcess
) -> None:
    g = group(api, "telephony_only")
    a, b = Colleague(api, emulator, "anna", g), Colleague(api, emulator, "ben", g)
    a.add_profile(DND_PROFILE)
    emulator.client_presence(b.teams_id, "Busy", "InACall")
    eventually(b.presence, on_teams_phone)  # the round has passed
    emulator.client_presence(a.teams_id, "DoNotDisturb", "Presenting")
    eventually(a.presence, lambda p: p["teams"]["activity"] == "Presenting")
    assert a.presence()["status"] == "available"


def test_teams_call_uses_the_ms_teams_profile_with_its_forwarding(
    api: httpx.Client, emulator: EmulatorProcess
) -> None:
    """Rule 2: the `MS Teams` template, with its call forwarding, while in a Teams call."""
    g = group(api)
    template = {
        "name": "MS Teams",
        "status": "busy",
        "text": "In Teams",
        "color": "#5b5fc7",
        "call_forwarding": "voicemail",
    }
    assert api.post(f"/api/v1/groups/{g}/templates", json=template).status_code == 201
    a = Colleague(api, emulator, "anna", g)
    emulator.client_presence(a.teams_id, "Busy", "InACall")
    shown = eventually(a.presence, on_teams_phone)
    assert shown["call_forwarding"] == "voicemail"
    assert teams_appointments(shown)[0]["profile"] == "MS Teams"


def test_calendar_meeting_in_teams_changes_nothing(
    api: httpx.Client, emulator: EmulatorProcess
) -> None:
    """Rule 6: InAMeeting / Busy is calendar sync, not presence sync."""
    g = group(api)
    a = Colleague(api, emulator, "anna", g)
    emulator.preferred(a.teams_id, "Busy", "Busy")
    eventually(a.presence, lambda p: p["teams"]["availability"] == "Busy")
    shown = a.presence()
    assert (shown["status"], shown["telephony"], shown["appointments"]) == ("available", "idle", [])


def test_pbx_call_shows_in_a_call_in_teams_and_never_comes_back_as_a_teams_call(
    api: httpx.Client, emulator: EmulatorProcess
) -> None:
    """§4 row 1 and rule 2: the hub's own write is not echoed back."""
    g = group(api)
    a = Colleague(api, emulator, "anna", g)
    a.pbx("pbx-1", "connected")
    eventually(a.teams, lambda shown: shown == ("Busy", "InACall"), timeout=30)
    # Several poll rounds later the hub still knows it was its own write.
    eventually(a.presence, lambda p: p["teams"]["activity"] == "InACall")
    for _ in range(3):
        shown = eventually(a.presence, lambda p: p["telephony_source"] == "pbx")
        assert teams_appointments(shown) == []
        assert shown["teams"]["held_by_user"] is False
    a.pbx("pbx-1", "ended")
    eventually(a.teams, lambda shown: shown == ("Available", "Available"))
    shown = eventually(a.presence, lambda p: p["teams"]["activity"] == "Available")
    assert teams_appointments(shown) == [] and shown["telephony"] == "idle"


def test_uc_meeting_shows_in_a_call_but_screen_sharing_alone_does_not(
    api: httpx.Client, emulator: EmulatorProcess
) -> None:
    g = group(api)
    a = Colleague(api, emulator, "anna", g)
    share = {"meeting_id": "m1", "state": "joined", "screen_sharing": True, "audio": False}
    assert api.post(f"/api/v1/users/{a.id}/meetings", json=share).is_success
    join = {"meeting_id": "m2", "state": "joined"}
    assert api.post(f"/api/v1/users/{a.id}/meetings", json=join).is_success
    eventually(a.teams, lambda shown: shown == ("Busy", "InACall"))
    assert api.post(f"/api/v1/users/{a.id}/meetings", json={"meeting_id": "m2", "state": "left"})
    eventually(a.teams, lambda shown: shown == ("Available", "Available"))


def test_overlapping_teams_call_is_recognised_once_the_pbx_call_ends(
    api: httpx.Client, emulator: EmulatorProcess
) -> None:
    g = group(api)
    a = Colleague(api, emulator, "anna", g)
    a.pbx("pbx-2", "connected")
    eventually(a.teams, lambda shown: shown == ("Busy", "InACall"))
    emulator.client_presence(a.teams_id, "Busy", "InACall")  # a Teams call on top
    a.pbx("pbx-2", "ended")
    shown = eventually(a.presence, on_teams_phone, timeout=30)
    assert len(teams_appointments(shown)) == 1


@pytest.mark.parametrize("mode", ["telephony_and_presence", "telephony_only"])
def test_uc_dnd_sets_teams_dnd_only_in_presence_mode(
    api: httpx.Client, emulator: EmulatorProcess, mode: str
) -> None:
    g = group(api, mode)
    a = Colleague(api, emulator, "anna", g)
    a.add_profile(DND_PROFILE)
    a.select("Fokus")
    if mode == "telephony_only":
        eventually(a.presence, lambda p: p["teams"]["availability"] == "Available")
        assert a.teams() == ("Available", "Available")
        return
    eventually(a.teams, lambda shown: shown == ("DoNotDisturb", "DoNotDisturb"))
    # The hub's own DnD does not come back as a Teams DnD (the user's choice stays).
    eventually(a.presence, lambda p: p["teams"]["availability"] == "DoNotDisturb")
    assert a.presence()["profile"] == "Fokus"
    a.select(None)
    eventually(a.teams, lambda shown: shown == ("Available", "Available"))


def test_status_set_by_hand_in_teams_is_held_by_user_without_a_retry_storm(
    api: httpx.Client, emulator: EmulatorProcess
) -> None:
    g = group(api)
    a = Colleague(api, emulator, "anna", g)
    a.pbx("pbx-3", "connected")
    eventually(a.teams, lambda shown: shown == ("Busy", "InACall"))
    emulator.preferred(a.teams_id, "Away", "Away")
    shown = eventually(a.presence, lambda p: p["teams"]["held_by_user"], timeout=30)
    assert shown["telephony_source"] == "pbx"  # the UC side stays truthful
    before = emulator.stats()["users"][a.teams_id]["setPresence"]
    time.sleep(3)  # several poll rounds: the hub does not fight the user's choice
    after = emulator.stats()["users"][a.teams_id]["setPresence"]
    assert after - before == 0
    assert a.teams() == ("Away", "Away")
