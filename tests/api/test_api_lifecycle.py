"""The user lifecycle over HTTP against a real server (issue 12): PATCH and DELETE,
extensions and numbers, PBX events by extension and number, token revocation.

Every refusal is checked twice: the answer names the problem, and a GET afterwards
shows that nothing was written.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.support.server import ServerProcess, make_user, receive

USERS = "/api/v1/users"
EVENTS = "/api/v1/telephony/events"
BATCH = "/api/v1/telephony/events/batch"


def get_user(api: httpx.Client, user: str) -> dict[str, Any]:
    answer = api.get(f"{USERS}/{user}")
    assert answer.status_code == 200, answer.text
    result: dict[str, Any] = answer.json()
    return result


def telephony(api: httpx.Client, user: str) -> str:
    value: str = get_user(api, user)["presence"]["telephony"]
    return value


def alice_with_addresses(api: httpx.Client) -> None:
    make_user(api, "alice")
    body = {"extensions": ["2101"], "numbers": ["030 1234567", "+49 171 2345678"]}
    answer = api.patch(f"{USERS}/alice", json=body)
    assert answer.status_code == 200, answer.text


def test_patch_changes_only_the_fields_given_and_null_clears(api: httpx.Client) -> None:
    make_user(api, "alice")
    make_user(api, "bob", group="sales")
    body = {
        "display_name": "Alice Liddell",
        "email": "alice@example.com",
        "teams_user_id": "t-alice",
        "extensions": ["2101", " 2102 "],
        "numbers": ["030 1234567", "0049 30 1234567"],  # one number, twice
    }
    answer = api.patch(f"{USERS}/alice", json=body)
    assert answer.status_code == 200, answer.text
    alice = answer.json()
    assert alice["display_name"] == "Alice Liddell"
    assert alice["group"] == "hq"
    assert alice["email"] == "alice@example.com"
    assert alice["extensions"] == ["2101", "2102"]
    assert alice["numbers"] == ["+49301234567"]

    answer = api.patch(f"{USERS}/alice", json={"group": "sales", "email": None})
    assert answer.status_code == 200, answer.text
    alice = get_user(api, "alice")
    assert (alice["group"], alice["email"], alice["teams_user_id"]) == ("sales", None, "t-alice")
    assert alice["extensions"] == ["2101", "2102"]
    history = api.get(f"{USERS}/alice/history").json()
    assert [h["source"] for h in history[:2]] == ["admin", "admin"]
    assert history[0]["change"] == "group: hq -> sales; email: alice@example.com -> -"


BAD_PATCHES: list[tuple[dict[str, Any], int, str]] = [
    ({"numbers": ["030 1234567", "12ab"]}, 422, "'12ab'"),
    ({"extensions": ["21a1"]}, 422, "extensions.0"),
    ({"display_name": None}, 422, "display_name"),
    ({"group": "nowhere"}, 404, "'nowhere'"),
    ({"email": "not an address"}, 422, "email"),
    ({"teams_user_id": "t-bob"}, 409, "'bob'"),
    ({"extensions": ["2201"]}, 409, "'bob'"),
    ({"numbers": ["+49 30 7654321"]}, 409, "'bob'"),
    ({"colour": "red"}, 422, "colour"),
]


def test_bad_input_is_named_and_changes_nothing(api: httpx.Client) -> None:
    make_user(api, "alice")
    make_user(api, "bob")
    bob = {"teams_user_id": "t-bob", "extensions": ["2201"], "numbers": ["030 7654321"]}
    assert api.patch(f"{USERS}/bob", json=bob).status_code == 200
    before = get_user(api, "alice")
    history = api.get(f"{USERS}/alice/history").json()

    for body, status, named in BAD_PATCHES:
        answer = api.patch(f"{USERS}/alice", json={"display_name": "Changed", **body})

        assert answer.status_code == status, (body, answer.text)
        assert named in answer.json()["detail"], (body, answer.text)
        assert get_user(api, "alice") == before
    assert api.get(f"{USERS}/alice/history").json() == history
    answer = api.patch(f"{USERS}/nobody", json={"display_name": "X"})
    assert answer.status_code == 404
    assert api.delete(f"{USERS}/a%2Fb").status_code == 422


def test_create_takes_addresses_and_refuses_duplicates(api: httpx.Client) -> None:
    alice_with_addresses(api)
    body = {"id": "bob", "display_name": "Bob", "group": "hq", "extensions": ["2101"]}
    answer = api.post(USERS, json=body)
    assert answer.status_code == 409
    assert "'alice'" in answer.json()["detail"]
    assert api.get(f"{USERS}/bob").status_code == 404

    body = {**body, "extensions": ["2102"], "numbers": ["+49 30 9876543"], "email": "b@x.de"}
    answer = api.post(USERS, json=body)
    assert answer.status_code == 201, answer.text
    assert answer.json()["numbers"] == ["+49309876543"]


def test_pbx_events_by_extension_and_by_number_in_any_notation(api: httpx.Client) -> None:
    alice_with_addresses(api)
    for name, value in (
        ("extension", "2101"),
        ("number", "030 1234567"),
        ("number", "+49 30 1234567"),
        ("number", "0049 171 2345678"),
    ):
        call = f"call-{value}"
        answer = api.post(EVENTS, json={name: value, "call_id": call, "state": "connected"})
        assert answer.status_code == 200, answer.text
        assert telephony(api, "alice") == "on_the_phone"
        assert api.post(EVENTS, json={name: value, "call_id": call, "state": "ended"}).is_success
        assert telephony(api, "alice") == "idle"

    answer = api.post(EVENTS, json={"extension": "2199", "call_id": "x", "state": "connected"})
    assert answer.status_code == 404
    assert answer.json()["detail"] == "unknown extension '2199'"
    assert telephony(api, "alice") == "idle"

    for both in ({"user": "alice", "extension": "2101"}, {}):
        answer = api.post(EVENTS, json={**both, "call_id": "x", "state": "connected"})
        assert answer.status_code == 422
        assert "exactly one of user, extension, number" in answer.json()["detail"]
    assert telephony(api, "alice") == "idle"


def test_a_batch_with_one_unknown_number_applies_nothing(api: httpx.Client) -> None:
    alice_with_addresses(api)
    make_user(api, "bob")
    events = [
        {"extension": "2101", "call_id": "a1", "state": "connected"},
        {"user": "bob", "call_id": "b1", "state": "connected"},
        {"number": "030 5555555", "call_id": "n1", "state": "connected"},
    ]
    answer = api.post(BATCH, json={"events": events})
    assert answer.status_code == 404
    assert "unknown number '030 5555555'" in answer.json()["detail"]
    assert "no event was applied" in answer.json()["detail"]
    assert telephony(api, "alice") == telephony(api, "bob") == "idle"

    answer = api.post(BATCH, json={"events": events[:2]})
    assert answer.json() == {"accepted": 2, "users": 2, "rejected": []}
    assert telephony(api, "alice") == telephony(api, "bob") == "on_the_phone"


def test_delete_user_and_groups_and_templates(api: httpx.Client) -> None:
    alice_with_addresses(api)
    api.post(f"{USERS}/alice/agent-tokens")

    answer = api.delete("/api/v1/groups/hq")
    assert answer.status_code == 409
    assert "1 user" in answer.json()["detail"]
    assert api.get("/api/v1/groups/hq").status_code == 200

    assert api.delete(f"{USERS}/alice").status_code == 204
    assert api.get(f"{USERS}/alice").status_code == 404
    assert api.delete(f"{USERS}/alice").status_code == 404
    # Its extension is free again; the history went with the user.
    make_user(api, "alice")
    assert api.get(f"{USERS}/alice/history").json() == []
    assert api.patch(f"{USERS}/alice", json={"extensions": ["2101"]}).status_code == 200
    assert api.delete(f"{USERS}/alice").status_code == 204

    template = {"name": "Home/Office", "status": "away", "text": "Zuhause", "color": "#00aa00"}
    assert api.post("/api/v1/groups/hq/templates", json=template).status_code == 201
    assert api.delete("/api/v1/groups/hq/templates/Home/Office").status_code == 204
    answer = api.delete("/api/v1/groups/hq/templates/Home%2FOffice")
    assert answer.status_code == 404
    assert "'Home/Office'" in answer.json()["detail"]
    assert api.get("/api/v1/groups/hq/templates").json() == []

    assert api.delete("/api/v1/groups/hq").status_code == 204
    assert api.get("/api/v1/groups/hq").status_code == 404


def test_a_revoked_token_stops_working_at_once(server: ServerProcess, api: httpx.Client) -> None:
    make_user(api, "alice")
    token = api.post(f"{USERS}/alice/agent-tokens").json()["token"]
    kept = api.post(f"{USERS}/alice/agent-tokens").json()["token"]
    listed = api.get(f"{USERS}/alice/agent-tokens").json()
    assert len(listed) == 2
    assert all(set(t) == {"id", "created_at"} for t in listed)
    assert token not in str(listed)
    url = f"ws://127.0.0.1:{server.port}/api/v1/agent/stream"
    with server.client(token) as agent_api:
        assert agent_api.get(f"{USERS}/alice/presence").status_code == 200
        with connect(url, additional_headers={"Authorization": f"Bearer {token}"}) as ws:
            ws.recv(timeout=5)  # the settings: connected
            revoked = listed[0]["id"]  # the older one: `token`
            assert api.delete(f"{USERS}/alice/agent-tokens/{revoked}").status_code == 204
            # The open stream is closed; the API refuses the token from now on.
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    ws.recv(timeout=5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    with server.client(token) as agent_api:
        assert agent_api.get(f"{USERS}/alice/presence").status_code == 401
    assert api.get(f"{USERS}/alice/agent-tokens").json() == listed[1:]
    with server.client(kept) as agent_api:
        assert agent_api.get(f"{USERS}/alice/presence").status_code == 200
    assert api.delete(f"{USERS}/alice/agent-tokens/{revoked}").status_code == 404


def test_a_deleted_user_is_removed_from_the_stream_and_its_next_snapshot(
    server: ServerProcess, api: httpx.Client
) -> None:
    make_user(api, "alice")
    make_user(api, "bob")
    with server.stream() as ws:
        assert {p["user"] for p in receive(ws)["presences"]} == {"alice", "bob"}
        assert api.delete(f"{USERS}/alice").status_code == 204
        assert receive(ws) == {"type": "removed", "user": "alice"}
    with server.stream() as ws:
        assert [p["user"] for p in receive(ws)["presences"]] == ["bob"]
