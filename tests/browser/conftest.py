"""The console in a real browser: Debian's Chromium driven by Playwright (never a downloaded one).

One Graph emulator and one server joined to it serve the whole module set; every
test makes its own users and groups, so tests stay independent of each other.
"""

from __future__ import annotations

import unicodedata
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Playwright, expect, sync_playwright

from tests.browser.helpers import CHROMIUM, CHROMIUM_ARGS
from tests.support.server import ServerProcess
from tests.support.teams import EmulatorProcess, new_teams_id, sync_server

# `expect` waits up to 5 s by default: on two cores shared with a busy test run, a board
# filled over its stream can take longer. A bound only: each wait ends when it holds.
expect.set_options(timeout=20_000)


@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    if not CHROMIUM.exists():
        raise RuntimeError("Debian's chromium is not installed: run make test (it installs it)")
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@pytest.fixture(scope="package")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    process = EmulatorProcess(tmp_path_factory.mktemp("emulator") / "tls")
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="package")
def server(
    tmp_path_factory: pytest.TempPathFactory, emulator: EmulatorProcess
) -> Iterator[ServerProcess]:
    """A server with the Teams sync on, reaching the emulator by configuration only."""
    process = sync_server(tmp_path_factory.mktemp("console") / "server", emulator)
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="package")
def api(server: ServerProcess) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


class Directory:
    """Groups and users made through the REST API, with unique ids per test."""

    def __init__(self, api: httpx.Client, emulator: EmulatorProcess) -> None:
        self.api = api
        self.emulator = emulator

    def group(self, name: str, mode: str = "telephony_and_presence", **settings: Any) -> str:
        ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
        group_id = f"{ascii_name.lower().replace(' ', '-')}-{uuid.uuid4().hex[:6]}"
        body = {"id": group_id, "name": name, "settings": {"teams_sync_mode": mode, **settings}}
        response = self.api.post("/api/v1/groups", json=body)
        assert response.status_code == 201, response.text
        return group_id

    def user(self, name: str, group: str, teams: bool = True) -> tuple[str, str | None]:
        ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
        user_id = f"{ascii_name.split()[0].lower()}-{uuid.uuid4().hex[:6]}"
        teams_id = new_teams_id() if teams else None
        if teams_id is not None:
            self.emulator.add_user(teams_id)
        body = {"id": user_id, "display_name": name, "group": group, "teams_user_id": teams_id}
        response = self.api.post("/api/v1/users", json=body)
        assert response.status_code == 201, response.text
        return user_id, teams_id


@pytest.fixture
def directory(api: httpx.Client, emulator: EmulatorProcess) -> Directory:
    return Directory(api, emulator)


@pytest.fixture(scope="package")
def plain_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server without an app registration: the Teams sync is off."""
    process = ServerProcess(Path(tmp_path_factory.mktemp("plain")) / "server")
    process.start()
    yield process
    process.stop()
