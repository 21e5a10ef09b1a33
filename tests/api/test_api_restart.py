"""A `kill -9` loses nothing that was acknowledged, and a restart leaves nothing stale."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from tests.support.server import ServerProcess, make_user, receive


def test_everything_acknowledged_survives_kill_9(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data")
    server.start()
    try:
        with server.client() as api:
            make_user(api, teams_sync_mode="telephony_and_presence")
            make_user(api, "bob")
            body = {"name": "Focus", "status": "dnd", "text": "Focus", "color": "#aa0000"}
            assert api.post("/api/v1/users/alice/profiles", json=body).status_code == 201
            assert api.put("/api/v1/users/alice/profile", json={"name": "Focus"}).status_code == 200
            now = datetime.now(UTC)
            appointment = {
                "subject": "Review",
                "start": (now + timedelta(hours=1)).isoformat(),
                "end": (now + timedelta(hours=2)).isoformat(),
            }
            assert api.post("/api/v1/users/alice/appointments", json=appointment).is_success
            event = {"user": "bob", "call_id": "k1", "state": "connected"}
            assert api.post("/api/v1/telephony/events", json=event).is_success
            token = api.post("/api/v1/users/alice/agent-tokens").json()["token"]
            before = {
                "users": api.get("/api/v1/users").json(),
                "groups": api.get("/api/v1/groups").json(),
                "appointments": api.get("/api/v1/users/alice/appointments").json(),
            }
        server.kill9()
        server.start()
        with server.client() as api:
            after = {
                "users": api.get("/api/v1/users").json(),
                "groups": api.get("/api/v1/groups").json(),
                "appointments": api.get("/api/v1/users/alice/appointments").json(),
            }
            assert after == before
            assert api.get("/api/v1/users/bob/presence").json()["telephony"] == "on_the_phone"
            assert api.get("/api/v1/users/alice/presence").json()["status"] == "dnd"
        with server.client(token) as agent:
            assert agent.get("/api/v1/users/alice/presence").status_code == 200
    finally:
        server.stop()


def test_kill_9_during_a_burst_keeps_every_acknowledged_write(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data")
    server.start()
    acknowledged: list[str] = []
    try:
        with server.client() as api:
            make_user(api)

        def write() -> None:
            with server.client() as client:
                for i in range(90):  # the user holds at most 100 own profiles
                    name = f"P{i}"
                    body = {"name": name, "status": "busy", "text": name, "color": "#101010"}
                    try:
                        response = client.post("/api/v1/users/alice/profiles", json=body)
                    except httpx.HTTPError:
                        return
                    if response.status_code == 201:
                        acknowledged.append(name)

        writer = threading.Thread(target=write)
        writer.start()
        deadline = time.monotonic() + 20
        while len(acknowledged) < 25 and time.monotonic() < deadline:
            time.sleep(0.005)
        server.kill9()
        writer.join(30)
        assert 25 <= len(acknowledged) < 90, "the kill must land in the middle of the burst"

        server.start()
        with server.client() as api:
            names = [p["name"] for p in api.get("/api/v1/users/alice/profiles").json()]
        stored = [n for n in names if n.startswith("P")]
        # Everything acknowledged is there, in order; at most the one in flight may be extra.
        assert stored[: len(acknowledged)] == acknowledged
        assert len(stored) <= len(acknowledged) + 1
    finally:
        server.stop()


def test_restart_removes_what_ended_while_the_server_was_down(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data")
    server.start()
    try:
        with server.client() as api:
            make_user(api)
            now = datetime.now(UTC)
            appointment = {
                "subject": "Short",
                "start": (now - timedelta(minutes=1)).isoformat(),
                "end": (now + timedelta(seconds=2)).isoformat(),
            }
            assert api.post("/api/v1/users/alice/appointments", json=appointment).is_success
            assert api.get("/api/v1/users/alice/presence").json()["status"] == "busy"
        server.kill9()
        time.sleep(2.5)
        server.start()
        with server.client() as api:
            shown = api.get("/api/v1/users/alice/presence").json()
            assert shown["status"] == "available"
            assert shown["appointments"] == []
            assert api.get("/api/v1/users/alice/appointments").json() == []
    finally:
        server.stop()


def test_status_since_survives_a_restart(tmp_path: Path) -> None:
    """The board's "since" comes back from the presence history, not the restart time."""
    server = ServerProcess(tmp_path / "data")
    server.start()
    try:
        with server.client() as api:
            make_user(api)
            body = {"name": "Focus", "status": "dnd", "text": "Focus", "color": "#aa0000"}
            assert api.post("/api/v1/users/alice/profiles", json=body).status_code == 201
            assert api.put("/api/v1/users/alice/profile", json={"name": "Focus"}).status_code == 200
        with server.stream() as ws:
            before = _since(receive(ws))
        assert before is not None
        time.sleep(1.1)  # a restart time would differ from it
        server.stop()
        server.start()
        with server.stream() as ws:
            assert _since(receive(ws)) == before
        with server.client() as api:  # the next change of status moves it, as before
            assert api.put("/api/v1/users/alice/profile", json={"name": None}).is_success
        with server.stream() as ws:
            after = _since(receive(ws))
        assert after is not None and after > before
    finally:
        server.stop()


def _since(snapshot: dict[str, object]) -> str | None:
    assert snapshot["type"] == "snapshot", snapshot
    presences = snapshot["presences"]
    assert isinstance(presences, list)
    (alice,) = [p for p in presences if p["user"] == "alice"]
    since = alice["status_since"]
    assert since is None or isinstance(since, str)
    return since
