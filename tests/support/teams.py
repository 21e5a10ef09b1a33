"""A Graph emulator process and a server joined to it only by configuration."""

from __future__ import annotations

import ssl
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from tests.support.ports import free_port
from tests.support.server import ChildProcess, ServerProcess
from tests.support.waiting import eventually as eventually  # also importable from here

TENANT = "contoso"
CLIENT_ID = "11111111-2222-4333-8444-555555555555"
CLIENT_SECRET = "emulator-client-secret-value"


class EmulatorProcess(ChildProcess):
    """`presencebridge graph-emulator` as an admin starts it: its own process, HTTPS with a
    CA it makes in `tls_dir`; `extra` are more command-line options."""

    name = "emulator"

    def __init__(self, tls_dir: Path, *extra: str) -> None:
        self.tls_dir = tls_dir
        self.port = free_port()
        self.extra = extra
        super().__init__(tls_dir.parent / f"emulator-{self.port}.log")
        self._token: str | None = None

    @property
    def base_url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca_file(self) -> Path:
        return self.tls_dir / "ca.pem"

    def start(self) -> None:
        # The emulator makes tls_dir itself (private, 0700).
        self.tls_dir.parent.mkdir(parents=True, exist_ok=True)
        port, tls_dir = str(self.port), str(self.tls_dir)
        self.launch(["graph-emulator", "--port", port, "--tls-dir", tls_dir, *self.extra])

        def answers() -> bool:
            with self.client() as client:
                return client.get("/_emulator/health").status_code == 200

        self.wait_until(lambda: self.ca_file.exists() and answers())

    def client(self, token: str | None = None, timeout: float = 20) -> httpx.Client:
        """A client that trusts the emulator's CA (and nothing else), with a token if given."""
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        context = ssl.create_default_context(cafile=str(self.ca_file))
        return httpx.Client(
            base_url=self.base_url, verify=context, headers=headers, timeout=timeout
        )

    def control(self) -> httpx.Client:
        """A client of the control API (`/_emulator/…`)."""
        return self.client(timeout=10)

    def post(self, path: str, body: dict[str, Any]) -> Any:
        with self.control() as client:
            response = client.post(path, json=body)
            assert response.is_success, response.text
            return response.json() if response.content else None

    def add_user(self, teams_id: str) -> None:
        self.post("/_emulator/users", {"id": teams_id})

    def client_presence(self, teams_id: str, availability: str, activity: str) -> None:
        """The user's Teams client changes its own presence (a call, sharing, idle)."""
        self.post(
            f"/_emulator/users/{teams_id}/client",
            {"availability": availability, "activity": activity},
        )

    def preferred(self, teams_id: str, availability: str, activity: str) -> None:
        """The user sets a status by hand in Teams."""
        self.post(
            f"/_emulator/users/{teams_id}/preferred",
            {"availability": availability, "activity": activity},
        )

    def advance(self, seconds: float) -> None:
        self.post("/_emulator/clock", {"advance_seconds": seconds})

    def stats(self) -> Any:
        with self.control() as client:
            return client.get("/_emulator/stats").json()

    def graph_token(self) -> str:
        if self._token is None:
            with self.control() as client:
                response = client.post(
                    f"/{TENANT}/oauth2/v2.0/token",
                    data={
                        "grant_type": "client_credentials",
                        "client_id": "test-observer",
                        "client_secret": "observer-secret",
                        "scope": "https://graph.microsoft.com/.default",
                    },
                )
                assert response.is_success, response.text
                self._token = str(response.json()["access_token"])
        return self._token

    def shown(self, teams_id: str) -> tuple[str, str]:
        """What any Graph reader sees for the user (another app, so it has its own budget)."""
        with self.control() as client:
            for _ in range(20):
                response = client.get(
                    f"/v1.0/users/{teams_id}/presence",
                    headers={"Authorization": f"Bearer {self.graph_token()}"},
                )
                if response.status_code == 401:
                    self._token = None  # the emulator's clock moved past the token's expiry
                elif response.status_code in (429, 503):
                    time.sleep(0.05)  # injected faults hit this observer too
                else:
                    break
            assert response.is_success, response.text
            body = response.json()
            return body["availability"], body["activity"]


def sync_server(data_dir: Path, emulator: EmulatorProcess, **env: str) -> ServerProcess:
    """A server that knows the emulator only through its configuration."""
    return ServerProcess(
        data_dir,
        ("--allow-clock-control",),
        PRESENCEBRIDGE_GRAPH_URL=f"{emulator.base_url}/v1.0",
        PRESENCEBRIDGE_AUTHORITY=emulator.base_url,
        PRESENCEBRIDGE_CA_BUNDLE=str(emulator.ca_file),
        PRESENCEBRIDGE_TENANT_ID=TENANT,
        PRESENCEBRIDGE_CLIENT_ID=CLIENT_ID,
        PRESENCEBRIDGE_CLIENT_SECRET=CLIENT_SECRET,
        **env,
    )


def new_teams_id() -> str:
    return str(uuid.uuid4())
