"""The authorisation matrix (`api/access.py`) asked of the console: every console route x
{anonymous, user A on A, user A on B, administrator}, with sessions opened at a real
OpenID Connect provider. A refused request answers 403 with a page saying why (or, for
nobody signed in, the way to the sign-in page) and changes nothing."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from presencebridge.api.access import ACCESS, Access
from tests.signin.conftest import SignInWorld

ANONYMOUS = "anonymous"
OWN = "user A, on A"
OTHER = "user A, on B"
ADMIN = "administrator"
CALLERS = (ANONYMOUS, OWN, OTHER, ADMIN)
CONSOLE = sorted(
    key
    for key, access in ACCESS.items()
    if key.split(" ", 1)[1].startswith(("/console", "/ ")) or key == "GET /"
    # The sign-in and sign-out forms act on the session itself; test_sign_in_oidc.py.
    if not (access is Access.OPEN and key.startswith("POST"))
    if not key.startswith("WS ")
)


class Sessions:
    def __init__(self, world: SignInWorld) -> None:
        self.world = world
        self.clients: dict[str, httpx.Client] = {ANONYMOUS: world.browser()}
        for caller, login in ((OWN, "alice"), (ADMIN, "carol")):
            client, answer = world.sign_in(login)
            assert answer.status_code == 303, answer.text
            self.clients[caller] = client
        self.clients[OTHER] = self.clients[OWN]
        self.csrf: dict[str, str] = {}
        for caller, client in self.clients.items():
            page = client.get("/console/login" if caller == ANONYMOUS else "/").text
            found = re.search(r'name="csrf_token" value="([^"]+)"', page)
            assert found is not None
            self.csrf[caller] = found.group(1)

    def snapshot(self) -> dict[str, Any]:
        admin = self.world.server.client()
        state: dict[str, Any] = {"groups": admin.get("/api/v1/groups").json()}
        for user in (self.world.alice, self.world.bob):
            for part in ("", "/profiles", "/appointments", "/settings", "/personal-tokens"):
                state[user + part] = admin.get(f"/api/v1/users/{user}{part}").json()
            state[user + "/agent-tokens"] = admin.get(f"/api/v1/users/{user}/agent-tokens").json()
        return state


@pytest.fixture(scope="module")
def sessions(signin_world: SignInWorld) -> Iterator[Sessions]:
    made = Sessions(signin_world)
    yield made
    for client in made.clients.values():
        client.close()


def expected(access: Access, caller: str) -> str:
    if access is Access.OPEN:
        return "allowed"
    if caller == ANONYMOUS:
        return "to sign-in"
    if access is Access.SIGNED_IN or caller == ADMIN or (caller == OWN and access is Access.SELF):
        return "allowed"
    return "refused"


def answer_kind(response: httpx.Response) -> str:
    location = response.headers.get("location", "")
    if response.status_code in (302, 303, 307) and location.startswith("/console/login"):
        return "to sign-in"
    if response.status_code == 401:
        return "to sign-in"
    if response.status_code == 403:
        # Not a CSRF refusal (web/forms.py CSRF_MESSAGES) but the authorisation's.
        for csrf_words in ("security token", "out of date", "another web site"):
            assert csrf_words not in response.text, response.text[:300]
        return "refused"
    assert response.status_code < 500, response.text[:500]
    return "allowed"


def test_every_console_route_is_asked(sessions: Sessions) -> None:
    assert "GET /" in CONSOLE and "GET /console/users/{user_id}" in CONSOLE
    assert len(CONSOLE) > 40


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("route", CONSOLE)
def test_console_route_answers_each_caller_as_it_may(
    sessions: Sessions, route: str, caller: str
) -> None:
    world = sessions.world
    method, template = route.split(" ", 1)
    target = world.bob if caller in (OTHER, ADMIN) else world.alice
    path = template.format(
        user_id=target, group_id=world.group, name="entra", appointment_id="nothing"
    )
    want = expected(ACCESS[route], caller)
    before = sessions.snapshot() if want != "allowed" else None
    client = sessions.clients[caller]
    if method == "GET":
        response = client.get(path)
    else:
        response = client.post(path, data={"csrf_token": sessions.csrf[caller]})
    assert answer_kind(response) == want, f"{response.status_code}: {response.text[:300]}"
    if want == "refused":
        assert "Not allowed" in response.text
    if before is not None:
        assert sessions.snapshot() == before


@pytest.mark.parametrize("caller", [ANONYMOUS, OWN, ADMIN])
def test_the_board_stream_shows_everyone_to_everyone_signed_in(
    sessions: Sessions, caller: str
) -> None:
    world = sessions.world
    cookie = "; ".join(
        f"{c.name}={c.value}"
        for c in sessions.clients[caller].cookies.jar
        if c.name == "pb_console"
    )
    url = f"ws://127.0.0.1:{world.server.port}/console/stream"
    headers = {"Cookie": cookie} if cookie else {}
    with connect(url, additional_headers=headers, open_timeout=10) as ws:
        if caller == ANONYMOUS:
            with pytest.raises(Exception, match="not signed in"):
                ws.recv(timeout=10)
            return
        snapshot = json.loads(ws.recv(timeout=10))
        users = {p["user"] for p in snapshot["presences"]}
        assert {world.alice, world.bob} <= users  # read-only: the stream takes no writes
