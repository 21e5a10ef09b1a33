"""Tokens for the Graph emulator, and a webhook receiver.

The emulator process itself is tests/support/teams.py's `EmulatorProcess`, importable
from here too.
"""

from __future__ import annotations

import json
import queue
import ssl
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import httpx

from tests.support import waiting
from tests.support.ports import free_port
from tests.support.teams import EmulatorProcess as EmulatorProcess  # also importable from here

T = TypeVar("T")

TENANT = "contoso.onmicrosoft.com"
APP_ID = "a1b2c3d4-0000-4000-8000-00000000a001"
APP_SECRET = "emulator-test-secret"
PUBLIC_APP_ID = "a1b2c3d4-0000-4000-8000-00000000b002"


def trusting(ca_file: Path) -> ssl.SSLContext:
    """A TLS context that trusts the emulator's CA (and nothing else)."""
    return ssl.create_default_context(cafile=str(ca_file))


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, f"{response.status_code}: {response.text}"
    return response.json() if response.content else None


def app_token(
    client: httpx.Client,
    client_id: str = APP_ID,
    secret: str = APP_SECRET,
    tenant: str = TENANT,
) -> str:
    response = client.post(
        f"/{tenant}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": secret,
            "scope": "https://graph.microsoft.com/.default",
        },
    )
    return str(ok(response)["access_token"])


def user_tokens(
    client: httpx.Client,
    user: str,
    scopes: str = "Presence.Read.All offline_access openid profile",
    client_id: str = PUBLIC_APP_ID,
    tenant: str = TENANT,
) -> dict[str, Any]:
    """A device-code sign-in as `user`, approved through the control API."""
    flow = ok(
        client.post(
            f"/{tenant}/oauth2/v2.0/devicecode", data={"client_id": client_id, "scope": scopes}
        )
    )
    ok(
        client.post(
            "/_emulator/device/approve", json={"user_code": flow["user_code"], "user": user}
        )
    )
    answer: dict[str, Any] = ok(
        client.post(
            f"/{tenant}/oauth2/v2.0/token",
            data={
                "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
                "client_id": client_id,
                "device_code": flow["device_code"],
                "client_info": "1",
            },
        )
    )
    return answer


def eventually(probe: Callable[[], T], accept: Callable[[T], bool], timeout: float = 3.0) -> T:
    """Poll `probe` until `accept` holds (for counters updated after a delivery returns)."""
    return waiting.eventually(probe, accept, timeout)


def make_users(client: httpx.Client, *ids: str) -> None:
    for user_id in ids:
        assert client.post("/_emulator/users", json={"id": user_id}).status_code in (200, 201)


def shown(client: httpx.Client, token: str, user: str) -> tuple[str, str]:
    body = ok(client.get(f"/v1.0/users/{user}/presence", headers=_bearer(token)))
    return body["availability"], body["activity"]


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def bearer(token: str) -> dict[str, str]:
    return _bearer(token)


class Receiver:
    """A webhook endpoint on 127.0.0.1: answers Graph's handshake, records notifications.

    Paths: `/ok` behaves, `/wrong` echoes a wrong validation token, `/fail` passes the
    handshake but answers notifications with 500.
    """

    def __init__(self) -> None:
        self.port = free_port()
        self.received: queue.Queue[tuple[str, dict[str, Any]]] = queue.Queue()
        self.handshakes: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                token = parse_qs(parts.query).get("validationToken")
                if token is not None:
                    receiver.handshakes.append(token[0])
                    answer = token[0] if parts.path != "/wrong" else "something else"
                    self._reply(200, answer.encode(), "text/plain")
                    return
                if parts.path == "/fail":
                    self._reply(500, b"", "text/plain")
                    return
                receiver.received.put((parts.path, json.loads(raw)))
                self._reply(202, b"", "text/plain")

            def _reply(self, status: int, body: bytes, content_type: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str = "/ok") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def next(self, timeout: float = 5.0) -> tuple[str, dict[str, Any]]:
        return self.received.get(timeout=timeout)

    def nothing_within(self, seconds: float) -> bool:
        try:
            self.received.get(timeout=seconds)
        except queue.Empty:
            return True
        return False
