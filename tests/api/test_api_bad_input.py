"""Bad requests get a 4xx naming the problem, and write nothing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.server import ServerProcess, make_user


def snapshot(api: httpx.Client) -> Any:
    """Everything a client can read back: groups, users with presence, profiles."""
    return {
        "groups": api.get("/api/v1/groups").json(),
        "users": api.get("/api/v1/users").json(),
        "profiles": api.get("/api/v1/users/alice/profiles").json(),
        "appointments": api.get("/api/v1/users/alice/appointments").json(),
    }


# Refused requests change nothing, so one server serves the whole module.
@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path_factory.mktemp("bad-input"), ("--allow-clock-control",))
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def api(server: ServerProcess) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


@pytest.fixture(scope="module")
def seeded(api: httpx.Client) -> Any:
    make_user(api)
    return snapshot(api)


# fmt: off
CASES: list[tuple[str, str, str, dict[str, str], int, str]] = [
    # description, method, path, body (raw), expected status, words the reason must contain
    (
        "malformed JSON",
        "POST",
        "/api/v1/telephony/events",
        {"raw": '{"user": "alice",'},
        400,
        "malformed JSON",
    ),
    (
        "unknown user",
        "POST",
        "/api/v1/telephony/events",
        {"json": '{"user": "nobody", "call_id": "1", "state": "connected"}'},
        404,
        "unknown user 'nobody'",
    ),
    (
        "unknown enum value",
        "POST",
        "/api/v1/telephony/events",
        {"json": '{"user": "alice", "call_id": "1", "state": "on_hold"}'},
        422,
        "state",
    ),
    (
        "missing field",
        "POST",
        "/api/v1/telephony/events",
        {"json": '{"user": "alice", "state": "connected"}'},
        422,
        "call_id",
    ),
    (
        "unexpected field",
        "POST",
        "/api/v1/users",
        {"json": '{"id": "x", "display_name": "X", "group": "hq", "role": "admin"}'},
        422,
        "role",
    ),
    (
        "unknown group for user",
        "POST",
        "/api/v1/users",
        {"json": '{"id": "x", "display_name": "X", "group": "nowhere"}'},
        404,
        "unknown group 'nowhere'",
    ),
    (
        "duplicate user",
        "POST",
        "/api/v1/users",
        {"json": '{"id": "alice", "display_name": "A", "group": "hq"}'},
        409,
        "exists already",
    ),
    (
        "bad user id",
        "POST",
        "/api/v1/users",
        {"json": '{"id": "../etc", "display_name": "A", "group": "hq"}'},
        422,
        "id",
    ),
    (
        "unknown setting",
        "PATCH",
        "/api/v1/groups/hq/settings",
        {"json": '{"teams_sync": "off"}'},
        422,
        "teams_sync",
    ),
    (
        "bad setting value",
        "PATCH",
        "/api/v1/groups/hq/settings",
        {"json": '{"teams_sync_mode": "sometimes"}'},
        422,
        "teams_sync_mode",
    ),
    (
        "bad microphone flag",
        "PATCH",
        "/api/v1/groups/hq/settings",
        {"json": '{"MicrophoneUsageSync.Enable": 2}'},
        422,
        "MicrophoneUsageSync.Enable",
    ),
    (
        "bad colour",
        "POST",
        "/api/v1/users/alice/profiles",
        {"json": '{"name": "X", "status": "busy", "text": "x", "color": "red"}'},
        422,
        "color",
    ),
    (
        "unknown status",
        "POST",
        "/api/v1/users/alice/profiles",
        {"json": '{"name": "X", "status": "napping", "text": "x", "color": "#ff0000"}'},
        422,
        "status",
    ),
    (
        "select unknown profile",
        "PUT",
        "/api/v1/users/alice/profile",
        {"json": '{"name": "Ghost"}'},
        404,
        "'Ghost'",
    ),
    (
        "appointment ends before start",
        "POST",
        "/api/v1/users/alice/appointments",
        {
            "json": '{"subject": "x", "start": "2030-01-01T10:00:00+00:00", "end": "2030-01-01T09:00:00+00:00"}'
        },
        422,
        "end after it starts",
    ),
    (
        "appointment without time zone",
        "POST",
        "/api/v1/users/alice/appointments",
        {"json": '{"subject": "x", "start": "2030-01-01T10:00:00", "end": "2030-01-01T11:00:00"}'},
        422,
        "start",
    ),
    ("unknown appointment", "DELETE", "/api/v1/users/alice/appointments/nope", {}, 404, "'nope'"),
    (
        "clock moved backwards",
        "POST",
        "/api/v1/admin/clock",
        {"json": '{"advance_seconds": -5}'},
        422,
        "advance_seconds",
    ),
    ("wrong body type", "POST", "/api/v1/telephony/events", {"json": "[1, 2, 3]"}, 422, "body"),
]
# fmt: on


@pytest.mark.parametrize(
    ("method", "path", "body", "expected", "reason"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_bad_request_is_refused_with_reason_and_writes_nothing(
    api: httpx.Client,
    seeded: Any,
    method: str,
    path: str,
    body: dict[str, str],
    expected: int,
    reason: str,
) -> None:
    content = body.get("raw") or body.get("json")
    headers = {"Content-Type": "application/json"} if content else {}
    response = api.request(method, path, content=content, headers=headers)
    assert response.status_code == expected, response.text
    assert reason in response.json()["detail"]
    assert snapshot(api) == seeded


def test_a_bad_office_network_is_refused_by_name_and_nothing_is_saved(
    api: httpx.Client, seeded: Any
) -> None:
    before = api.get("/api/v1/groups/hq/settings").json()
    patch = {
        "teams_work_location_office_networks": "10.20.0.0/16; office-lan",
        "reassert_dnd": not before["reassert_dnd"],  # a good change in the same request
    }
    response = api.patch("/api/v1/groups/hq/settings", json=patch)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert detail.startswith("teams_work_location_office_networks: ")
    assert "'office-lan'" in detail
    assert api.get("/api/v1/groups/hq/settings").json() == before
    assert snapshot(api) == seeded


def test_oversized_body_is_refused(api: httpx.Client, seeded: Any) -> None:
    huge = '{"user": "alice", "call_id": "' + "x" * 200_000 + '", "state": "connected"}'
    response = api.post(
        "/api/v1/telephony/events", content=huge, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert "larger than" in response.json()["detail"]
    assert snapshot(api) == seeded


def test_oversized_chunked_body_is_refused(api: httpx.Client, seeded: Any) -> None:
    def chunks() -> Any:
        yield b'{"user": "alice", "call_id": "'
        for _ in range(100):
            yield b"y" * 4096
        yield b'", "state": "connected"}'

    response = api.post(
        "/api/v1/telephony/events", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert snapshot(api) == seeded


def test_deeply_nested_body_is_refused(api: httpx.Client, seeded: Any) -> None:
    nested = "[" * 20_000 + "]" * 20_000
    response = api.post(
        "/api/v1/telephony/events", content=nested, headers={"Content-Type": "application/json"}
    )
    assert 400 <= response.status_code < 500
    assert snapshot(api) == seeded


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing bearer token"),
        ({"Authorization": "Bearer wrong"}, "invalid token"),
        ({"Authorization": "Basic abc"}, "malformed Authorization header"),
    ],
    ids=["missing", "wrong", "malformed"],
)
def test_missing_or_wrong_token_is_refused(
    server: ServerProcess,
    api: httpx.Client,
    seeded: Any,
    headers: dict[str, str],
    reason: str,
) -> None:
    with server.client(None) as anonymous:
        event = {"user": "alice", "call_id": "1", "state": "connected"}
        response = anonymous.post("/api/v1/telephony/events", json=event, headers=headers)
        assert response.status_code == 401
        assert response.json()["detail"] == reason
        assert response.headers["www-authenticate"] == "Bearer"
        profile = {"name": "X", "status": "busy", "text": "x", "color": "#ff0000"}
        response = anonymous.post("/api/v1/users/alice/profiles", json=profile, headers=headers)
        assert response.status_code == 401
    assert snapshot(api) == seeded


def test_stream_refuses_a_wrong_token(server: ServerProcess) -> None:
    from websockets.exceptions import InvalidStatus

    with pytest.raises(InvalidStatus) as refused:
        server.stream("wrong").recv(timeout=2)
    assert refused.value.response.status_code == 403


def test_clock_control_is_off_unless_enabled(tmp_path: Any) -> None:
    plain = ServerProcess(tmp_path / "plain")
    plain.start()
    try:
        with plain.client() as api:
            response = api.post("/api/v1/admin/clock", json={"advance_seconds": 60})
            assert response.status_code == 403
            assert "--allow-clock-control" in response.json()["detail"]
    finally:
        plain.stop()


def test_rejections_are_counted_in_metrics(server: ServerProcess, api: httpx.Client) -> None:
    def count() -> float:
        for line in httpx.get(server.url + "/metrics").text.splitlines():
            if line.startswith('presencebridge_rejected_requests_total{status="404"}'):
                return float(line.split()[-1])
        return 0.0

    before = count()
    api.post("/api/v1/telephony/events", json={"user": "nobody", "call_id": "1", "state": "ended"})
    assert count() == before + 1
