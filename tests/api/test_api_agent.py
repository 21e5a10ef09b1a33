"""The agent's WebSocket, from the server's side: settings, reports, start-up clean-up."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.support.server import ADMIN_TOKEN, ServerProcess, make_user

MICSYNC = {"name": "MicSync", "status": "busy", "text": "Mikrofon", "color": "#aa00aa"}


def agent(server: ServerProcess, token: str) -> ClientConnection:
    url = f"ws://127.0.0.1:{server.port}/api/v1/agent/stream"
    return connect(url, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=5)


def next_of(ws: ClientConnection, kind: str, timeout: float = 5.0) -> dict[str, Any]:
    while True:
        message: dict[str, Any] = json.loads(ws.recv(timeout=timeout))
        if message["type"] == kind:
            return message


def setup(api: httpx.Client) -> str:
    make_user(api)
    assert api.patch("/api/v1/groups/hq/settings", json={"MicrophoneUsageSync.Enable": 1})
    assert api.post("/api/v1/groups/hq/templates", json=MICSYNC).status_code == 201
    token: str = api.post("/api/v1/users/alice/agent-tokens").json()["token"]
    return token


def presence(api: httpx.Client) -> dict[str, Any]:
    result: dict[str, Any] = api.get("/api/v1/users/alice/presence").json()
    return result


def test_agent_gets_its_settings_live(server: ServerProcess, api: httpx.Client) -> None:
    token = setup(api)
    with agent(server, token) as ws:
        settings = next_of(ws, "settings")
        assert settings["user"] == "alice"
        assert settings["microphone"]["enabled"] is True
        assert settings["microphone"]["active"] is True
        assert "zoom" in settings["microphone"]["whitelist"]
        assert settings["teams"]["client_side"] is False
        body = {"MicrophoneUsageSync.ProcessWhitelist": "ms-teams"}
        assert api.patch("/api/v1/groups/hq/settings", json=body).is_success
        changed = next_of(ws, "settings")
        assert "ms-teams" in changed["microphone"]["whitelist"]


def test_a_microphone_report_shows_micsync_and_its_release_returns(
    server: ServerProcess, api: httpx.Client
) -> None:
    token = setup(api)
    with agent(server, token) as ws:
        ws.send(json.dumps({"type": "hello", "version": "test", "platform": "linux"}))
        ws.send(json.dumps({"type": "microphone", "processes": ["chrome", "zoom"]}))
        shown = next_of(ws, "presence")
        assert (shown["profile"], shown["text"]) == ("MicSync", "Zoom Meeting")
        assert shown["microphone"]["process"] == "zoom"
        ws.send(json.dumps({"type": "microphone", "processes": []}))
        assert next_of(ws, "presence")["profile"] is None
    assert presence(api)["text"] == "Available"


def test_unlisted_programs_and_a_disabled_group_change_nothing(
    server: ServerProcess, api: httpx.Client
) -> None:
    token = setup(api)
    with agent(server, token) as ws:
        ws.send(json.dumps({"type": "microphone", "processes": ["ms-teams"]}))
        next_of(ws, "settings")
        assert api.patch("/api/v1/groups/hq/settings", json={"MicrophoneUsageSync.Enable": 0})
        settings = next_of(ws, "settings")
        assert settings["microphone"]["reason"] == "MicrophoneUsageSync.Enable is 0"
        ws.send(json.dumps({"type": "microphone", "processes": ["zoom"]}))
        ws.send(json.dumps({"type": "bogus"}))
        assert "bogus" in next_of(ws, "error")["detail"]
    assert presence(api)["profile"] is None
    group = api.get("/api/v1/groups/hq").json()
    assert group["microphone_sync"] == {
        "active": False,
        "reason": "MicrophoneUsageSync.Enable is 0",
    }


def test_missing_micsync_template_is_explained(api: httpx.Client) -> None:
    make_user(api)
    assert api.patch("/api/v1/groups/hq/settings", json={"MicrophoneUsageSync.Enable": 1})
    reason = api.get("/api/v1/groups/hq").json()["microphone_sync"]["reason"]
    assert "MicSync is missing" in reason


def test_agent_hello_removes_stale_sync_appointments(
    server: ServerProcess, api: httpx.Client
) -> None:
    token = setup(api)
    with agent(server, token) as ws:
        ws.send(json.dumps({"type": "microphone", "processes": ["zoom"]}))
        assert next_of(ws, "presence")["profile"] == "MicSync"
    now = datetime.now(UTC)
    mine = {
        "subject": "Mine",
        "start": now.isoformat(),
        "end": (now + timedelta(hours=1)).isoformat(),
    }
    assert api.post("/api/v1/users/alice/appointments", json=mine).status_code == 201
    # The agent went away while the microphone was in use; its next start cleans up.
    assert presence(api)["profile"] == "Termin"
    with agent(server, token) as ws:
        ws.send(json.dumps({"type": "hello", "version": "test", "platform": "linux"}))
        next_of(ws, "presence")
    shown = presence(api)
    assert shown["microphone"] is None
    assert [a["subject"] for a in shown["appointments"]] == ["Mine"]


@pytest.mark.parametrize("token", [ADMIN_TOKEN, "wrong"], ids=["admin token", "wrong token"])
def test_only_an_agent_token_opens_the_agent_stream(server: ServerProcess, token: str) -> None:
    with pytest.raises(InvalidStatus) as refused:
        agent(server, token).recv(timeout=2)
    assert refused.value.response.status_code == 403
