"""The hub through its public REST + WebSocket interface, against a real server process."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.support.server import ServerProcess, make_user, receive, receive_for


def call(api: httpx.Client, user: str, call_id: str, state: str) -> httpx.Response:
    response = api.post(
        "/api/v1/telephony/events", json={"user": user, "call_id": call_id, "state": state}
    )
    assert response.status_code == 200, response.text
    return response


def presence(api: httpx.Client, user: str = "alice") -> dict[str, object]:
    response = api.get(f"/api/v1/users/{user}/presence")
    assert response.status_code == 200, response.text
    result: dict[str, object] = response.json()
    return result


def test_admin_sets_up_group_user_and_profiles(api: httpx.Client) -> None:
    group = {"id": "hq", "name": "Headquarters", "settings": {"teams_sync_mode": "telephony_only"}}
    created = api.post("/api/v1/groups", json=group)
    assert created.status_code == 201
    assert created.json()["settings"]["teams_sync_mode"] == "telephony_only"
    assert created.json()["settings"]["MicrophoneUsageSync.Enable"] == 0
    assert [g["id"] for g in api.get("/api/v1/groups").json()] == ["hq"]

    user = {"id": "alice", "display_name": "Alice", "group": "hq", "teams_user_id": "aad-1"}
    assert api.post("/api/v1/users", json=user).status_code == 201
    shown = api.get("/api/v1/users/alice").json()
    assert shown["display_name"] == "Alice"
    assert shown["teams_sync_mode"] == "telephony_only"
    assert shown["presence"]["status"] == "available"

    for name, status in [("Focus", "dnd"), ("Lunch", "away")]:
        body = {"name": name, "status": status, "text": name, "color": "#123456"}
        assert api.post("/api/v1/users/alice/profiles", json=body).status_code == 201
    names = [p["name"] for p in api.get("/api/v1/users/alice/profiles").json()]
    assert names == ["Focus", "Lunch", "Termin"]

    selected = api.put("/api/v1/users/alice/profile", json={"name": "Focus"})
    assert selected.status_code == 200
    assert selected.json()["status"] == "dnd"
    assert presence(api)["text"] == "Focus"


def test_connected_call_puts_user_on_the_phone_and_streams_it(
    server: ServerProcess, api: httpx.Client
) -> None:
    make_user(api)
    with server.stream() as ws:
        snapshot = receive(ws)
        assert snapshot["type"] == "snapshot"
        assert {p["user"]: p["telephony"] for p in snapshot["presences"]} == {"alice": "idle"}

        call(api, "alice", "c1", "connected")
        message = receive_for(ws, "alice")
        assert message["telephony"] == "on_the_phone"
        assert message["telephony_source"] == "pbx"
        assert message["status"] == "busy"
        assert presence(api)["telephony"] == "on_the_phone"

        call(api, "alice", "c1", "ended")
        message = receive_for(ws, "alice")
        assert message["telephony"] == "idle"
        assert message["status"] == "available"
    assert presence(api)["telephony"] == "idle"


@pytest.mark.parametrize("first_to_end", ["a", "b"])
def test_overlapping_calls_leave_user_idle_only_after_both(
    api: httpx.Client, first_to_end: str
) -> None:
    make_user(api)
    call(api, "alice", "a", "connected")
    call(api, "alice", "b", "ringing")
    call(api, "alice", "b", "connected")
    second = "b" if first_to_end == "a" else "a"
    call(api, "alice", first_to_end, "ended")
    assert presence(api)["telephony"] == "on_the_phone"
    call(api, "alice", second, "ended")
    assert presence(api)["telephony"] == "idle"


def test_late_and_duplicate_call_events_are_harmless(api: httpx.Client) -> None:
    make_user(api)
    call(api, "alice", "x", "ended")  # overtook its own `connected`
    call(api, "alice", "x", "connected")
    call(api, "alice", "x", "ringing")
    assert presence(api)["telephony"] == "idle"
    call(api, "alice", "y", "connected")
    call(api, "alice", "y", "connected")
    call(api, "alice", "y", "ended")
    call(api, "alice", "y", "ended")
    assert presence(api)["telephony"] == "idle"


def test_ringing_shows_ringing_without_changing_status(api: httpx.Client) -> None:
    make_user(api)
    body = call(api, "alice", "r", "ringing").json()
    assert body["telephony"] == "ringing"
    assert body["status"] == "available"


def test_unchanged_presence_sends_no_stream_message(
    server: ServerProcess, api: httpx.Client
) -> None:
    make_user(api)
    make_user(api, "bob")
    with server.stream() as ws:
        receive(ws)
        call(api, "alice", "c1", "connected")
        call(api, "alice", "c1", "connected")  # duplicate: no change
        call(api, "alice", "c2", "connected")  # second call: still on the phone, no change
        call(api, "bob", "c3", "ringing")
        first = receive(ws)
        second = receive(ws)
        assert (first["user"], first["telephony"]) == ("alice", "on_the_phone")
        assert (second["user"], second["telephony"]) == ("bob", "ringing")


def test_meeting_puts_user_on_the_phone_but_screen_sharing_alone_does_not(
    api: httpx.Client,
) -> None:
    make_user(api)
    share = {"meeting_id": "m1", "state": "joined", "screen_sharing": True, "audio": False}
    assert api.post("/api/v1/users/alice/meetings", json=share).json()["telephony"] == "idle"
    join = {"meeting_id": "m2", "state": "joined", "screen_sharing": True}
    joined = api.post("/api/v1/users/alice/meetings", json=join).json()
    assert joined["telephony"] == "on_the_phone"
    assert joined["telephony_source"] == "meeting"
    left = api.post("/api/v1/users/alice/meetings", json={"meeting_id": "m2", "state": "left"})
    assert left.json()["telephony"] == "idle"


def test_appointment_drives_presence_and_can_be_deleted(api: httpx.Client) -> None:
    make_user(api)
    now = datetime.now(UTC)
    body = {
        "subject": "Board meeting",
        "start": (now - timedelta(minutes=1)).isoformat(),
        "end": (now + timedelta(hours=1)).isoformat(),
    }
    created = api.post("/api/v1/users/alice/appointments", json=body)
    assert created.status_code == 201
    appointment = created.json()
    assert appointment["origin"] == "manual"
    assert appointment["profile"] == "Termin"
    assert appointment["active"] is True
    shown = presence(api)
    assert (shown["status"], shown["text"]) == ("busy", "Board meeting")
    listed = api.get("/api/v1/users/alice/appointments").json()
    assert [a["id"] for a in listed] == [appointment["id"]]

    deleted = api.delete(f"/api/v1/users/alice/appointments/{appointment['id']}")
    assert deleted.status_code == 204
    assert presence(api)["status"] == "available"
    assert api.get("/api/v1/users/alice/appointments").json() == []


def test_appointment_ends_by_itself_when_the_clock_passes_its_end(
    server: ServerProcess, api: httpx.Client
) -> None:
    make_user(api)
    now = datetime.now(UTC)
    body = {
        "subject": "Call with supplier",
        "start": (now + timedelta(minutes=10)).isoformat(),
        "end": (now + timedelta(minutes=40)).isoformat(),
    }
    assert api.post("/api/v1/users/alice/appointments", json=body).status_code == 201
    assert presence(api)["status"] == "available"
    with server.stream() as ws:
        receive(ws)
        assert api.post("/api/v1/admin/clock", json={"advance_seconds": 15 * 60}).status_code == 200
        assert receive_for(ws, "alice")["status"] == "busy"
        assert api.post("/api/v1/admin/clock", json={"advance_seconds": 30 * 60}).status_code == 200
        message = receive_for(ws, "alice")
        assert message["status"] == "available"
        assert message["appointments"] == []


def test_group_templates_appear_in_members_profiles(api: httpx.Client) -> None:
    make_user(api)
    template = {"name": "MicSync", "status": "busy", "text": "Meeting", "color": "#aa0000"}
    assert api.post("/api/v1/groups/hq/templates", json=template).status_code == 201
    inactive = {**template, "name": "Old", "active": False}
    assert api.post("/api/v1/groups/hq/templates", json=inactive).status_code == 201
    profiles = api.get("/api/v1/users/alice/profiles").json()
    assert [(p["name"], p["source"]) for p in profiles] == [
        ("MicSync", "template"),
        ("Termin", "builtin"),
    ]


def test_teams_profile_template_is_created_on_request(api: httpx.Client) -> None:
    make_user(api)
    patched = api.patch("/api/v1/groups/hq/settings", json={"create_teams_profile_template": True})
    assert patched.status_code == 200
    assert patched.json()["create_teams_profile_template"] is True
    templates = api.get("/api/v1/groups/hq/templates", headers={"Accept-Language": "de"}).json()
    assert [(t["name"], t["text"]) for t in templates] == [("MS Teams", "Am Telefon (MS Teams)")]


def test_texts_follow_the_readers_language(api: httpx.Client) -> None:
    make_user(api)
    call(api, "alice", "c", "connected")
    german = api.get("/api/v1/users/alice/presence", headers={"Accept-Language": "de-DE,de;q=0.9"})
    assert german.json()["text"] == "Am Telefon"
    assert api.get("/api/v1/users/alice/presence?lang=en").json()["text"] == "On the phone"


def test_user_mode_applies_only_while_the_group_allows_it(
    server: ServerProcess, api: httpx.Client
) -> None:
    make_user(api, teams_sync_mode="telephony_only")
    token = api.post("/api/v1/users/alice/agent-tokens").json()["token"]
    with server.client(token) as agent:
        own = agent.patch("/api/v1/users/alice/settings", json={"teams_sync_mode": "off"})
        assert own.status_code == 200
        assert own.json()["effective_teams_sync_mode"] == "off"

        api.patch("/api/v1/groups/hq/settings", json={"user_may_change": False})
        shown = agent.get("/api/v1/users/alice/settings").json()
        assert shown["effective_teams_sync_mode"] == "telephony_only"
        refused = agent.patch(
            "/api/v1/users/alice/settings", json={"teams_sync_mode": "telephony_and_presence"}
        )
        assert refused.status_code == 403
        assert "user_may_change" in refused.json()["detail"]
        assert agent.get("/api/v1/users/alice/settings").json()["teams_sync_mode"] == "off"


def test_agent_token_acts_only_for_its_user(server: ServerProcess, api: httpx.Client) -> None:
    make_user(api)
    make_user(api, "bob")
    token = api.post("/api/v1/users/alice/agent-tokens").json()["token"]
    with server.client(token) as agent:
        assert agent.get("/api/v1/users/alice/presence").status_code == 200
        assert agent.get("/api/v1/users/bob/presence").status_code == 403
        assert agent.get("/api/v1/users").status_code == 403
        event = {"user": "bob", "call_id": "z", "state": "connected"}
        assert agent.post("/api/v1/telephony/events", json=event).status_code == 403
    with server.stream(token) as ws:
        snapshot = receive(ws)
        assert [p["user"] for p in snapshot["presences"]] == ["alice"]
    assert presence(api, "bob")["telephony"] == "idle"


def test_profile_order_and_history(api: httpx.Client) -> None:
    make_user(api)
    for name in ("One", "Two", "Three"):
        body = {"name": name, "status": "available", "text": name, "color": "#00aa00"}
        api.post("/api/v1/users/alice/profiles", json=body)
    order = api.put("/api/v1/users/alice/profiles/order", json={"names": ["Three", "One", "Two"]})
    assert [p["name"] for p in order.json()][:3] == ["Three", "One", "Two"]
    call(api, "alice", "h", "connected")
    call(api, "alice", "h", "ended")
    history = api.get("/api/v1/users/alice/history").json()
    assert [(h["source"], h["telephony"]) for h in history[:2]] == [
        ("pbx", "idle"),
        ("pbx", "on_the_phone"),
    ]


def test_health_metrics_and_openapi(server: ServerProcess, api: httpx.Client) -> None:
    make_user(api)
    call(api, "alice", "m", "connected")
    assert api.get("/healthz").json()["status"] == "ok"
    metrics = httpx.get(server.url + "/metrics").text
    assert 'presencebridge_events_total{kind="TelephonyEvent",result="applied"} 1.0' in metrics
    assert "presencebridge_users 1.0" in metrics
    paths = httpx.get(server.url + "/openapi.json").json()["paths"]
    for path in (
        "/api/v1/groups",
        "/api/v1/groups/{group}/settings",
        "/api/v1/users/{user_id}/presence",
        "/api/v1/telephony/events",
        "/api/v1/users/{user_id}/agent-tokens",
        "/api/v1/admin/clock",
    ):
        assert path in paths
