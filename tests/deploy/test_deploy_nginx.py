"""deploy/nginx/presencebridge.conf in a real nginx, in front of a real server.

One stack for the module: a Graph emulator, the server started with the unit's
command line in notify mode, and nginx with the example configuration. Every
request below goes over HTTPS through nginx, as Graph, a PBX connector, an
agent or a browser would send it.

The server's PUBLIC_URL is its own address here, not nginx's: the emulator
delivers notifications the way Graph does, trusting only public CAs, and the
test certificate is not one. What Graph sends is therefore sent by the test.
"""

from __future__ import annotations

import json
import re
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.deploy.nginx import MISSING, NGINX, NginxProcess
from tests.deploy.support import UnitServer
from tests.support.server import ADMIN_TOKEN, receive, receive_for
from tests.support.teams import CLIENT_ID, CLIENT_SECRET, TENANT, EmulatorProcess
from tests.support.tls import make_certificate
from tests.support.waiting import eventually
from tests.sync.test_sync_notify import SECRET_KEY, sign_in_service_account, subscribed
from tests.sync.test_sync_tables import Colleague, group

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


class Stack:
    def __init__(self, server: UnitServer, nginx: NginxProcess, emulator: EmulatorProcess) -> None:
        self.server = server
        self.nginx = nginx
        self.emulator = emulator
        self.tls = ssl.create_default_context(cafile=str(nginx.cert.ca_file))
        # websockets' threaded client reads and writes one SSLSocket from two threads,
        # which OpenSSL does not allow: when nginx's TLS 1.3 session ticket arrives while
        # the upgrade is being written, the request is lost (no answer) or the write fails
        # with "[SSL] internal error". TLS 1.2 has no messages after the handshake. The
        # product's agent uses the asyncio client, which has one thread.
        self.ws_tls = ssl.create_default_context(cafile=str(nginx.cert.ca_file))
        self.ws_tls.maximum_version = ssl.TLSVersion.TLSv1_2

    def https(
        self, token: str | None = ADMIN_TOKEN, headers: dict[str, str] | None = None
    ) -> httpx.Client:
        sent = dict(headers or {})
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        return httpx.Client(base_url=self.nginx.url, headers=sent, verify=self.tls, timeout=10)

    def wss(self, path: str, **kwargs: Any) -> ClientConnection:
        url = f"wss://127.0.0.1:{self.nginx.https_port}{path}"
        # A bound only: on two busy cores the hub may take a while to answer the upgrade.
        try:
            connection: ClientConnection = connect(url, ssl=self.ws_tls, open_timeout=30, **kwargs)
        except TimeoutError as late:
            # Once in CI an upgrade went unanswered; say which side had it.
            raise AssertionError(f"no answer to the upgrade of {path}\n{self.logs()}") from late
        return connection

    def logs(self) -> str:
        def tail(path: Path) -> str:
            lines = path.read_text(errors="replace").splitlines() if path.exists() else []
            return "\n".join(lines[-40:])

        return (
            f"--- hub ({self.server.log_path}):\n{tail(self.server.log_path)}\n"
            f"--- nginx error log:\n{tail(self.nginx.error_log)}\n"
            f"--- nginx access log:\n{tail(self.nginx.access_log)}"
        )

    def metric(self, name: str, labels: str) -> float:
        with self.https(None) as client:
            text = client.get("/metrics").text
        for line in text.splitlines():
            if line.startswith(f"{name}{{{labels}}}"):
                return float(line.split()[-1])
        return 0.0


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    assert NGINX is not None, MISSING
    root = tmp_path_factory.mktemp("deploy")
    emulator = EmulatorProcess(root / "emulator-tls")
    server = UnitServer(
        root / "state",
        PRESENCEBRIDGE_GRAPH_URL=f"{emulator.base_url}/v1.0",
        PRESENCEBRIDGE_AUTHORITY=emulator.base_url,
        PRESENCEBRIDGE_CA_BUNDLE=str(emulator.ca_file),
        PRESENCEBRIDGE_TENANT_ID=TENANT,
        PRESENCEBRIDGE_CLIENT_ID=CLIENT_ID,
        PRESENCEBRIDGE_CLIENT_SECRET=CLIENT_SECRET,
        PRESENCEBRIDGE_READ_MODE="notify",
        PRESENCEBRIDGE_SECRET_KEY=SECRET_KEY,
    )
    server.env["PRESENCEBRIDGE_PUBLIC_URL"] = server.url
    nginx = NginxProcess(root / "nginx", server.port, make_certificate(root / "tls"))
    try:
        emulator.start()
        server.start()
        nginx.start()
        yield Stack(server, nginx, emulator)
    finally:
        nginx.stop()
        server.stop()
        emulator.stop()


