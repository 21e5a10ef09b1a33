"""The webhook tests' parts: a receiver process that can fail, stop and come back, the
server with `[[publish]] kind = "webhook"` tables, and the verification function of
docs/webhooks.md, taken from the page itself."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.support.ports import free_port
from tests.support.server import ServerProcess

ROOT = Path(__file__).resolve().parents[2]
RECEIVER = ROOT / "tests" / "support" / "receiver.py"
SECRET = "whsec-test-0123456789abcdef"
# Only a bound: every wait ends as soon as its condition holds. Retries back off to at
# most a second in these tests; a busy 2-core machine may be many times slower.
WAIT = 120.0


def wait_for(condition: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = condition()
        except (httpx.HTTPError, OSError):
            found = None
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout} s: {what}")


def documented_verify() -> Callable[..., bool]:
    """`verify` from the Python snippet in docs/webhooks.md, exactly as written there."""
    page = (ROOT / "docs" / "webhooks.md").read_text()
    snippet = next(b for b in re.findall(r"```python\n(.*?)```", page, re.S) if "def verify" in b)
    namespace: dict[str, Any] = {}
    exec(compile(snippet, "docs/webhooks.md", "exec"), namespace)  # noqa: S102 - our own docs
    verify: Callable[..., bool] = namespace["verify"]
    return verify


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    raw: str
    status: int

    @property
    def body(self) -> dict[str, Any]:
        found: dict[str, Any] = json.loads(self.raw)
        return found

    @property
    def key(self) -> str:
        return self.headers["idempotency-key"]

    @property
    def user(self) -> str:
        return str(self.body["user"]["id"])

    @property
    def profile(self) -> str | None:
        presence = self.body["presence"]
        return None if presence is None else presence["profile"]


class Receiver:
    """The receiver process on a port of its own (the same one after a restart)."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.record = folder / "received.jsonl"
        self.status_file = folder / "status"
        self.log = folder / "receiver.log"
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(RECEIVER), str(self.port), str(self.record),
                 str(self.status_file)],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        wait_for(self._listening, "the receiver listens", 60)

    def _listening(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"receiver exited:\n{self.log.read_text()}")
        with socket.create_connection(("127.0.0.1", self.port), timeout=1):
            return True

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)

    def answer(self, status: int) -> None:
        self.status_file.write_text(str(status))

    def received(self, path: str | None = None) -> list[Received]:
        if not self.record.exists():
            return []
        found = []
        for line in self.record.read_text().splitlines():
            try:
                item = json.loads(line)
            except ValueError:
                continue  # a line still being written
            if path is None or item["path"] == path:
                found.append(Received(item["path"], item["headers"], item["body"], item["status"]))
        return found

    def taken(self, path: str | None = None) -> list[Received]:
        """What it answered 2xx."""
        return [r for r in self.received(path) if 200 <= r.status < 300]


def webhook_table(name: str, url: str, **extra: Any) -> str:
    lines = ["[[publish]]", 'kind = "webhook"', f'name = "{name}"', f'url = "{url}"',
             'secret_env = "HOOK_SECRET"', "first_retry_seconds = 0.2",
             "max_retry_seconds = 1", "timeout_seconds = 5"]  # fmt: skip
    lines += [f"{k} = {json.dumps(v)}" for k, v in extra.items()]
    return "\n".join(lines) + "\n"


def hook_server(folder: Path, config: str) -> ServerProcess:
    """A started server with `config` as its file and the groups `hq` and `sales`."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "presencebridge.toml"
    path.write_text(config)
    server = ServerProcess(folder / "server", ("--config", str(path)), HOOK_SECRET=SECRET)
    server.start()
    with server.client() as api:
        for group in ("hq", "sales"):
            body = {"id": group, "name": group.upper()}
            assert api.post("/api/v1/groups", json=body).status_code == 201
    return server


def make_users(server: ServerProcess, users: dict[str, str], profiles: int) -> None:
    """Users (id -> group), each with own profiles p0, p1, ..."""
    with server.client() as api:
        for user, group in users.items():
            body = {"id": user, "display_name": user.title(), "group": group}
            assert api.post("/api/v1/users", json=body).status_code == 201
            for n in range(profiles):
                profile = {"name": f"p{n}", "status": "away", "text": f"p{n}", "color": "#112233"}
                assert api.post(f"/api/v1/users/{user}/profiles", json=profile).status_code == 201


def select(server: ServerProcess, user: str, profile: str) -> None:
    with server.client() as api:
        response = api.put(f"/api/v1/users/{user}/profile", json={"name": profile})
        assert response.status_code == 200, response.text


def profiles_of(received: list[Received], user: str) -> list[str]:
    """The profiles `user` had, in the order the receiver took them (p0, p1, ...)."""
    return [r.profile for r in received if r.user == user and r.profile is not None]


def webhooks(server: ServerProcess) -> dict[str, dict[str, Any]]:
    with server.client() as api:
        response = api.get("/api/v1/admin/webhooks")
        assert response.status_code == 200, response.text
        return {w["name"]: w for w in response.json()["webhooks"]}
