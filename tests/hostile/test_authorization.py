"""The authorisation matrix (`api/access.py`, one table in the code) asked of the server:
every API route x {admin token, agent token of A and personal token of A (on A, on B), no
token, garbage tokens}; every console route x {anonymous, user A on A, user A on B,
administrator} in tests/hostile/test_console_authorization.py.

The routes are those the server serves (a route missing from `ROUTES` fails its own
row). A token acts for its own user only; anything refused (401/403) leaves every
readable state as it was, including the resource a refused DELETE aimed at.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from presencebridge.api.access import ACCESS, Access, matrix_markdown
from presencebridge.api.app import create_app
from presencebridge.config import Settings
from tests.hostile.tally import TALLY, counting_client
from tests.hostile.world import NotifyWorld
from tests.support.server import ADMIN_TOKEN, receive
from tests.sync.test_sync_tables import group

KIND = "authorisation matrix"


@dataclass
class Cast:
    """Users A and B in one group, and A's agent and personal tokens."""

    world: NotifyWorld
    group: str
    a: str
    b: str
    agent_token: str
    personal_token: str

    def admin_request(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.world.admin.request(method, path, **kwargs)
        assert response.is_success, response.text
        return response.json() if response.content else None


def fresh(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def cast(world: NotifyWorld) -> Cast:
    group_id = group(world.admin, "off")
    users = []
    for name in ("a", "b"):
        user = fresh(name)
        body = {"id": user, "display_name": name.upper(), "group": group_id}
        assert world.admin.post("/api/v1/users", json=body).status_code == 201
        users.append(user)
    made = world.admin.post(f"/api/v1/users/{users[0]}/personal-tokens", json={"name": "script"})
    assert made.status_code == 201, made.text
    personal = made.json()["token"]
    return Cast(world, group_id, users[0], users[1], world.issue_agent_token(users[0]), personal)


@pytest.fixture(scope="module")
def client(world: NotifyWorld) -> Iterator[httpx.Client]:
    """No token of its own: each request brings the Authorization header under test."""
    with counting_client(world.server.url, KIND) as counting:
        yield counting


def auth(authorization: str | None) -> dict[str, str]:
    return {} if authorization is None else {"Authorization": authorization}


# -- principals --------------------------------------------------------------------------

ADMIN = "admin"
OWN = "agent of A, on A"
OTHER = "agent of A, on B"
OWN_SCRIPT = "personal token of A, on A"
OTHER_SCRIPT = "personal token of A, on B"
NONE = "no token"
GARBAGE = "garbage tokens"
PRINCIPALS = (ADMIN, OWN, OTHER, OWN_SCRIPT, OTHER_SCRIPT, NONE, GARBAGE)


def authorizations(cast: Cast, principal: str) -> list[str | None]:
    """The Authorization headers a principal sends (None: no header at all)."""
    if principal == ADMIN:
        return [f"Bearer {ADMIN_TOKEN}"]
    if principal in (OWN, OTHER):
        return [f"Bearer {cast.agent_token}"]
    if principal in (OWN_SCRIPT, OTHER_SCRIPT):
        return [f"Bearer {cast.personal_token}"]
    if principal == NONE:
        return [None]
    near_admin = ADMIN_TOKEN[:-1] + ("x" if ADMIN_TOKEN[-1] != "x" else "y")
    return [
        f"Bearer {uuid.uuid4().hex}",
        f"Bearer {near_admin}",
        f"Bearer {cast.agent_token}x",
        f"Bearer {cast.personal_token[:-2]}",
        f"Bearer {ADMIN_TOKEN.upper()}",
        "Bearer",  # the scheme alone
        ADMIN_TOKEN,  # no scheme
        "Basic " + base64.b64encode(f"admin:{ADMIN_TOKEN}".encode()).decode(),
    ]


# -- the routes --------------------------------------------------------------------------

Make = Callable[[Cast, str], Any]


@dataclass(frozen=True)
class Route:
    ok: int  # the answer when allowed
    body: Make | None = None  # the JSON body, for the target user
    prepare: Make | None = None  # made by the admin first: extra path values
    query: dict[str, str] = field(default_factory=dict)
    content: Callable[[Cast, str], bytes] | None = None  # a body other than JSON (CSV)


def _profile(cast: Cast, user: str) -> dict[str, Any]:
    return {"name": fresh("P"), "status": "away", "text": "Pause", "color": "#112233"}


def _csv(cast: Cast, user: str) -> bytes:
    return f"id,display_name,group\n{user},Renamed,{cast.group}\n".encode()


def _template(cast: Cast, user: str) -> dict[str, Any]:
    return {**_profile(cast, user), "active": False}


def _appointment(cast: Cast, user: str) -> dict[str, Any]:
    start = datetime.now(UTC) + timedelta(days=30)
    return {
        "subject": "Review",
        "start": start.isoformat(),
        "end": (start + timedelta(hours=1)).isoformat(),
    }


def _own_order(cast: Cast, user: str) -> dict[str, Any]:
    profiles = cast.admin_request("GET", f"/api/v1/users/{user}/profiles")
    return {"names": [p["name"] for p in profiles if p["source"] == "own"]}


def _new_profile(cast: Cast, user: str) -> dict[str, str]:
    profile = _profile(cast, user)
    cast.admin_request("POST", f"/api/v1/users/{user}/profiles", json=profile)
    return {"name": profile["name"]}


def _new_appointment(cast: Cast, user: str) -> dict[str, str]:
    path = f"/api/v1/users/{user}/appointments"
    created = cast.admin_request("POST", path, json=_appointment(cast, user))
    return {"appointment_id": created["id"]}


def _call_ended(cast: Cast, user: str) -> dict[str, Any]:
    return {"user": user, "call_id": fresh("call"), "state": "ended"}


def _new_user(cast: Cast, user: str) -> dict[str, str]:
    """A user of its own for a DELETE that succeeds (A and B serve the other rows)."""
    body = {"id": fresh("u"), "display_name": "U", "group": cast.group}
    return {"user_id": cast.admin_request("POST", "/api/v1/users", json=body)["id"]}


def _new_group(cast: Cast, user: str) -> dict[str, str]:
    body = {"id": fresh("g"), "name": "G"}
    return {"group": cast.admin_request("POST", "/api/v1/groups", json=body)["id"]}


def _new_template(cast: Cast, user: str) -> dict[str, str]:
    template = _template(cast, user)
    cast.admin_request("POST", f"/api/v1/groups/{cast.group}/templates", json=template)
    return {"name": template["name"]}


def _new_token(cast: Cast, user: str) -> dict[str, str]:
    path = f"/api/v1/users/{user}/agent-tokens"
    before = {t["id"] for t in cast.admin_request("GET", path)}
    cast.admin_request("POST", path)
    [made] = [t["id"] for t in cast.admin_request("GET", path) if t["id"] not in before]
    return {"token_id": made}


def _source(cast: Cast, user: str) -> dict[str, str]:
    return {"source": "entra"}


def _rules(cast: Cast, user: str) -> dict[str, Any]:
    return {"rules": [{"member_of": "Sales", "group": cast.group}], "default_group": cast.group}


def _dead_letter(cast: Cast, user: str) -> dict[str, str]:
    return {"name": "doorsign", "entry_id": "1"}


def _new_personal_token(cast: Cast, user: str) -> dict[str, str]:
    path = f"/api/v1/users/{user}/personal-tokens"
    return {"token_id": cast.admin_request("POST", path, json={"name": "doomed"})["id"]}


def _new_service_account(cast: Cast, user: str) -> dict[str, str]:
    name = fresh("svc")
    cast.admin_request("POST", "/api/v1/admin/service-accounts", json={"name": name})
    return {"name": name}


# fmt: off
ROUTES: dict[str, Route] = {
    "POST /api/v1/groups": Route(201, body=lambda c, u: {"id": fresh("g"), "name": "G"}),
    "GET /api/v1/groups": Route(200),
    "GET /api/v1/groups/{group}": Route(200),
    "GET /api/v1/groups/{group}/settings": Route(200),
    "PATCH /api/v1/groups/{group}/settings": Route(200, body=lambda c, u: {"reassert_dnd": False}),
    "GET /api/v1/groups/{group}/templates": Route(200),
    "POST /api/v1/groups/{group}/templates": Route(201, body=_template),
    "POST /api/v1/users": Route(201, body=lambda c, u: {"id": fresh("u"), "display_name": "U", "group": c.group}),
    "GET /api/v1/users": Route(200),
    "GET /api/v1/users/{user_id}": Route(200),
    "GET /api/v1/users/{user_id}/settings": Route(200),
    "PATCH /api/v1/users/{user_id}/settings": Route(200, body=lambda c, u: {"teams_sync_mode": None}),
    "GET /api/v1/users/{user_id}/profiles": Route(200),
    "POST /api/v1/users/{user_id}/profiles": Route(201, body=_profile),
    "PUT /api/v1/users/{user_id}/profiles/order": Route(200, body=_own_order),
    "DELETE /api/v1/users/{user_id}/profiles/{name}": Route(204, prepare=_new_profile),
    "PUT /api/v1/users/{user_id}/profile": Route(200, body=lambda c, u: {"name": None}),
    "GET /api/v1/users/{user_id}/appointments": Route(200),
    "POST /api/v1/users/{user_id}/appointments": Route(201, body=_appointment),
    "DELETE /api/v1/users/{user_id}/appointments/{appointment_id}": Route(204, prepare=_new_appointment),
    "POST /api/v1/users/{user_id}/agent-tokens": Route(201),
    "GET /api/v1/users/{user_id}/agent-tokens": Route(200),
    "DELETE /api/v1/users/{user_id}/agent-tokens/{token_id}": Route(204, prepare=_new_token),
    "POST /api/v1/users/{user_id}/personal-tokens": Route(201, body=lambda c, u: {"name": "cron"}),
    "GET /api/v1/users/{user_id}/personal-tokens": Route(200),
    "DELETE /api/v1/users/{user_id}/personal-tokens/{token_id}": Route(204, prepare=_new_personal_token),
    "GET /api/v1/me": Route(200),
    "PATCH /api/v1/users/{user_id}": Route(200, body=lambda c, u: {"email": None}),
    "DELETE /api/v1/users/{user_id}": Route(204, prepare=_new_user),
    "DELETE /api/v1/groups/{group}": Route(204, prepare=_new_group),
    "DELETE /api/v1/groups/{group}/templates/{name}": Route(204, prepare=_new_template),
    "GET /api/v1/users/{user_id}/presence": Route(200),
    "GET /api/v1/users/{user_id}/history": Route(200),
    "POST /api/v1/users/{user_id}/meetings": Route(200, body=lambda c, u: {"meeting_id": fresh("m"), "state": "left"}),
    "POST /api/v1/telephony/events": Route(200, body=_call_ended),
    "POST /api/v1/telephony/events/batch": Route(200, body=lambda c, u: {"events": [_call_ended(c, u)]}),
    "POST /api/v1/admin/clock": Route(200, body=lambda c, u: {"advance_seconds": 0}),
    "GET /api/v1/admin/teams-sync": Route(200),
    # No directory in this world: the admin is told so (404); everyone else is refused.
    "POST /api/v1/admin/directory/sync": Route(404, body=lambda c, u: {"dry_run": True}),
    "GET /api/v1/admin/directory": Route(200),
    "PUT /api/v1/admin/directory/{source}/rules": Route(404, body=_rules, prepare=_source),
    "DELETE /api/v1/admin/directory/{source}/rules": Route(404, prepare=_source),
    "POST /api/v1/admin/directory/{source}/rules/preview": Route(404, body=_rules, prepare=_source),
    # No webhook in this world: the list is empty, a dead letter is unknown (404).
    "GET /api/v1/admin/webhooks": Route(200),
    "POST /api/v1/admin/webhooks/{name}/dead/{entry_id}/retry": Route(404, prepare=_dead_letter),
    "DELETE /api/v1/admin/webhooks/{name}/dead/{entry_id}": Route(404, prepare=_dead_letter),
    "POST /api/v1/admin/users/import": Route(200, query={"dry_run": "true"}, content=_csv),
    "GET /api/v1/admin/users/export": Route(200),
    "GET /api/v1/admin/cluster": Route(200),
    "GET /api/v1/admin/service-accounts": Route(200),
    "GET /api/v1/admin/audit": Route(200, query={"actor": "administrator", "limit": "5"}),
    "POST /api/v1/admin/service-accounts": Route(202, body=lambda c, u: {"name": fresh("svc")}),
    "DELETE /api/v1/admin/service-accounts/{name}": Route(204, prepare=_new_service_account),
    # Graph cannot send a token: the webhook's own checks guard it (test_webhook_forgery.py).
    "POST /graph/notifications": Route(200, query={"validationToken": "handshake"}),
    "GET /healthz": Route(200),
    "GET /metrics": Route(200),
}
# fmt: on


def documented() -> list[str]:
    app = create_app(Settings(admin_token=ADMIN_TOKEN, data_dir=Path("/nonexistent")))
    paths: dict[str, Any] = app.openapi()["paths"]
    return [f"{method.upper()} {path}" for path, ops in paths.items() for method in ops]


def expected(operation: str, route: Route, principal: str) -> int:
    access = ACCESS[operation]
    if access is Access.OPEN:
        return route.ok
    if principal in (NONE, GARBAGE):
        return 401
    if principal == ADMIN or access is Access.SIGNED_IN:
        return route.ok
    if principal in (OWN, OWN_SCRIPT) and access is Access.SELF:
        return route.ok
    return 403


def test_the_table_never_opens_administration_to_users() -> None:
    """Read against the table itself: what only administrators may do stays theirs."""
    for operation, access in ACCESS.items():
        path = operation.split(" ", 1)[1]
        if path.startswith(("/api/v1/admin/", "/api/v1/groups", "/console/groups")):
            assert access is Access.ADMIN, operation
        if "tokens" in path and operation.startswith(
            ("POST /api", "GET /api/v1/users/{user_id}/agent")
        ):
            assert access is Access.ADMIN, operation  # a token never makes or lists another
    opened = {op for op, access in ACCESS.items() if access is Access.OPEN}
    assert opened == {
        "POST /graph/notifications", "GET /healthz", "GET /metrics", "GET /robots.txt",
        "GET /openapi.json", "GET /docs", "GET /docs/oauth2-redirect", "GET /redoc",
        "GET /console/login", "POST /console/login", "GET /console/sso",
        "GET /console/sso/callback", "POST /console/logout", "POST /console/lang",
    }  # fmt: skip


def test_the_readme_shows_the_table_as_it_is() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    assert matrix_markdown() in readme, "README: paste presencebridge.api.access.matrix_markdown()"


@pytest.mark.parametrize("principal", PRINCIPALS)
@pytest.mark.parametrize("operation", documented())
def test_route_answers_each_caller_as_it_may(
    cast: Cast, client: httpx.Client, operation: str, principal: str
) -> None:
    assert operation in ROUTES, f"{operation} is not in the authorisation table"
    route = ROUTES[operation]
    method, path = operation.split(" ", 1)
    target = cast.a if principal in (OWN, OWN_SCRIPT) else cast.b
    want = expected(operation, route, principal)
    values = {"user_id": target, "group": cast.group}
    if route.prepare is not None:
        values.update(route.prepare(cast, target))  # what a refused DELETE must leave alone
    before = cast.world.snapshot(cast.a, cast.b) if want in (401, 403) else None
    for authorization in authorizations(cast, principal):
        response = client.request(
            method,
            path.format(**values),
            params=route.query,
            json=None if route.body is None else route.body(cast, target),
            content=None if route.content is None else route.content(cast, target),
            headers=auth(authorization),
        )
        assert response.status_code == want, f"{authorization!r}: {response.text}"
    if before is not None:
        assert cast.world.snapshot(cast.a, cast.b) == before


# -- WebSockets ----------------------------------------------------------------------------


def _open(cast: Cast, path: str, authorization: str | None, query: str = "") -> Any:
    url = f"ws://127.0.0.1:{cast.world.server.port}{path}{query}"
    headers = {} if authorization is None else {"Authorization": authorization}
    try:
        ws = connect(url, additional_headers=headers, open_timeout=5)
    except InvalidStatus as refused:
        TALLY.record(KIND, refused.response.status_code)
        return refused.response.status_code
    TALLY.record(KIND, 101)
    return ws


@pytest.mark.parametrize("principal", [ADMIN, OWN, NONE, GARBAGE])
def test_presence_stream_shows_each_caller_only_what_it_may(cast: Cast, principal: str) -> None:
    for authorization in authorizations(cast, principal):
        ws = _open(cast, "/api/v1/presence/stream", authorization)
        if principal in (NONE, GARBAGE):
            assert ws == 403
            continue
        with ws:
            users = {p["user"] for p in receive(ws)["presences"]}
            if principal == ADMIN:
                assert {cast.a, cast.b} <= users
            else:
                assert users == {cast.a}  # the agent's own user, no one else


def test_presence_stream_refuses_garbage_in_the_query_too(cast: Cast) -> None:
    for authorization in authorizations(cast, GARBAGE):
        if not (authorization or "").startswith("Bearer "):
            continue  # without the scheme the admin token is no garbage in a query
        token = quote((authorization or "").removeprefix("Bearer "), safe="")
        assert _open(cast, "/api/v1/presence/stream", None, f"?token={token}") == 403


def test_presence_stream_of_an_agent_carries_no_other_users_changes(cast: Cast) -> None:
    ws = _open(cast, "/api/v1/presence/stream", f"Bearer {cast.agent_token}")
    assert not isinstance(ws, int)
    with ws:
        receive(ws)  # the snapshot
        for user in (cast.b, cast.a):
            cast.admin_request("PUT", f"/api/v1/users/{user}/profile", json={"name": "Termin"})
            cast.admin_request("PUT", f"/api/v1/users/{user}/profile", json={"name": None})
        assert receive(ws)["user"] == cast.a


@pytest.mark.parametrize("principal", [ADMIN, OWN, OWN_SCRIPT, NONE, GARBAGE])
def test_agent_stream_takes_only_an_agent_token(cast: Cast, principal: str) -> None:
    for authorization in authorizations(cast, principal):
        ws = _open(cast, "/api/v1/agent/stream", authorization)
        if principal != OWN:
            assert ws == 403  # the admin token is no agent's token either
            continue
        with ws:
            assert receive_for_settings(ws)["user"] == cast.a


def receive_for_settings(ws: Any) -> dict[str, Any]:
    while True:
        message = receive(ws)
        if message.get("type") == "settings":
            return message


# -- user_may_change ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def locked(world: NotifyWorld) -> Iterator[tuple[str, str, str]]:
    """A user in a group whose `user_may_change` is false, and the user's agent token."""
    group_id = group(world.admin, "telephony_only", user_may_change=False)
    user = fresh("c")
    body = {"id": user, "display_name": "C", "group": group_id}
    assert world.admin.post("/api/v1/users", json=body).status_code == 201
    yield group_id, user, world.issue_agent_token(user)


def test_user_may_not_change_own_mode_while_the_group_says_so(
    world: NotifyWorld, client: httpx.Client, locked: tuple[str, str, str]
) -> None:
    group_id, user, token = locked
    agent = auth(f"Bearer {token}")
    settings = f"/api/v1/users/{user}/settings"
    before = world.snapshot(user)
    for mode in ("off", "telephony_and_presence", None):
        refused = client.patch(settings, json={"teams_sync_mode": mode}, headers=agent)
        assert refused.status_code == 403
        assert "user_may_change" in refused.json()["detail"]
    assert world.snapshot(user) == before
    shown = client.get(settings, headers=agent).json()
    assert shown["user_may_change"] is False
    assert shown["effective_teams_sync_mode"] == "telephony_only"
    # SPEC §5 locks the mode only: the user still picks a presence profile.
    profile = f"/api/v1/users/{user}/profile"
    assert client.put(profile, json={"name": "Termin"}, headers=agent).is_success
    assert client.put(profile, json={"name": None}, headers=agent).is_success
    # The admin may, and once the group allows it the user may too.
    assert world.admin.patch(settings, json={"teams_sync_mode": "off"}).status_code == 200
    group_settings = f"/api/v1/groups/{group_id}/settings"
    assert world.admin.patch(group_settings, json={"user_may_change": True}).is_success
    allowed = client.patch(settings, json={"teams_sync_mode": "telephony_only"}, headers=agent)
    assert allowed.status_code == 200
    assert world.admin.patch(group_settings, json={"user_may_change": False}).is_success


# -- the console -------------------------------------------------------------------------


@pytest.mark.parametrize("principal", [ADMIN, OWN, GARBAGE])
def test_a_bearer_token_does_not_open_the_console(
    cast: Cast, client: httpx.Client, principal: str
) -> None:
    """The console signs in with a session; a token in a header opens no page and no form."""
    pages = [
        "/",
        "/console/groups",
        "/console/sync",
        "/console/webhooks",
        "/console/service-accounts",
        "/console/tokens",
        "/console/audit",
        f"/console/users/{cast.a}",
    ]
    before = cast.world.snapshot(cast.a)
    for authorization in authorizations(cast, principal):
        for page in pages:
            response = client.get(page, headers=auth(authorization))
            assert response.status_code in (302, 303, 307), (page, response.status_code)
            assert response.headers["location"].startswith("/console/login")
        form = {"name": "Termin"}
        path = f"/console/users/{cast.a}/profile"
        posted = client.post(path, data=form, headers=auth(authorization))
        assert posted.status_code in (303, 403), posted.status_code
        if posted.status_code == 303:
            assert posted.headers["location"].startswith("/console/login")
    assert cast.world.snapshot(cast.a) == before