def test_graph_validation_handshake_answers_the_token_as_plain_text(stack: Stack) -> None:
    token = "Validation: Testing client application reachability for subscription Request-Id: 7f3e"
    with stack.https(None) as graph:
        answer = graph.post(
            f"/graph/notifications?validationToken={quote(token, safe='')}",
            headers={"Content-Type": "text/plain; charset=utf-8"},
        )
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    assert answer.text == token
    assert answer.headers["strict-transport-security"].startswith("max-age=")


def test_a_forged_notification_is_refused_and_counted(stack: Stack) -> None:
    with stack.https() as api:
        anna = Colleague(api, stack.emulator, "anna", group(api))
        sign_in_service_account(api, stack.emulator)
        [subscription] = subscribed(api, 1)
        before = api.get(f"/api/v1/users/{anna.id}/presence").json()
        refused_before = stack.metric(
            "presencebridge_graph_notifications_total", 'result="bad_client_state"'
        )
        forged = {
            "subscriptionId": subscription["id"],
            "clientState": "guessed",
            "changeType": "updated",
            "resource": f"communications/presences('{anna.teams_id}')",
            "resourceData": {"availability": "Busy", "activity": "InACall"},
        }
        with stack.https(None) as graph:
            answer = graph.post("/graph/notifications", json={"value": [forged]})
        assert answer.status_code == 403
        assert "clientState" in answer.json()["detail"]
        assert api.get(f"/api/v1/users/{anna.id}/presence").json() == before
    refused = stack.metric("presencebridge_graph_notifications_total", 'result="bad_client_state"')
    assert refused == refused_before + 1


def test_api_calls_and_the_presence_stream_pass_the_proxy(stack: Stack) -> None:
    with stack.https() as api:
        group_id = group(api, "off")
        body = {"id": "carl", "display_name": "Carl", "group": group_id}
        assert api.post("/api/v1/users", json=body).status_code == 201
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        with stack.wss("/api/v1/presence/stream", additional_headers=headers) as stream:
            snapshot = receive(stream)
            assert snapshot["type"] == "snapshot"
            assert "carl" in {p["user"] for p in snapshot["presences"]}
            call = {"user": "carl", "call_id": "c1", "state": "connected"}
            assert api.post("/api/v1/telephony/events", json=call).status_code == 200
            message = receive_for(stream, "carl")
            assert message["telephony"] == "on_the_phone"
        presence = api.get("/api/v1/users/carl/presence")
        assert presence.status_code == 200 and presence.json()["telephony"] == "on_the_phone"
        # FastAPI's slash redirect keeps the scheme the client used (X-Forwarded-Proto).
        redirect = api.get("/api/v1/groups/")
        assert redirect.status_code == 307
        assert redirect.headers["location"] == f"{stack.nginx.url}/api/v1/groups"


def test_a_token_in_the_query_string_stays_out_of_nginx_access_log(stack: Stack) -> None:
    def streams_logged() -> int:
        return stack.nginx.access_log.read_text().count('"GET /api/v1/presence/stream ')

    before = streams_logged()
    with stack.wss(f"/api/v1/presence/stream?token={ADMIN_TOKEN}") as stream:
        assert receive(stream)["type"] == "snapshot"
    # nginx writes a WebSocket's line when the connection has ended.
    eventually(streams_logged, lambda count: count > before, timeout=30)
    assert ADMIN_TOKEN not in stack.nginx.access_log.read_text()


