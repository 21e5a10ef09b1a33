"""Names and identifiers at the API's edge (issue 19, defects 5 and 6).

* Text the database cannot keep (NUL, other control characters) is refused with a
  422 naming the field, never a 500 - and never fails other users' requests that
  share its commit (PostgreSQL, concurrent PBX events).
* Every profile name that can be created can be addressed: selected and deleted,
  whatever reserved URL characters it holds.
* User and group ids in the path are checked: anything refused is a 422 naming the
  parameter.
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from websockets.sync.client import connect

from presencebridge.core.partition import partition_of
from tests.support.postgres import drop_database, fresh_database
from tests.support.redis import throwaway_redis
from tests.support.server import ADMIN_TOKEN, ServerProcess, make_user
from tests.support.teams import eventually


def profile(name: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "status": "busy", "text": "Away from desk", "color": "#123456", **fields}


def own_profiles(api: httpx.Client, user: str) -> list[str]:
    response = api.get(f"/api/v1/users/{user}/profiles")
    assert response.status_code == 200, response.text
    return [p["name"] for p in response.json() if p["source"] == "own"]


# -- defect 5: NUL and other control characters, on PostgreSQL -------------------------------

USERS = [f"u{i}" for i in range(12)]
APPOINTMENT = {"start": "2030-01-01T10:00:00+00:00", "end": "2030-01-01T11:00:00+00:00"}

# method, path, JSON body, the field the refusal must name
BAD_REQUESTS: list[tuple[str, str, Any, str]] = [
    ("POST", "/api/v1/users/u0/profiles", profile("Home\x00"), "name"),
    ("POST", "/api/v1/users/u0/profiles", profile("Home", text="a\x00b"), "text"),
    (
        "POST",
        "/api/v1/users/u0/profiles",
        profile("Home", call_forwarding="+49\x00"),
        "call_forwarding",
    ),
    ("PUT", "/api/v1/users/u0/profile", {"name": "Home\x00"}, "name"),
    ("PUT", "/api/v1/users/u0/profiles/order", {"names": ["a\x00"]}, "names.0"),
    ("POST", "/api/v1/users/u0/appointments", {"subject": "Lunch\x00", **APPOINTMENT}, "subject"),
    (
        "POST",
        "/api/v1/telephony/events",
        {"user": "u0", "call_id": "c\x00", "state": "connected"},
        "call_id",
    ),
    (
        "POST",
        "/api/v1/telephony/events/batch",
        {
            "events": [
                {"user": "u1", "call_id": "ok", "state": "ringing"},
                {"user": "u0", "call_id": "c\x00", "state": "connected"},
            ]
        },
        "events.1.call_id",
    ),
    ("POST", "/api/v1/users/u0/meetings", {"meeting_id": "m\x00", "state": "joined"}, "meeting_id"),
    ("POST", "/api/v1/groups", {"id": "g2", "name": "Second\x00"}, "name"),
    (
        "POST",
        "/api/v1/users",
        {"id": "nul", "display_name": "N\x00L", "group": "hq"},
        "display_name",
    ),
    ("POST", "/api/v1/groups/hq/templates", {**profile("Tmpl\x00"), "active": True}, "name"),
    (
        "PATCH",
        "/api/v1/groups/hq/settings",
        {"MicrophoneUsageSync.ProcessWhitelist": "zoom\x00"},
        "MicrophoneUsageSync.ProcessWhitelist",
    ),
    ("POST", "/api/v1/users/u0/profiles", profile("Tab\there"), "name"),
    ("POST", "/api/v1/users/u0/appointments", {"subject": "a\ud800", **APPOINTMENT}, "subject"),
    (
        "POST",
        "/api/v1/users",
        {"id": "sur", "display_name": "\udc00", "group": "hq"},
        "display_name",
    ),
    ("POST", "/api/v1/users/u0/profiles", profile("Zero\u200bwidth"), "name"),
]


@pytest.fixture
def database_url(postgres_server: str) -> Iterator[str]:
    url = fresh_database(postgres_server)
    yield url
    drop_database(postgres_server, url)


@pytest.mark.postgres
def test_nul_is_refused_and_never_fails_other_users_requests_on_postgresql(
    tmp_path: Path, database_url: str
) -> None:
    server = ServerProcess(tmp_path / "data", PRESENCEBRIDGE_DATABASE_URL=database_url)
    server.start()
    try:
        with server.client() as api:
            for user in USERS:
                make_user(api, user)
            before = api.get("/api/v1/users/u0/profiles").json()

        # Good PBX events of every user, with the bad requests in between, from many
        # clients at once so they share the hub's commits.
        good = [
            ("POST", "/api/v1/telephony/events", {"user": u, "call_id": f"{u}-{n}", "state": s}, "")
            for n in range(3)
            for s in ("ringing", "connected")
            for u in USERS
        ]
        requests = []
        for index, request in enumerate(good):
            requests.append((True, request))
            if index % 3 == 0:
                requests.append((False, BAD_REQUESTS[(index // 3) % len(BAD_REQUESTS)]))
        requests += [(False, bad) for bad in BAD_REQUESTS]

        def send(item: tuple[bool, tuple[str, str, Any, str]]) -> tuple[bool, str, int, Any]:
            ok, (method, path, body, field) = item
            with server.client() as client:
                response = client.request(
                    method,
                    path,
                    content=json.dumps(body),  # \u0000 escapes, as a JSON client sends them
                    headers={"Content-Type": "application/json"},
                )
            is_json = response.headers.get("content-type") == "application/json"
            return ok, field, response.status_code, response.json() if is_json else response.text

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(send, requests))

        failed_good = [(code, body) for ok, _, code, body in answers if ok and code != 200]
        assert failed_good == [], "good requests of other users failed"
        for ok, field, code, body in answers:
            if not ok:
                assert code == 422, (field, code, body)
                assert body["detail"].startswith(field + ":") or f"{field}:" in body["detail"], body

        with server.client() as api:
            for user in USERS:
                presence = api.get(f"/api/v1/users/{user}/presence").json()
                assert presence["telephony"] == "on_the_phone", (user, presence)
            # Nothing of the refused requests was written.
            assert api.get("/api/v1/users/u0/profiles").json() == before
            assert api.get("/api/v1/users/u0/appointments").json() == []
            assert [g["id"] for g in api.get("/api/v1/groups").json()] == ["hq"]
            assert api.get("/api/v1/users/nul").status_code == 404
            assert api.get("/api/v1/users/sur").status_code == 404
            whitelist = api.get("/api/v1/groups/hq/settings").json()
            assert whitelist["MicrophoneUsageSync.ProcessWhitelist"] == ""
        assert "Traceback" not in (tmp_path / "data" / "server.log").read_text()
    finally:
        server.stop()


# -- defect 6 and the reserved-character matrix ------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    process = ServerProcess(tmp_path_factory.mktemp("names"))
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def api(server: ServerProcess) -> Iterator[httpx.Client]:
    with server.client() as client:
        make_user(client, "alice")
        yield client


def test_a_profile_named_with_a_slash_can_be_deleted(api: httpx.Client) -> None:
    for name in ("Home/Office", "A/B/C"):
        assert api.post("/api/v1/users/alice/profiles", json=profile(name)).status_code == 201
    chosen = api.put("/api/v1/users/alice/profile", json={"name": "Home/Office"})
    assert chosen.status_code == 200 and chosen.json()["profile"] == "Home/Office"

    # The slash percent-encoded, as a client that quotes the name sends it ...
    assert api.delete("/api/v1/users/alice/profiles/Home%2FOffice").status_code == 204
    # ... and as it is typed.
    assert api.delete("/api/v1/users/alice/profiles/A/B/C").status_code == 204

    assert own_profiles(api, "alice") == []
    assert api.get("/api/v1/users/alice/presence").json()["profile"] is None


NAMES = [
    "Home/Office",
    "/leading",
    "trailing/",
    "Question?",
    "Room #1",
    "100%",
    "50%25 off",  # looks percent-encoded; it is not
    "Home%2FOffice",
    "a b  c",
    "plus+sign",
    "amp&eq=1",
    "semi;colon",
    "Büro Süd",
    "会議中",
    "🎧 Focus",
    "back\\slash",
    "...",
    "order",  # the name of the sibling route PUT /profiles/order
]


@pytest.mark.parametrize("name", NAMES)
def test_every_profile_name_can_be_created_selected_used_and_deleted(
    api: httpx.Client, name: str
) -> None:
    created = api.post("/api/v1/users/alice/profiles", json=profile(name))
    assert created.status_code == 201, created.text
    assert name in own_profiles(api, "alice")

    chosen = api.put("/api/v1/users/alice/profile", json={"name": name})
    assert chosen.status_code == 200, chosen.text
    assert chosen.json()["profile"] == name
    appointment = api.post(
        "/api/v1/users/alice/appointments",
        json={"subject": "s", "profile": name, **APPOINTMENT},
    )
    assert appointment.status_code == 201, appointment.text
    aid = appointment.json()["id"]
    assert api.delete(f"/api/v1/users/alice/appointments/{quote(aid, safe='')}").status_code == 204

    deleted = api.delete(f"/api/v1/users/alice/profiles/{quote(name, safe='')}")
    assert deleted.status_code == 204, deleted.text
    assert name not in own_profiles(api, "alice")
    assert api.get("/api/v1/users/alice/presence").json()["profile"] is None


def test_profile_names_are_normalised_at_the_edge(api: httpx.Client) -> None:
    decomposed = unicodedata.normalize("NFD", "Café")
    created = api.post("/api/v1/users/alice/profiles", json=profile(f"  {decomposed} \n"))
    assert created.status_code == 201, created.text
    assert "Café" in own_profiles(api, "alice")  # composed, trimmed
    # Either spelling finds it.
    chosen = api.put("/api/v1/users/alice/profile", json={"name": decomposed})
    assert chosen.status_code == 200 and chosen.json()["profile"] == "Café"
    assert api.delete(f"/api/v1/users/alice/profiles/{quote(decomposed)}").status_code == 204
    assert "Café" not in own_profiles(api, "alice")


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("", "name"),
        ("   ", "name"),
        ("Zero\u200bwidth", "U+200B"),
        ("\u200b", "U+200B"),
        ("Soft\u00adhyphen", "U+00AD"),
        ("Line\nbreak", "U+000A"),
        ("Bell\x07", "U+0007"),
        ("Nul\x00", "U+0000"),
        ("Del\x7f", "U+007F"),
        ("C1\x85control", "U+0085"),
        ("..", "name"),
        (".", "name"),
    ],
)
def test_bad_profile_names_are_refused_with_422_naming_the_field(
    api: httpx.Client, name: str, reason: str
) -> None:
    before = own_profiles(api, "alice")
    for method, path, body in [
        ("POST", "/api/v1/users/alice/profiles", profile(name)),
        ("POST", "/api/v1/groups/hq/templates", {**profile(name), "active": True}),
    ]:
        response = api.request(method, path, json=body)
        assert response.status_code == 422, response.text
        detail = response.json()["detail"]
        assert detail.startswith("name:") and reason in detail, detail
    assert own_profiles(api, "alice") == before
    assert all(t["name"] != name for t in api.get("/api/v1/groups/hq/templates").json())


BAD_IDS = ["a/b", "a?b", "a#b", "100%", "a b", "Jürgen", "ü", "%2F", "-leading", "x" * 129]


@pytest.mark.parametrize("bad", BAD_IDS)
def test_user_and_group_ids_with_reserved_characters_are_refused_naming_the_parameter(
    api: httpx.Client, bad: str
) -> None:
    encoded = quote(bad, safe="")
    for path, parameter in [
        (f"/api/v1/users/{encoded}", "user_id"),
        (f"/api/v1/users/{encoded}/presence", "user_id"),
        (f"/api/v1/users/{encoded}/profiles", "user_id"),
        (f"/api/v1/groups/{encoded}", "group"),
        (f"/api/v1/groups/{encoded}/settings", "group"),
        (f"/api/v1/groups/{encoded}/templates", "group"),
    ]:
        response = api.get(path)
        assert response.status_code == 422, (path, response.status_code, response.text)
        assert parameter in response.json()["detail"], response.text


def test_valid_ids_keep_working_in_the_path(api: httpx.Client) -> None:
    make_user(api, "j.doe+pbx@example-1", group="hq.2_x")
    for path in [
        "/api/v1/users/j.doe+pbx@example-1",
        "/api/v1/users/j.doe%2Bpbx%40example-1/presence",
        "/api/v1/groups/hq.2_x/settings",
    ]:
        assert api.get(path).status_code == 200, path


@pytest.mark.parametrize("bad", ["a\x00b", "a\x1fb"])
def test_control_characters_in_path_parameters_are_refused(api: httpx.Client, bad: str) -> None:
    encoded = quote(bad, safe="")
    for method, path, parameter in [
        ("GET", f"/api/v1/users/{encoded}/presence", "user_id"),
        ("DELETE", f"/api/v1/users/alice/profiles/{encoded}", "name"),
        ("DELETE", f"/api/v1/users/alice/appointments/{encoded}", "appointment_id"),
    ]:
        response = api.request(method, path)
        assert response.status_code == 422, (path, response.text)
        assert parameter in response.json()["detail"], response.text


@pytest.mark.parametrize("aid", ["a/b", "a?b", "a b", "ü", "%2F"])
def test_unknown_appointment_ids_with_reserved_characters_are_404(
    api: httpx.Client, aid: str
) -> None:
    response = api.delete(f"/api/v1/users/alice/appointments/{quote(aid, safe='')}")
    assert response.status_code == 404, response.text
    assert repr(aid) in response.json()["detail"]


# -- the console's forms and the agent's messages get the same checks ----------------------------


def test_console_forms_refuse_what_the_api_refuses(
    server: ServerProcess, api: httpx.Client
) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as console:
        login = console.get("/console/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', login.text)
        assert token is not None
        form = {"token": ADMIN_TOKEN, "csrf_token": token.group(1)}
        assert console.post("/console/login", data=form).status_code == 303
        token = re.search(r'name="csrf_token" value="([^"]+)"', console.get("/").text)
        assert token is not None
        csrf = token.group(1)

        settings = {
            "csrf_token": csrf,
            "teams_sync_mode": "off",
            "MicrophoneUsageSync.ProcessWhitelist": "zoom\x00",
        }
        page = console.post("/console/groups/hq/settings", data=settings)
        assert page.status_code == 422 and "U+0000" in page.text
        stored = api.get("/api/v1/groups/hq/settings").json()
        assert stored["MicrophoneUsageSync.ProcessWhitelist"] == ""

        before = own_profiles(api, "alice")
        added = console.post(
            "/console/users/alice/profiles",
            data={"csrf_token": csrf, **profile("Zero\u200bwidth")},
        )
        assert added.status_code == 422 and "U+200B" in added.text
        assert own_profiles(api, "alice") == before


def test_agent_messages_with_control_characters_are_refused(
    server: ServerProcess, api: httpx.Client
) -> None:
    token = api.post("/api/v1/users/alice/agent-tokens").json()["token"]
    url = f"ws://127.0.0.1:{server.port}/api/v1/agent/stream"
    with connect(url, additional_headers={"Authorization": f"Bearer {token}"}) as ws:
        ws.send(json.dumps({"type": "microphone", "processes": ["zoom\x00"]}))
        while True:
            message = json.loads(ws.recv(timeout=5))
            if message["type"] == "error":
                break
        assert message["detail"].startswith("processes.0: must not contain a control character")


# -- several nodes: a request passed on to the user's node keeps its path as sent ----------------


@pytest.mark.postgres
def test_a_name_with_reserved_characters_reaches_the_node_that_handles_the_user(
    tmp_path: Path, database_url: str
) -> None:
    partitions = 4
    nodes: list[ServerProcess] = []
    with throwaway_redis() as redis_url:
        try:
            for n in (1, 2):
                node = ServerProcess(
                    tmp_path / f"node{n}",
                    PRESENCEBRIDGE_DATABASE_URL=database_url,
                    PRESENCEBRIDGE_REDIS_URL=redis_url,
                    PRESENCEBRIDGE_NODE_ID=f"node{n}",
                    PRESENCEBRIDGE_PARTITIONS=str(partitions),
                )
                node.start()
                nodes.append(node)
            first, second = nodes

            def owned_by_second() -> list[int]:
                with second.client() as api:
                    owned: list[int] = api.get("/api/v1/admin/cluster").json()["owned"]
                    return owned

            owned = eventually(owned_by_second, lambda o: 0 < len(o) < partitions, timeout=30)
            user = next(f"u{i}" for i in range(100) if partition_of(f"u{i}", partitions) in owned)
            with first.client() as api:
                eventually(
                    lambda: api.post("/api/v1/groups", json={"id": "hq", "name": "HQ"}),
                    lambda r: r.status_code == 201,
                    timeout=10,
                )
                body = {"id": user, "display_name": "U", "group": "hq"}
                created = eventually(
                    lambda: api.post("/api/v1/users", json=body),
                    lambda r: r.status_code != 503,  # a partition moving: retry, as clients do
                    timeout=10,
                )
                assert created.status_code == 201, created.text
                # Node 1 learns of the user from node 2 a moment later.
                eventually(lambda: api.get(f"/api/v1/users/{user}").status_code, (200).__eq__, 10)
                for name in ("Room #1?", "Home/Office", "100% Büro"):
                    added = api.post(f"/api/v1/users/{user}/profiles", json=profile(name))
                    assert added.status_code == 201, added.text
                    # Asked of node 1, handled by node 2.
                    path = f"/api/v1/users/{user}/profiles/{quote(name, safe='')}"
                    deleted = eventually(
                        lambda path=path: api.delete(path),  # type: ignore[misc]
                        lambda r: r.status_code != 503,
                        timeout=10,
                    )
                    assert deleted.status_code == 204, (name, deleted.text)
                    with second.client() as owner:
                        assert name not in own_profiles(owner, user)
        finally:
            for node in nodes:
                node.stop()
