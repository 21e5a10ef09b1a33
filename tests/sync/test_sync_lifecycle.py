"""Issue 12, end to end: deleting a user leaves nothing of the hub in Teams.

Server and Graph emulator are separate processes; the emulator's control API shows
every session and preferred presence it holds for the Teams user.
"""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.server import ServerProcess
from tests.support.teams import EmulatorProcess, eventually
from tests.sync.test_sync_tables import DND_PROFILE, Colleague, group

WAIT = 15.0  # seconds a condition may take on a busy machine


def in_emulator(emulator: EmulatorProcess, teams_id: str) -> dict[str, Any]:
    with emulator.control() as client:
        answer = client.get(f"/_emulator/users/{teams_id}")
        assert answer.status_code == 200, answer.text
        result: dict[str, Any] = answer.json()
        return result


def hub_is_in_teams(user: dict[str, Any]) -> bool:
    return user["preferred"] is not None or any(s["shown"] for s in user["sessions"])


def test_deleting_a_user_on_a_pbx_call_leaves_nothing_in_teams(
    server: ServerProcess, api: httpx.Client, emulator: EmulatorProcess
) -> None:
    anna = Colleague(api, emulator, "anna", group(api))
    anna.add_profile(DND_PROFILE)
    anna.pbx("call-1", "connected")
    anna.select(DND_PROFILE["name"])
    user = eventually(
        lambda: in_emulator(emulator, anna.teams_id),
        lambda u: u["preferred"] is not None and any(s["shown"] for s in u["sessions"]),
        WAIT,
    )
    assert user["preferred"]["activity"] == "DoNotDisturb"

    assert api.delete(f"/api/v1/users/{anna.id}").status_code == 204

    eventually(lambda: in_emulator(emulator, anna.teams_id), lambda u: not hub_is_in_teams(u), WAIT)
    assert anna.teams() not in (("Busy", "InACall"), ("DoNotDisturb", "DoNotDisturb"))
    assert api.get(f"/api/v1/users/{anna.id}").status_code == 404
    # A late PBX event for the deleted user changes nothing and says so.
    event = {"user": anna.id, "call_id": "call-1", "state": "ended"}
    assert api.post("/api/v1/telephony/events", json=event).status_code == 404
