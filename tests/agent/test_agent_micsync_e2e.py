"""End to end: a real server, the agent process and a real PulseAudio daemon.

What an administrator checks on a Linux desktop: a program named `zoom` records
from the microphone and the user shows `MicSync` / "Zoom Meeting" within 5 s,
and the previous presence within 10 s after it stops; `ms-teams` counts only
once whitelisted; with `MicrophoneUsageSync.Enable=0` nothing changes.

The tests share one server; each has its own user in its own group.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.agent.pulse import PulseDaemon, stop_process
from tests.agent.support import MICSYNC, AgentProcess, presence, stays
from tests.support.server import ServerProcess
from tests.support.waiting import eventually, eventually_timed


def start_server(folder: Path) -> Iterator[ServerProcess]:
    process = ServerProcess(folder)
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    yield from start_server(tmp_path_factory.mktemp("server"))


@pytest.fixture
def api(server: ServerProcess) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


class Desk:
    """One user's desktop: a user in a group of their own, and their running agent."""

    def __init__(self, api: httpx.Client, name: str, enable: int) -> None:
        self.api, self.user, self.group = api, name, f"g-{name}"
        settings = {"MicrophoneUsageSync.Enable": enable}
        body = {"id": self.group, "name": self.group, "settings": settings}
        assert api.post("/api/v1/groups", json=body).status_code == 201
        templates = f"/api/v1/groups/{self.group}/templates"
        assert api.post(templates, json=MICSYNC).status_code == 201
        user = {"id": name, "display_name": name.title(), "group": self.group}
        assert api.post("/api/v1/users", json=user).status_code == 201
        self.token: str = api.post(f"/api/v1/users/{name}/agent-tokens").json()["token"]

    def presence(self) -> dict[str, Any]:
        return presence(self.api, self.user)

    def set(self, **settings: Any) -> None:
        path = f"/api/v1/groups/{self.group}/settings"
        assert self.api.patch(path, json=settings).is_success


def run_agent(
    server: ServerProcess, desk: Desk, pulse: PulseDaemon, folder: Path
) -> Iterator[AgentProcess]:
    agent = AgentProcess(server.url, desk.token, folder / "agent", pulse.env)
    agent.start()
    try:
        agent.wait_for("connected to the hub")
        agent.wait_for("microphone detector: pulseaudio")
        yield agent
    finally:
        agent.stop()


def shows_micsync(text: str) -> Callable[[dict[str, Any]], bool]:
    return lambda p: (p["profile"], p["text"], p["status"]) == ("MicSync", text, "busy")


def available(p: dict[str, Any]) -> bool:
    return p["profile"] is None and p["text"] == "Available"


def test_zoom_on_the_microphone_shows_micsync_and_its_end_returns(
    server: ServerProcess, api: httpx.Client, pulse: PulseDaemon, tmp_path: Path
) -> None:
    desk = Desk(api, "anna", enable=1)
    for agent in run_agent(server, desk, pulse, tmp_path):
        assert available(desk.presence())
        zoom = pulse.record("zoom")
        shown, took = eventually_timed(desk.presence, shows_micsync("Zoom Meeting"), timeout=30)
        assert took >= 1.0, "the on-debounce (2 s) is respected"
        assert shown["microphone"]["process"] == "zoom"

        stop_process(zoom)
        _, took = eventually_timed(desk.presence, available, timeout=30)
        assert took >= 3.0, "the off-debounce (5 s) is respected"
        assert "microphone held by: zoom" in agent.output()


def test_ms_teams_changes_nothing_until_whitelisted(
    server: ServerProcess, api: httpx.Client, pulse: PulseDaemon, tmp_path: Path
) -> None:
    desk = Desk(api, "ben", enable=1)
    for _agent in run_agent(server, desk, pulse, tmp_path):
        pulse.record("ms-teams")
        stays(desk.presence, available, seconds=4)
        desk.set(**{"MicrophoneUsageSync.ProcessWhitelist": "ms-teams"})
        eventually(desk.presence, shows_micsync("Microsoft Teams (V2)"), timeout=30)


def test_with_microphone_sync_disabled_nothing_changes(
    server: ServerProcess, api: httpx.Client, pulse: PulseDaemon, tmp_path: Path
) -> None:
    desk = Desk(api, "cleo", enable=0)
    for agent in run_agent(server, desk, pulse, tmp_path):
        pulse.record("zoom")
        stays(desk.presence, available, seconds=4)
        assert "microphone held by: zoom" not in agent.output()
        # The same program counts as soon as the group switches the feature on.
        desk.set(**{"MicrophoneUsageSync.Enable": 1})
        eventually(desk.presence, shows_micsync("Zoom Meeting"), timeout=30)


def test_a_wrong_token_is_refused_and_said_so(server: ServerProcess, tmp_path: Path) -> None:
    agent = AgentProcess(server.url, "not-a-token", tmp_path / "agent", {**os.environ})
    agent.start()
    try:
        agent.wait_for(r"the hub refused the agent token \(HTTP 403\)")
        agent.wait_for("reconnecting in")  # it keeps trying (a new token may be issued)
        assert agent.process is not None and agent.process.poll() is None
        assert "not-a-token" not in agent.output()
    finally:
        agent.stop()


def test_after_a_server_restart_the_agent_reconnects_and_reports_again(
    pulse: PulseDaemon, tmp_path: Path
) -> None:
    for own in start_server(tmp_path / "server"):
        with own.client() as api:
            desk = Desk(api, "dora", enable=1)
        for agent in run_agent(own, desk, pulse, tmp_path):
            with own.client() as api:
                assert available(presence(api, "dora"))
            own.kill9()
            pulse.record("zoom")  # starts while the hub is away: only a report after hello tells
            agent.wait_for("connection to the hub lost or refused")
            own.start()  # same port, same data
            with own.client() as api:
                # A bound only: the agent's backoff grew while the hub was away (up to 60 s
                # between tries; a busy machine restarts the hub slowly).
                eventually(lambda: presence(api, "dora"), shows_micsync("Zoom Meeting"), 90)
            assert agent.output().count("connected to the hub") == 2
