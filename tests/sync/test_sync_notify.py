"""Notify mode (SPEC §7a) and the webhook, with server and emulator as separate processes."""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path
from typing import Any

import httpx

from tests.support.ports import free_port
from tests.support.server import ServerProcess
from tests.support.teams import EmulatorProcess, new_teams_id, sync_server
from tests.support.waiting import eventually
from tests.sync.test_sync_tables import Colleague, group, on_teams_phone

SECRET_KEY = "a-long-server-secret-key-for-token-caches"


def notify_server(
    data_dir: Path, emulator: EmulatorProcess, slow_poll: float = 3600
) -> ServerProcess:
    port = free_port()
    server = sync_server(
        data_dir,
        emulator,
        PRESENCEBRIDGE_READ_MODE="notify",
        PRESENCEBRIDGE_PUBLIC_URL=f"http://127.0.0.1:{port}",
        PRESENCEBRIDGE_SECRET_KEY=SECRET_KEY,
        # Only notifications may tell the hub, once the first full round has passed.
        PRESENCEBRIDGE_NOTIFY_POLL_INTERVAL=str(slow_poll),
    )
    server.port = port
    return server


def sign_in_service_account(api: httpx.Client, emulator: EmulatorProcess) -> str:
    account_id = new_teams_id()
    with emulator.control() as control:
        body = {"id": account_id, "upn": f"svc-{account_id[:8]}@contoso.example"}
        assert control.post("/_emulator/users", json=body).is_success
        started = api.post("/api/v1/admin/service-accounts", json={"name": "svc1"})
        assert started.status_code == 202, started.text
        code = started.json()["user_code"]
        approve = {"user_code": code, "user": account_id}
        assert control.post("/_emulator/device/approve", json=approve).is_success
    eventually(
        lambda: api.get("/api/v1/admin/service-accounts").json(),
        lambda accounts: accounts and accounts[0]["status"] == "active",
        timeout=10,
    )
    return account_id


def subscribed(api: httpx.Client, users: int) -> Any:
    return eventually(
        lambda: api.get("/api/v1/admin/teams-sync").json().get("subscriptions", []),
        lambda subs: sum(s["users"] for s in subs) == users,
        timeout=10,
    )


def notifications(server: ServerProcess, result: str) -> float:
    for line in httpx.get(server.url + "/metrics").text.splitlines():
        if line.startswith(f'presencebridge_graph_notifications_total{{result="{result}"}}'):
            return float(line.split()[-1])
    return 0.0


def test_notify_mode_follows_teams_through_encrypted_notifications(
    tmp_path: Path, emulator: EmulatorProcess
) -> None:
    server = notify_server(tmp_path / "server", emulator)
    server.start()
    try:
        with server.client() as api:
            g = group(api)
            users = [Colleague(api, emulator, f"u{i}", g) for i in range(3)]
            sign_in_service_account(api, emulator)
            subscribed(api, 3)
            time.sleep(1.5)  # let the start-up full poll round pass
            before = notifications(server, "accepted")
            emulator.client_presence(users[1].teams_id, "Busy", "InACall")
            eventually(users[1].presence, on_teams_phone, timeout=30)
            assert notifications(server, "accepted") > before
            assert emulator.stats()["notifications"]["failed"] == 0
    finally:
        server.stop()


def test_remembered_service_account_survives_restart_encrypted(
    tmp_path: Path, emulator: EmulatorProcess
) -> None:
    server = notify_server(tmp_path / "server", emulator)
    server.start()
    try:
        with server.client() as api:
            g = group(api)
            Colleague(api, emulator, "anna", g)
            sign_in_service_account(api, emulator)
            subscribed(api, 1)
        server.kill9()
        server.start()
        with server.client() as api:
            # No new sign-in: the encrypted cache brought the account back.
            subscribed(api, 1)
            assert api.get("/api/v1/admin/service-accounts").json()[0]["status"] == "active"
    finally:
        server.stop()
    cache = (tmp_path / "server" / "service-accounts" / "svc1.cache").read_bytes()
    for readable in (b"access_token", b"refresh_token", b"secret", b"svc-"):
        assert readable not in cache
    assert (
        oct(os.stat(tmp_path / "server" / "service-accounts" / "svc1.cache").st_mode)[-3:] == "600"
    )


