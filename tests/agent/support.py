"""`presencebridge agent` as a user runs it: a separate process, its output in a file."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx

from tests.support.server import BIN

T = TypeVar("T")
MICSYNC = {"name": "MicSync", "status": "busy", "text": "Mikrofon", "color": "#aa00aa"}
USER_CODE = re.compile(r"enter the code (\S+) to authenticate")


class AgentProcess:
    def __init__(
        self,
        server_url: str,
        token: str,
        state_dir: Path,
        env: dict[str, str],
        *extra: str,
    ) -> None:
        self.args = [
            str(BIN),
            "agent",
            "--server",
            server_url,
            "--token",
            token,
            "--state-dir",
            str(state_dir),
            *extra,
        ]
        self.env = env
        self.log_path = state_dir.parent / f"{state_dir.name}-agent.log"
        self.process: subprocess.Popen[bytes] | None = None
        self._offset = 0

    def start(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.args, env=self.env, stdout=log, stderr=subprocess.STDOUT
        )

    def output(self) -> str:
        """What this run of the agent printed so far."""
        return self.log_path.read_bytes()[self._offset :].decode(errors="replace")

    def wait_for(self, pattern: str | re.Pattern[str], timeout: float = 60.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = re.search(pattern, self.output())
            if found:
                return found
            if self.process is not None and self.process.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"agent never printed {pattern!r}:\n{self.output()}")

    def user_code(self, timeout: float = 60.0) -> str:
        return self.wait_for(USER_CODE, timeout).group(1)

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


def stays(probe: Callable[[], T], accept: Callable[[T], bool], seconds: float) -> T:
    """`accept` holds throughout `seconds` (a change that must not happen)."""
    deadline = time.monotonic() + seconds
    value = probe()
    while time.monotonic() < deadline:
        assert accept(value), f"changed to {value!r}"
        time.sleep(0.1)
        value = probe()
    assert accept(value), f"changed to {value!r}"
    return value


def presence(api: httpx.Client, user: str = "alice") -> dict[str, Any]:
    response = api.get(f"/api/v1/users/{user}/presence")
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result
