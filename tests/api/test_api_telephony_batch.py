"""PBX events in batches: applied in order per user, all or nothing on bad input,
an event the rules refuse named in the answer."""

from __future__ import annotations

import httpx

from tests.support.server import ServerProcess, make_user, receive, receive_for

BATCH = "/api/v1/telephony/events/batch"


def presence(api: httpx.Client, user: str) -> dict[str, object]:
    response = api.get(f"/api/v1/users/{user}/presence")
    assert response.status_code == 200, response.text
    result: dict[str, object] = response.json()
    return result


def test_batch_applies_each_users_events_in_order(server: ServerProcess, api: httpx.Client) -> None:
    make_user(api, "alice")
    make_user(api, "bob")
    with server.stream() as ws:
        receive(ws)  # snapshot
        events = [
            {"user": "alice", "call_id": "a1", "state": "ringing"},
            {"user": "bob", "call_id": "b1", "state": "connected"},
            {"user": "alice", "call_id": "a1", "state": "connected"},
            {"user": "bob", "call_id": "b1", "state": "ended"},
            {"user": "bob", "call_id": "b2", "state": "connected"},
        ]
        answer = api.post(BATCH, json={"events": events})
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"accepted": 5, "users": 2, "rejected": []}
        # Each step is streamed, in the order the PBX sent them.
        assert receive_for(ws, "alice")["telephony"] == "ringing"
        assert receive_for(ws, "alice")["telephony"] == "on_the_phone"
    # Out of order they would leave alice ringing and bob idle.
    assert presence(api, "alice")["telephony"] == "on_the_phone"
    assert presence(api, "bob")["telephony"] == "on_the_phone"

    ended = [
        {"user": "alice", "call_id": "a1", "state": "ended"},
        {"user": "bob", "call_id": "b2", "state": "ended"},
    ]
    assert api.post(BATCH, json={"events": ended}).status_code == 200
    assert presence(api, "alice")["telephony"] == "idle"
    assert presence(api, "bob")["telephony"] == "idle"


def test_batch_with_an_unknown_user_applies_nothing(api: httpx.Client) -> None:
    make_user(api, "alice")
    events = [
        {"user": "alice", "call_id": "a1", "state": "connected"},
        {"user": "nobody", "call_id": "n1", "state": "connected"},
    ]
    answer = api.post(BATCH, json={"events": events})
    assert answer.status_code == 404
    assert "'nobody'" in answer.json()["detail"]
    assert "no event was applied" in answer.json()["detail"]
    assert presence(api, "alice")["telephony"] == "idle"


def test_batch_refuses_bad_events_and_oversized_batches(api: httpx.Client) -> None:
    make_user(api, "alice")
    bad_state = [
        {"user": "alice", "call_id": "a1", "state": "connected"},
        {"user": "alice", "call_id": "a1", "state": "on_hold_forever"},
    ]
    answer = api.post(BATCH, json={"events": bad_state})
    assert answer.status_code == 422
    assert "state" in answer.json()["detail"]
    assert api.post(BATCH, json={"events": []}).status_code == 422
    too_many = [{"user": "alice", "call_id": f"c{i}", "state": "ended"} for i in range(501)]
    assert api.post(BATCH, json={"events": too_many}).status_code in (413, 422)
    assert presence(api, "alice")["telephony"] == "idle"


def test_a_users_51st_open_call_is_refused_and_named_in_the_batch_answer(
    api: httpx.Client,
) -> None:
    # A PBX that never ends its calls cannot grow a user's state without bound.
    make_user(api, "alice")
    make_user(api, "bob")
    opened = [{"user": "alice", "call_id": f"a{i}", "state": "connected"} for i in range(50)]
    assert api.post(BATCH, json={"events": opened}).json()["accepted"] == 50
    one_more = {"user": "alice", "call_id": "a50", "state": "ringing"}
    single = api.post("/api/v1/telephony/events", json=one_more)
    assert single.status_code == 409 and "more than 50 open calls" in single.json()["detail"]
    events = [
        {"user": "bob", "call_id": "b1", "state": "connected"},
        one_more,
        {"user": "alice", "call_id": "a0", "state": "ended"},
    ]
    answer = api.post(BATCH, json={"events": events})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {
        "accepted": 2,
        "users": 2,
        "rejected": [{"index": 1, "code": "conflict", "detail": "more than 50 open calls"}],
    }
    assert presence(api, "bob")["telephony"] == "on_the_phone"
    # The ended call made room: the PBX's retry of the refused event now applies.
    assert api.post("/api/v1/telephony/events", json=one_more).status_code == 200


def test_batch_needs_the_admin_token(server: ServerProcess, api: httpx.Client) -> None:
    make_user(api, "alice")
    token = api.post("/api/v1/users/alice/agent-tokens").json()["token"]
    event = {"events": [{"user": "alice", "call_id": "a1", "state": "connected"}]}
    with httpx.Client(base_url=server.url) as anonymous:
        assert anonymous.post(BATCH, json=event).status_code == 401
        as_agent = anonymous.post(BATCH, json=event, headers={"Authorization": f"Bearer {token}"})
        assert as_agent.status_code == 403
    assert presence(api, "alice")["telephony"] == "idle"
