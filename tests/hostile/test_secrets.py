"""Tokens and secrets: hashed or encrypted at rest, and never in the log, even at debug level.

The hub of world.py holds every kind of secret: the admin token, agent tokens, the
app's client secret, the key of the token caches, a subscription's clientState, and
Graph tokens for its service account (JWTs). Requests below carry them (and near
misses of them) every way a client might: headers, query strings, bodies, forms.
"""

from __future__ import annotations

import base64
import re
import sqlite3
import time
from pathlib import Path
from urllib.parse import quote

import httpx
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from presencebridge.web.security import SESSION_COOKIE
from tests.hostile.tally import TALLY, counting_client
from tests.hostile.world import NotifyWorld
from tests.support.server import ADMIN_TOKEN, receive

KIND = "secrets in logs and at rest"
# A JWT (access, refresh or id token, validation token): base64url JSON header and claims.
JWT = re.compile(rb"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}")
NEAR_ADMIN = ADMIN_TOKEN[:-3] + "xyz"  # a mistyped admin token is as secret as the real one
# Credentials the hub only ever sees inside OAuth traffic (msal logs it at debug level):
# their values are unknown here, so a field of that name must show no long value.
CREDENTIAL_FIELD = re.compile(
    rb'"(access_token|refresh_token|id_token|device_code|code|client_secret|client_assertion)"'
    rb'\s*:\s*"([^"]*)"'
)


def leaks(content: bytes, secrets: dict[str, str]) -> list[str]:
    found = [what for what, secret in secrets.items() if secret.encode() in content]
    found += [f"a JWT ({m.group()[:12].decode()}…)" for m in JWT.finditer(content)]
    for match in CREDENTIAL_FIELD.finditer(content):
        name, value = match.group(1).decode(), match.group(2)
        if len(value) >= 16 and set(value) != {ord("*")}:
            found.append(f"{name} {value[:6].decode(errors='replace')}…")
    return found


def all_secrets(world: NotifyWorld) -> dict[str, str]:
    return {"admin token": ADMIN_TOKEN, "mistyped admin token": NEAR_ADMIN, **world.secrets}


def test_nothing_secret_is_stored_readable(world: NotifyWorld) -> None:
    tokens = [world.issue_agent_token(world.anna.id) for _ in range(3)]
    with counting_client(world.server.url, KIND) as client:
        for token in tokens:  # stored: each one works
            headers = {"Authorization": f"Bearer {token}"}
            response = client.get(f"/api/v1/users/{world.anna.id}/presence", headers=headers)
            assert response.status_code == 200
    # The log is the next test's business; here: what the hub stores.
    files = [p for p in world.server.data_dir.rglob("*") if p.is_file() and p.suffix != ".log"]
    database = world.server.data_dir / "presencebridge.db"
    assert database in files
    assert any(p.parent.name == "service-accounts" for p in files)  # the token cache
    secrets = all_secrets(world)
    for path in files:
        content = path.read_bytes()
        found = leaks(content, secrets)
        found += [w for w in ("access_token", "refresh_token") if w.encode() in content]
        assert not found, f"{path.relative_to(world.server.data_dir)} holds {found}"
    # ... and the database does hold every agent token, as something else than the token.
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        stored = [row[0] for row in db.execute("SELECT token_hash FROM agent_tokens")]
    assert len(stored) >= len(tokens)
    assert not set(stored) & set(world.agent_tokens.values())