def test_the_agent_stream_passes_the_proxy(stack: Stack) -> None:
    with stack.https() as api:
        group_id = group(api, "off")
        body = {"id": "dora", "display_name": "Dora", "group": group_id}
        assert api.post("/api/v1/users", json=body).status_code == 201
        agent_token = api.post("/api/v1/users/dora/agent-tokens").json()["token"]
    headers = {"Authorization": f"Bearer {agent_token}"}
    with stack.wss("/api/v1/agent/stream", additional_headers=headers) as agent:
        agent.send(json.dumps({"type": "hello", "version": "test", "platform": "linux"}))
        first = receive(agent)
        assert first["type"] == "settings" and first["user"] == "dora"
    with pytest.raises(InvalidStatus):
        stack.wss("/api/v1/agent/stream", additional_headers={"Authorization": "Bearer no"})


def test_console_sign_in_cookie_is_secure_and_the_board_stream_works(stack: Stack) -> None:
    origin = stack.nginx.url
    with stack.https(None, headers={"Origin": origin}) as browser:
        login = browser.get("/console/login")
        cookie = login.headers["set-cookie"].lower()
        assert cookie.startswith("pb_console=") and "; secure" in cookie
        found = CSRF.search(login.text)
        assert found, login.text[:300]
        answer = browser.post(
            "/console/login", data={"token": ADMIN_TOKEN, "csrf_token": found.group(1)}
        )
        # The Origin check passes only because nginx hands on Host with its port.
        assert answer.status_code == 303 and answer.headers["location"] == "/", answer.text
        board = browser.get("/")
        assert board.status_code == 200 and 'id="board"' in board.text, board.text[:500]
        session = f"pb_console={browser.cookies['pb_console']}"
    with stack.wss("/console/stream", origin=origin, additional_headers={"Cookie": session}) as ws:
        assert receive(ws)["type"] == "snapshot"
    with pytest.raises(InvalidStatus) as refused:
        stack.wss(
            "/console/stream", origin="https://evil.example", additional_headers={"Cookie": session}
        )
    assert refused.value.response.status_code == 403  # another site's page may not listen in


def test_body_limits_hub_answers_in_json_and_nginx_stops_the_rest(stack: Stack) -> None:
    headers = {"Content-Type": "application/json"}
    with stack.https() as api:
        over_hub = api.post("/api/v1/groups", content=b" " * 100_000, headers=headers)
        assert over_hub.status_code == 413 and over_hub.json()["code"] == "too_large"
        over_nginx = api.post("/api/v1/groups", content=b" " * 200_000, headers=headers)
        assert over_nginx.status_code == 413 and "nginx" in over_nginx.text


def test_plain_http_is_redirected_to_https(stack: Stack) -> None:
    answer = httpx.get(f"http://127.0.0.1:{stack.nginx.http_port}/console/login?next=/", timeout=5)
    assert answer.status_code == 301
    assert answer.headers["location"] == "https://127.0.0.1/console/login?next=/"


def test_metrics_only_for_the_monitoring_hosts_and_the_hub_logs_the_real_client(
    stack: Stack,
) -> None:
    # Another address on the loopback network stands in for a host that is not Prometheus.
    transport = httpx.HTTPTransport(verify=stack.tls, local_address="127.0.0.2")
    with httpx.Client(base_url=stack.nginx.url, transport=transport, timeout=5) as outsider:
        assert outsider.get("/metrics").status_code == 403
        spoofed = {"X-Forwarded-For": "203.0.113.9"}
        assert outsider.get("/healthz?from=outsider", headers=spoofed).status_code == 200
    # The hub's access log names the client nginx saw, not nginx, not what the client claimed.
    line = eventually(
        lambda: [
            entry
            for entry in stack.server.log_path.read_text().splitlines()
            if "/healthz?from=outsider" in entry
        ],
        bool,
    )
    assert "127.0.0.2:" in line[0] and "203.0.113.9" not in line[0], line
    with stack.https(None) as local:
        metrics = local.get("/metrics")
        assert metrics.status_code == 200 and "presencebridge_" in metrics.text
