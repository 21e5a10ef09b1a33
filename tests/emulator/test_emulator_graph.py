"""Graph presence paths over HTTPS against GRAPH.md: reads, writes, aggregation, limits."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.emulator.support import APP_ID, app_token, bearer, make_users, ok, shown, user_tokens

GET = "/v1.0/users/{}/presence"


def action(client: httpx.Client, token: str, user: str, name: str, **body: Any) -> httpx.Response:
    return client.post(f"/v1.0/users/{user}/presence/{name}", json=body, headers=bearer(token))


def state(client: httpx.Client, user: str) -> dict[str, Any]:
    described: dict[str, Any] = ok(client.get(f"/_emulator/users/{user}"))
    return described


def advance(client: httpx.Client, seconds: float) -> None:
    ok(client.post("/_emulator/clock", json={"advance_seconds": seconds}))


def test_three_ways_to_read_one_presence(control: httpx.Client) -> None:
    make_users(control, "u1")
    token = app_token(control)
    first = ok(control.get(GET.format("u1"), headers=bearer(token)))
    assert first["availability"] == "Available" and first["activity"] == "Available"
    assert first["id"] == "u1"
    assert first["outOfOfficeSettings"] == {"message": None, "isOutOfOffice": False}
    assert "statusMessage" in first and isinstance(first["sequenceNumber"], str)
    second = ok(control.get("/v1.0/communications/presences/u1", headers=bearer(token)))
    assert second["sequenceNumber"] == first["sequenceNumber"]
    by_upn = ok(control.get(GET.format("u1@presencebridge.test"), headers=bearer(token)))
    assert by_upn["id"] == "u1"
    me = user_tokens(control, "u1")["access_token"]
    assert ok(control.get("/v1.0/me/presence", headers=bearer(me)))["id"] == "u1"
    refused = control.get("/v1.0/me/presence", headers=bearer(token))
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "BadRequest"


def test_unknown_users_are_404_with_a_graph_error(control: httpx.Client) -> None:
    token = app_token(control)
    response = control.get(GET.format("nobody"), headers=bearer(token))
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] and "nobody" in error["message"]
    setting = action(
        control,
        token,
        "nobody",
        "setPresence",
        sessionId=APP_ID,
        availability="Busy",
        activity="InACall",
    )
    assert setting.status_code == 404


def test_get_presences_by_user_id_takes_650_ids_and_omits_unknown_ones(
    control: httpx.Client,
) -> None:
    make_users(control, "u1", "u2")
    token = app_token(control)
    ids = ["u1", "u2", *(f"ghost-{n}" for n in range(648))]
    body = ok(
        control.post(
            "/v1.0/communications/getPresencesByUserId", json={"ids": ids}, headers=bearer(token)
        )
    )
    assert sorted(p["id"] for p in body["value"]) == ["u1", "u2"]
    too_many = control.post(
        "/v1.0/communications/getPresencesByUserId",
        json={"ids": [*ids, "one-more"]},
        headers=bearer(token),
    )
    assert too_many.status_code == 400
    assert "650" in too_many.json()["error"]["message"]


def test_set_presence_shows_and_counts(control: httpx.Client) -> None:
    make_users(control, "u1")
    token = app_token(control)
    before = ok(control.get(GET.format("u1"), headers=bearer(token)))["sequenceNumber"]
    ok(
        action(
            control,
            token,
            "u1",
            "setPresence",
            sessionId=APP_ID,
            availability="Busy",
            activity="InACall",
            expirationDuration="PT1H",
        )
    )
    after = ok(control.get(GET.format("u1"), headers=bearer(token)))
    assert (after["availability"], after["activity"]) == ("Busy", "InACall")
    assert after["sequenceNumber"] > before
    sessions = state(control, "u1")["sessions"]
    assert [s["sessionId"] for s in sessions] == [APP_ID]
    stats = ok(control.get("/_emulator/stats"))
    assert stats["users"]["u1"]["setPresence"] == 1
    assert stats["requests"]["POST /v1.0/users/{id}/presence/setPresence"] == 1
    assert stats["requests"]["GET /v1.0/users/{id}/presence"] == 2


@pytest.mark.parametrize(
    "body",
    [
        {"availability": "Busy", "activity": "Busy"},
        {"availability": "DoNotDisturb", "activity": "DoNotDisturb"},
        {"availability": "Available", "activity": "InACall"},
        {"availability": "Busy"},
        {"availability": "Busy", "activity": "InACall", "expirationDuration": "PT4M"},
        {"availability": "Busy", "activity": "InACall", "expirationDuration": "PT4H1M"},
        {"availability": "Busy", "activity": "InACall", "expirationDuration": "an hour"},
    ],
)
def test_set_presence_refuses_bad_input(control: httpx.Client, body: dict[str, str]) -> None:
    make_users(control, "u1")
    token = app_token(control)
    response = action(control, token, "u1", "setPresence", sessionId=APP_ID, **body)
    assert response.status_code == 400, response.text
    # Graph's own code for a duration outside PT5M..PT4H (msgraph-sdk-dotnet issue 1186).
    out_of_range = body.get("expirationDuration") in ("PT4M", "PT4H1M")
    expected = "InvalidArgument" if out_of_range else "BadRequest"
    assert response.json()["error"]["code"] == expected
    assert state(control, "u1")["sessions"] == []
    missing_session = action(
        control, token, "u1", "setPresence", availability="Busy", activity="InACall"
    )
    assert missing_session.status_code == 400


def test_expiration_duration_bounds_are_inclusive(control: httpx.Client) -> None:
    make_users(control, "u1")
    token = app_token(control)
    for duration in ("PT5M", "PT4H"):
        ok(
            action(
                control,
                token,
                "u1",
                "setPresence",
                sessionId=APP_ID,
                availability="Away",
                activity="Away",
                expirationDuration=duration,
            )
        )
    ok(
        action(
            control,
            token,
            "u1",
            "setPresence",
            sessionId="other",
            availability="Away",
            activity="Away",
        )
    )
    sessions = {s["sessionId"]: s for s in state(control, "u1")["sessions"]}
    assert sessions[APP_ID]["expiresAt"] > sessions["other"]["expiresAt"]  # PT4H vs PT5M


def test_clear_presence_needs_an_existing_session(control: httpx.Client) -> None:
    make_users(control, "u1")
    token = app_token(control)
    missing = action(control, token, "u1", "clearPresence", sessionId=APP_ID)
    assert missing.status_code == 404
    assert missing.json()["error"]["message"]
    ok(
        action(
            control,
            token,
            "u1",
            "setPresence",
            sessionId=APP_ID,
            availability="DoNotDisturb",
            activity="Presenting",
        )
    )
    ok(action(control, token, "u1", "clearPresence", sessionId=APP_ID))
    assert shown(control, token, "u1") == ("Available", "Available")
    assert ok(control.get("/_emulator/stats"))["users"]["u1"]["clearPresence"] == 1


def test_user_preferred_presence_defaults_and_the_24_hour_reset(control: httpx.Client) -> None:
    make_users(control, "u1")
    token = app_token(control)
    ok(
        action(
            control,
            token,
            "u1",
            "setUserPreferredPresence",
            availability="DoNotDisturb",
            activity="DoNotDisturb",
        )
    )
    preferred = state(control, "u1")["preferred"]
    assert (preferred["availability"], preferred["inEffect"]) == ("DoNotDisturb", True)
    assert _hours_between(preferred["setAt"], preferred["expiresAt"]) == 24
    assert shown(control, token, "u1") == ("DoNotDisturb", "DoNotDisturb")
    advance(control, 24 * 3600)
    assert state(control, "u1")["preferred"] is None
    expired = control.get(GET.format("u1"), headers=bearer(token))
    assert expired.status_code == 401  # a day on, the token has expired too
    token = app_token(control)
    assert shown(control, token, "u1") == ("Available", "Available")
    ok(
        action(
            control,
            token,
            "u1",
            "setUserPreferredPresence",
            availability="BeRightBack",
            activity="BeRightBack",
        )
    )
    preferred = state(control, "u1")["preferred"]
    assert _hours_between(preferred["setAt"], preferred["expiresAt"]) == 7 * 24
    ok(action(control, token, "u1", "clearUserPreferredPresence"))
    assert state(control, "u1")["preferred"] is None
    bad = action(
        control, token, "u1", "setUserPreferredPresence", availability="Busy", activity="InACall"
    )
    assert bad.status_code == 400
    counts = ok(control.get("/_emulator/stats"))["users"]["u1"]
    assert counts["setUserPreferredPresence"] == 2
    assert counts["clearUserPreferredPresence"] == 1


def _hours_between(start: str, end: str) -> float:
    from datetime import datetime

    def parse(text: str) -> datetime:
        return datetime.fromisoformat(text[:26] + "+00:00")

    return (parse(end) - parse(start)).total_seconds() / 3600


def test_a_call_in_teams_shows_through_a_manual_available(control: httpx.Client) -> None:
    make_users(control, "u1")
    token = app_token(control)
    ok(
        control.post(
            "/_emulator/users/u1/preferred",
            json={"availability": "Available", "activity": "Available"},
        )
    )
    ok(
        control.post(
            "/_emulator/users/u1/client", json={"availability": "Busy", "activity": "InACall"}
        )
    )
    assert shown(control, token, "u1") == ("Busy", "InACall")
    ok(
        control.post(
            "/_emulator/users/u1/preferred",
            json={"availability": "DoNotDisturb", "activity": "DoNotDisturb"},
        )
    )
    assert shown(control, token, "u1") == ("DoNotDisturb", "DoNotDisturb")
    ok(control.delete("/_emulator/users/u1/preferred"))
    ok(
        control.post(
            "/_emulator/users/u1/client",
            json={"availability": "DoNotDisturb", "activity": "Presenting"},
        )
    )
    assert shown(control, token, "u1") == ("DoNotDisturb", "Presenting")


def test_preferred_presence_needs_teams_or_an_app_session(control: httpx.Client) -> None:
    make_users(control, "u1")
    token = app_token(control)
    ok(control.delete("/_emulator/users/u1/client"))
    assert shown(control, token, "u1") == ("Offline", "Offline")
    ok(
        control.post(
            "/_emulator/users/u1/preferred", json={"availability": "Busy", "activity": "Busy"}
        )
    )
    assert shown(control, token, "u1") == ("Offline", "Offline")
    ok(
        action(
            control,
            token,
            "u1",
            "setPresence",
            sessionId=APP_ID,
            availability="Away",
            activity="Away",
        )
    )
    assert shown(control, token, "u1") == ("Busy", "Busy")


def test_the_clock_moves_an_available_session_through_its_fade(control: httpx.Client) -> None:
    make_users(control, "u1")
    token = app_token(control)
    ok(control.post("/_emulator/users/u1/client", json={"availability": "Offline"}))
    ok(
        action(
            control,
            token,
            "u1",
            "setPresence",
            sessionId=APP_ID,
            availability="Available",
            activity="Available",
            expirationDuration="PT15M",
        )
    )
    timeline = []
    for _ in range(4):
        timeline.append(shown(control, token, "u1"))
        advance(control, 300)
    assert timeline == [
        ("Available", "Available"),
        ("Available", "AvailableInactive"),
        ("Away", "Away"),
        ("Offline", "Offline"),
    ]
    assert state(control, "u1")["sessions"] == []


def test_status_message_is_part_of_the_presence(control: httpx.Client) -> None:
    make_users(control, "u1")
    token = app_token(control)
    ok(
        action(
            control,
            token,
            "u1",
            "setStatusMessage",
            statusMessage={"message": {"content": "At the dentist", "contentType": "text"}},
        )
    )
    body = ok(control.get(GET.format("u1"), headers=bearer(token)))
    assert body["statusMessage"]["message"] == {"content": "At the dentist", "contentType": "text"}
    bad = action(control, token, "u1", "setStatusMessage", statusMessage={"message": {}})
    assert bad.status_code == 400


def test_batch_runs_inner_requests_and_refuses_more_than_20(control: httpx.Client) -> None:
    make_users(control, "u1", "u2")
    token = app_token(control)
    requests = [
        {
            "id": "1",
            "method": "POST",
            "url": "/users/u1/presence/setPresence",
            "body": {"sessionId": APP_ID, "availability": "Busy", "activity": "InACall"},
            "headers": {"Content-Type": "application/json"},
        },
        {"id": "2", "method": "GET", "url": "/users/u2/presence"},
        {"id": "3", "method": "GET", "url": "users/nobody/presence"},
        {
            "id": "4",
            "method": "POST",
            "url": "/users/u2/presence/setPresence",
            "body": {"sessionId": APP_ID, "availability": "Busy", "activity": "Busy"},
            "headers": {"Content-Type": "application/json"},
        },
    ]
    answer = ok(control.post("/v1.0/$batch", json={"requests": requests}, headers=bearer(token)))
    statuses = {r["id"]: r["status"] for r in answer["responses"]}
    assert statuses == {"1": 200, "2": 200, "3": 404, "4": 400}
    assert shown(control, token, "u1") == ("Busy", "InACall")
    too_many = [{"id": str(n), "method": "GET", "url": "/users/u1/presence"} for n in range(21)]
    refused = control.post("/v1.0/$batch", json={"requests": too_many}, headers=bearer(token))
    assert refused.status_code == 400 and "20" in refused.json()["error"]["message"]
    stats = ok(control.get("/_emulator/stats"))
    assert stats["requests"]["POST /v1.0/$batch"] == 2
    assert stats["users"]["u1"]["setPresence"] == 1
    # Inner requests use the budget; the outer request does not.
    assert stats["budget"]["used_now"] == 5  # 4 inner + the GET in shown()


def _fill_budget(control: httpx.Client, token: str, user: str) -> None:
    batch = [{"id": str(n), "method": "GET", "url": f"/users/{user}/presence"} for n in range(20)]
    for _ in range(75):  # 75 x 20 = 1,500 inner requests
        answer = ok(control.post("/v1.0/$batch", json={"requests": batch}, headers=bearer(token)))
        assert {r["status"] for r in answer["responses"]} == {200}


def test_the_tenant_budget_throttles_with_retry_after(control: httpx.Client) -> None:
    make_users(control, "u1")
    token = app_token(control)
    _fill_budget(control, token, "u1")
    refused = control.get(GET.format("u1"), headers=bearer(token))
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "TooManyRequests"
    wait = float(refused.headers["Retry-After"])
    assert 0 < wait <= 30
    batch = [{"id": "a", "method": "GET", "url": "/users/u1/presence"}]
    inner = ok(control.post("/v1.0/$batch", json={"requests": batch}, headers=bearer(token)))
    assert inner["responses"][0]["status"] == 429
    assert float(inner["responses"][0]["headers"]["Retry-After"]) > 0
    # Another app of the same tenant has a budget of its own.
    other = app_token(control, client_id="another-app")
    assert control.get(GET.format("u1"), headers=bearer(other)).status_code == 200
    stats = ok(control.get("/_emulator/stats"))
    assert stats["throttled"] == 2
    assert stats["budget"]["limit"] == 1500 and stats["budget"]["window_seconds"] == 30
    assert stats["budget"]["peak"] == 1500 and stats["budget"]["used_now"] == 1500
    assert stats["injected"] == {"429": 0, "503": 0}
    advance(control, 30)
    assert control.get(GET.format("u1"), headers=bearer(token)).status_code == 200


def test_injected_faults_follow_their_rates(control: httpx.Client) -> None:
    make_users(control, "u1")
    token = app_token(control)
    ok(
        control.post(
            "/_emulator/faults", json={"rate_429": 0.3, "retry_after_seconds": 2.5, "seed": 7}
        )
    )
    batch = [{"id": str(n), "method": "GET", "url": "/users/u1/presence"} for n in range(20)]
    statuses: list[int] = []
    for _ in range(10):
        answer = ok(control.post("/v1.0/$batch", json={"requests": batch}, headers=bearer(token)))
        for response in answer["responses"]:
            statuses.append(response["status"])
            if response["status"] == 429:
                assert response["headers"]["Retry-After"] == "2.5"
    injected = statuses.count(429)
    assert 30 <= injected <= 90, injected
    stats = ok(control.get("/_emulator/stats"))
    assert stats["injected"]["429"] == injected
    assert stats["throttled"] == 0
    assert stats["budget"]["used_now"] == 200 - injected  # injected faults use no budget
    ok(control.post("/_emulator/faults", json={"rate_503": 1.0}))
    assert control.get(GET.format("u1"), headers=bearer(token)).status_code == 503
    # Faults hit Graph only: the identity provider and the control API still answer.
    assert app_token(control)
    assert control.get("/_emulator/users/u1").status_code == 200
    ok(control.post("/_emulator/faults", json={"latency_ms": 300}))
    started = time.monotonic()
    ok(control.get(GET.format("u1"), headers=bearer(token)))
    assert time.monotonic() - started >= 0.3
    assert ok(control.get("/_emulator/stats"))["injected"]["503"] == 1


def test_control_api_refuses_bad_input_with_reasons(control: httpx.Client) -> None:
    assert control.post("/_emulator/users", json={"id": "bad id"}).status_code == 422
    make_users(control, "u1")
    again = control.post("/_emulator/users", json={"id": "u1"})
    assert again.status_code == 200  # idempotent
    client = control.post("/_emulator/users/u1/client", json={"availability": "Sleepy"})
    assert client.status_code == 422 and "Sleepy" in client.json()["detail"]
    preferred = control.post(
        "/_emulator/users/u1/preferred", json={"availability": "Busy", "activity": "InACall"}
    )
    assert preferred.status_code == 422 and "pair" in preferred.json()["detail"]
    assert (
        control.post(
            "/_emulator/users/nobody/client", json={"availability": "Busy", "activity": "Busy"}
        ).status_code
        == 404
    )
    clock = control.post("/_emulator/clock", json={"advance_seconds": -5})
    assert clock.status_code == 422 and "advance_seconds" in clock.json()["detail"]
    faults = control.post("/_emulator/faults", json={"rate_429": 2})
    assert faults.status_code == 422 and "rate_429" in faults.json()["detail"]
    malformed = control.post(
        "/_emulator/users", content=b"{", headers={"Content-Type": "application/json"}
    )
    assert malformed.status_code == 400


def test_stats_count_requests_per_path_template(control: httpx.Client) -> None:
    make_users(control, "u1", "u2")
    token = app_token(control)
    for user in ("u1", "u2"):
        ok(control.get(GET.format(user), headers=bearer(token)))
    control.get(GET.format("u1"))  # no token: 401, still counted
    stats = ok(control.get("/_emulator/stats"))
    assert stats["requests"]["GET /v1.0/users/{id}/presence"] == 3
    assert stats["requests"]["POST /_emulator/users"] == 2
    assert stats["requests"]["POST /{tenant}/oauth2/v2.0/token"] == 1
    assert stats["responses"]["401"] == 1
    assert stats["tokens"]["client_credentials"] == 1
    assert set(stats["users"]) == {"u1", "u2"}
    assert set(stats["users"]["u1"]) >= {
        "setPresence",
        "clearPresence",
        "setUserPreferredPresence",
        "clearUserPreferredPresence",
    }
    assert set(stats["notifications"]) >= {"sent", "failed"}
    assert stats["subscriptions"]["active"] == 0