def test_secrets_never_reach_the_log(world: NotifyWorld) -> None:
    agent = world.issue_agent_token(world.anna.id)
    user = world.anna.id
    log_text = world.server.log_path.read_text()
    assert " DEBUG " in log_text, "the hub should log at debug level here"
    with counting_client(world.server.url, KIND) as client:
        for token in (ADMIN_TOKEN, agent, NEAR_ADMIN):
            bearer = {"Authorization": f"Bearer {token}"}
            client.get(f"/api/v1/users/{user}/presence", headers=bearer)
            client.get(f"/api/v1/users/{user}/presence?token={quote(token)}")
            client.get(f"/api/v1/users?access_token={quote(token)}", headers=bearer)
            client.get("/api/v1/users", headers={"Authorization": token})  # no scheme
        # Secrets in bodies the API refuses, where a careless error message would echo them.
        body = {"id": "x", "display_name": ADMIN_TOKEN, "group": "nowhere", "password": agent}
        assert client.post("/api/v1/users", json=body, headers=admin()).status_code == 422
        settings = {"client_secret": world.secrets["client secret"], "teams_sync_mode": NEAR_ADMIN}
        patched = client.patch(f"/api/v1/groups/{group_of(world)}/settings", json=settings)
        assert patched.status_code == 401
        patched = client.patch(
            f"/api/v1/groups/{group_of(world)}/settings", json=settings, headers=admin()
        )
        assert patched.status_code == 422
        # The subscription's clientState, and a Graph-signed token, on forged notifications.
        forged = world.genuine("Busy", "InACall")
        forged["value"][0]["subscriptionId"] = "not-ours"
        assert client.post("/graph/notifications", json=forged).status_code == 403
        forged = world.genuine("Busy", "InACall")
        forged["validationTokens"] = [world.token(aud="someone-else")]
        assert client.post("/graph/notifications", json=forged).status_code == 401
        # The console's sign-in form, wrong and right.
        sign_in(client, NEAR_ADMIN, 401)
        sign_in(client, ADMIN_TOKEN, 303)
        session = {"console session cookie": client.cookies[SESSION_COOKIE]}
        # WebSockets: their handshakes are logged header by header at debug level.
        ws_url = f"ws://127.0.0.1:{world.server.port}"
        for path, token in [
            ("/api/v1/presence/stream", ADMIN_TOKEN),
            ("/api/v1/presence/stream", agent),
            ("/api/v1/agent/stream", agent),
        ]:
            # the token in the query string, as a browser must send it
            open_stream(f"{ws_url}{path}?token={quote(token)}", {})
        basic = base64.b64encode(f"admin:{ADMIN_TOKEN}".encode()).decode()
        for authorization in (ADMIN_TOKEN, f"Basic {basic}", f"Bearer {NEAR_ADMIN}"):
            open_stream(f"{ws_url}/api/v1/presence/stream", {"Authorization": authorization})
        cookie = f"{SESSION_COOKIE}={session['console session cookie']}"
        origin = str(client.base_url).rstrip("/")
        open_stream(f"{ws_url}/console/stream", {"Cookie": cookie, "Origin": origin})
        marker = f"/api/v1/users/end-of-secrets-{time.monotonic_ns()}/presence"
        assert client.get(marker).status_code == 401

    log = logged_until(world.server.log_path, marker)
    assert "?token=***" in log.decode()  # the requests were logged, their tokens not
    secrets = {**all_secrets(world), **session, "agent token": agent, "Basic credentials": basic}
    found = leaks(log, secrets)
    assert not found, f"the log holds {found}"


def open_stream(url: str, headers: dict[str, str]) -> None:
    """Open a WebSocket and read its first message, or count its refusal."""
    try:
        ws = connect(url, additional_headers=headers, open_timeout=5)
    except InvalidStatus as refused:
        TALLY.record(KIND, refused.response.status_code)
        return
    TALLY.record(KIND, 101)
    with ws:
        receive(ws)


def admin() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def group_of(world: NotifyWorld) -> str:
    return str(world.admin.get(f"/api/v1/users/{world.anna.id}").json()["group"])


def sign_in(client: httpx.Client, token: str, status: int) -> None:
    page = client.get("/console/login")
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match is not None
    form = {"csrf_token": match.group(1), "token": token, "next": "/"}
    origin = {"Origin": str(client.base_url).rstrip("/")}
    assert client.post("/console/login", data=form, headers=origin).status_code == status


def logged_until(log_path: Path, marker: str, timeout: float = 5.0) -> bytes:
    """The log once the line of the last request is in it."""
    deadline = time.monotonic() + timeout
    while True:
        content = log_path.read_bytes()
        if marker.encode() in content or time.monotonic() > deadline:
            return content
        time.sleep(0.05)