def test_forged_notifications_are_refused_and_counted(
    tmp_path: Path, emulator: EmulatorProcess
) -> None:
    server = notify_server(tmp_path / "server", emulator)
    server.start()
    try:
        with server.client() as api:
            g = group(api)
            anna = Colleague(api, emulator, "anna", g)
            sign_in_service_account(api, emulator)
            [subscription] = subscribed(api, 1)
            state = api.get(f"/api/v1/users/{anna.id}/presence").json()
        url = server.url + "/graph/notifications"
        item = {
            "subscriptionId": subscription["id"],
            "clientState": "not-the-secret",
            "changeType": "updated",
            "resource": f"communications/presences('{anna.teams_id}')",
        }
        refused = httpx.post(url, json={"value": [item]})
        assert refused.status_code == 403
        assert "clientState" in refused.json()["detail"]
        assert notifications(server, "bad_client_state") == 1

        unknown = httpx.post(url, json={"value": [{**item, "subscriptionId": "nope"}]})
        assert unknown.status_code == 403
        assert notifications(server, "unknown_subscription") == 1

        # A forged validation token (bad signature) is refused before anything else.
        garbage = base64.b64encode(b"x" * 32).decode()
        forged = {
            **item,
            "encryptedContent": {"data": garbage, "dataSignature": garbage, "dataKey": garbage},
        }
        header = base64.urlsafe_b64encode(b'{"alg":"RS256","kid":"k"}').decode().rstrip("=")
        claims = base64.urlsafe_b64encode(b'{"aud":"x"}').decode().rstrip("=")
        bad_jwt = f"{header}.{claims}.{garbage}"
        bad_token = httpx.post(url, json={"value": [forged], "validationTokens": [bad_jwt]})
        assert bad_token.status_code == 401
        assert notifications(server, "bad_token") == 1

        malformed = httpx.post(
            url, content=b"{not json", headers={"Content-Type": "application/json"}
        )
        assert malformed.status_code == 400

        handshake = httpx.post(url, params={"validationToken": "Validation: token 42"})
        assert handshake.status_code == 200
        assert handshake.text == "Validation: token 42"
        assert handshake.headers["content-type"].startswith("text/plain")
        with server.client() as api:
            assert api.get(f"/api/v1/users/{anna.id}/presence").json() == state
    finally:
        server.stop()


def test_poll_mode_refuses_every_notification(tmp_path: Path, emulator: EmulatorProcess) -> None:
    server = sync_server(tmp_path / "server", emulator)
    server.start()
    try:
        body = {"value": [{"subscriptionId": "x", "clientState": "y"}]}
        response = httpx.post(server.url + "/graph/notifications", content=json.dumps(body))
        assert response.status_code == 403
        assert notifications(server, "unknown_subscription") == 1
    finally:
        server.stop()


def test_reauthorization_is_answered_and_a_silently_lost_subscription_is_caught(
    tmp_path: Path, emulator: EmulatorProcess
) -> None:
    server = notify_server(tmp_path / "server", emulator, slow_poll=2)
    server.start()
    try:
        with server.client() as api:
            g = group(api)
            anna = Colleague(api, emulator, "anna", g)
            sign_in_service_account(api, emulator)
            [subscription] = subscribed(api, 1)
            with emulator.control() as control:
                path = f"/_emulator/subscriptions/{subscription['id']}"
                event = {"event": "reauthorizationRequired"}
                assert control.post(path + "/lifecycle", json=event).is_success
                eventually(
                    lambda: control.get("/_emulator/subscriptions").json(),
                    lambda subs: subs["value"][0]["reauthorizationRequired"] is False,
                    timeout=5,
                )
                assert emulator.stats()["subscriptions"]["renewed"] >= 1
                # Graph stops delivering without a word: the slow poll underneath notices.
                assert control.post(path + "/drop").is_success
            emulator.client_presence(anna.teams_id, "Busy", "InACall")
            eventually(anna.presence, on_teams_phone, timeout=30)
    finally:
        server.stop()
