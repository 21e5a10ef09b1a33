"""A real `presencebridge serve` process on a free port, and helpers to talk to it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import ClientConnection, connect

from tests.support.ports import free_port as free_port  # also importable from here

ADMIN_TOKEN = "test-admin-token-0123456789"
BIN = Path(sys.executable).parent / "presencebridge"
# How long a process may take to come up before the test gives up on it. Only a bound:
# the wait ends as soon as it answers. Starting Python and importing the server takes
# a few seconds on an idle machine, many times that on two cores shared with a busy
# test run.
START_TIMEOUT = 120.0


class ChildProcess:
    """A `presencebridge` command run as its own process, logging to a file."""

    name = "process"

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def launch(self, args: list[str], env: dict[str, str] | None = None) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [str(BIN), *args], env=env, stdout=log, stderr=subprocess.STDOUT
        )

    def wait_until(self, ready: Callable[[], bool], timeout: float = START_TIMEOUT) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.log_path.read_text()}")
            try:
                if ready():
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not come up:\n{self.log_path.read_text()}")

    def kill9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


class ServerProcess(ChildProcess):
    """The server as an operator runs it: a separate process, configured by environment."""

    name = "server"

    def __init__(self, data_dir: Path, extra_args: tuple[str, ...] = (), **env: str) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.extra_args = extra_args
        self.env = {
            **os.environ,
            "PRESENCEBRIDGE_ADMIN_TOKEN": ADMIN_TOKEN,
            "PRESENCEBRIDGE_DATA_DIR": str(data_dir),
            **env,
        }
        super().__init__(data_dir / "server.log")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.launch(["serve", "--port", str(self.port), *self.extra_args], self.env)
        self.wait_until(lambda: httpx.get(self.url + "/healthz", timeout=1).status_code == 200)

    def client(self, token: str | None = ADMIN_TOKEN) -> httpx.Client:
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=10)

    def stream(self, token: str = ADMIN_TOKEN, query: str = "") -> ClientConnection:
        url = f"ws://127.0.0.1:{self.port}/api/v1/presence/stream{query}"
        return connect(url, additional_headers={"Authorization": f"Bearer {token}"}, open_timeout=5)


def receive(ws: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    message: dict[str, Any] = json.loads(ws.recv(timeout=timeout))
    return message


def receive_for(ws: ClientConnection, user: str, timeout: float = 5.0) -> dict[str, Any]:
    """The next presence message about `user`, skipping others."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no presence message for {user!r}")
        message = receive(ws, left)
        if message.get("type") == "presence" and message.get("user") == user:
            return message


def receive_until(
    ws: ClientConnection,
    user: str,
    accept: Callable[[dict[str, Any]], bool],
    timeout: float = 10.0,
) -> dict[str, Any]:
    """The first presence message about `user` that `accept`s, skipping the others (other
    users, and changes of this user that came first, such as a Teams reading)."""
    deadline = time.monotonic() + timeout
    seen: list[dict[str, Any]] = []
    while True:
        left = deadline - time.monotonic()
        try:
            message = receive_for(ws, user, max(left, 0.001))
        except TimeoutError:
            problem = f"no accepted message about {user!r} within {timeout} s; got {seen}"
            raise AssertionError(problem) from None
        if accept(message):
            return message
        seen.append(message)


def make_user(
    api: httpx.Client, user: str = "alice", group: str = "hq", **group_settings: Any
) -> None:
    if api.get(f"/api/v1/groups/{group}").status_code == 404:
        body = {"id": group, "name": group.upper(), "settings": group_settings}
        assert api.post("/api/v1/groups", json=body).status_code == 201
    response = api.post(
        "/api/v1/users", json={"id": user, "display_name": user.title(), "group": group}
    )
    assert response.status_code == 201, response.text
