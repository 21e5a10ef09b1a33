"""The agent's own decisions, with a fake clock and fake Graph: what it reports and writes."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from presencebridge.agent.runner import MicrophoneReporter, backoff_delay, stream_url
from presencebridge.agent.teams import STATE_FILE, TeamsAgent, TeamsConfig
from presencebridge.agent.work_location import route_addresses

pytestmark = pytest.mark.anyio

T0 = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)
WHITELIST = ["chrome", "firefox", "iexplore", "msedge", "g2mcomm", "teamviewermeeting", "zoom"]


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


async def test_reports_whitelisted_holders_after_the_on_delay_and_until_the_off_delay() -> None:
    reporter = MicrophoneReporter()
    reporter.configure(True, WHITELIST)
    reporter.observe({"zoom", "ms-teams", "presencebridge"}, at(0))
    assert reporter.report() == []
    assert reporter.next_wakeup(at(0)) == at(2)
    reporter.observe({"zoom", "ms-teams", "presencebridge"}, at(2))
    assert reporter.report() == ["zoom"]  # ms-teams is not whitelisted; the agent never counts
    reporter.observe(set(), at(10))
    reporter.due(at(14.9))
    assert reporter.report() == ["zoom"], "a short silence is no release"
    reporter.due(at(15))
    assert reporter.report() == []


async def test_a_program_whitelisted_while_it_holds_the_microphone_is_reported_at_once() -> None:
    reporter = MicrophoneReporter()
    reporter.configure(True, WHITELIST)
    reporter.observe({"ms-teams"}, at(0))
    reporter.due(at(30))
    assert reporter.report() == []
    reporter.configure(True, [*WHITELIST, "MS-Teams.exe"])
    assert reporter.report() == ["ms-teams"]


async def test_nothing_is_reported_while_microphone_sync_is_off() -> None:
    reporter = MicrophoneReporter(on_delay=timedelta(seconds=1))
    reporter.configure(False, WHITELIST)
    reporter.observe({"zoom"}, at(0))
    reporter.due(at(5))
    assert reporter.report() == []
    reporter.configure(True, WHITELIST)  # switched on: counts from now, not from before
    reporter.observe({"zoom"}, at(6))
    assert reporter.report() == []
    reporter.due(at(7))
    assert reporter.report() == ["zoom"]


async def test_backoff_is_jittered_exponential_and_capped() -> None:
    assert 0.125 <= backoff_delay(0) <= 0.25
    assert backoff_delay(3, rng=lambda: 0.0) == 1.0
    assert backoff_delay(3, rng=lambda: 1.0) == 2.0
    assert backoff_delay(40, rng=lambda: 1.0) == 60.0
    delays = {backoff_delay(4) for _ in range(20)}
    assert len(delays) > 1, "reconnecting agents do not stampede in step"


async def test_stream_url() -> None:
    assert stream_url("http://hub:8080") == "ws://hub:8080/api/v1/agent/stream"
    assert stream_url("https://hub.example/pb/") == "wss://hub.example/pb/api/v1/agent/stream"
    with pytest.raises(ValueError, match="http"):
        stream_url("ftp://hub")


class FakeGraph:
    """The presence port (`core.ports.TeamsPresenceWrites`) as the agent uses it (`/me`)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    async def set_session(self, teams_user_id: str, availability: str, activity: str) -> None:
        self.calls.append(("setPresence", activity))

    async def clear_session(self, teams_user_id: str) -> None:
        self.calls.append(("clearPresence", None))

    async def set_preferred_dnd(self, teams_user_id: str, duration: timedelta | None) -> None:
        minutes = None if duration is None else int(duration.total_seconds() // 60)
        self.calls.append(("setUserPreferredPresence", minutes))

    async def clear_preferred(self, teams_user_id: str) -> None:
        self.calls.append(("clearUserPreferredPresence", None))

    async def set_status_message(
        self, teams_user_id: str, text: str, until: datetime | None
    ) -> None:
        self.calls.append(("setStatusMessage", text))

    async def clear_status_message(self, teams_user_id: str) -> None:
        self.calls.append(("setStatusMessage", ""))


class Recorder:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def __call__(self, message: dict[str, Any]) -> None:
        self.sent.append(message)


def intent(
    session: str | None = None,
    dnd: bool = False,
    minutes: int | None = None,
    refresh: bool = False,
) -> dict[str, Any]:
    return {
        "type": "teams_intent",
        "session": session,
        "preferred_dnd": dnd,
        "preferred_dnd_minutes": minutes,
        "refresh": refresh,
    }


def teams_agent(state: Path, clock: list[datetime]) -> tuple[TeamsAgent, Recorder, FakeGraph]:
    sent = Recorder()
    agent = TeamsAgent(state, None, sent, lambda _text: None, now=lambda: clock[0])
    return agent, sent, FakeGraph()


async def test_writes_follow_the_hubs_intent_and_are_acknowledged(tmp_path: Path) -> None:
    clock = [T0]
    agent, sent, graph = teams_agent(tmp_path, clock)
    await agent.apply(graph, intent("InACall", refresh=True))
    assert graph.calls == [("setPresence", "InACall")]
    assert sent.sent == [{"type": "teams_written", "session": "InACall"}]

    await agent.apply(graph, intent("InACall", refresh=True))
    assert graph.calls[-1] == ("setPresence", "InACall"), "a refresh is sent again"

    sent.sent.clear()
    await agent.apply(graph, intent(None, dnd=True, minutes=30))
    assert graph.calls[-2:] == [("clearPresence", None), ("setUserPreferredPresence", 30)]
    assert sent.sent == [
        {"type": "teams_written", "session": None},
        {
            "type": "teams_written",
            "preferred_dnd_until": (T0 + timedelta(minutes=30)).isoformat(),
            "default_expiry": False,
        },
    ]
    saved = json.loads((tmp_path / STATE_FILE).read_text())
    assert saved["preferred_dnd_until"] == (T0 + timedelta(minutes=30)).isoformat()

    await agent.apply(graph, intent(None, dnd=False))
    assert graph.calls[-1:] == [("clearUserPreferredPresence", None)]


async def test_a_dnd_the_agent_did_not_set_is_never_cleared(tmp_path: Path) -> None:
    clock = [T0]
    agent, sent, graph = teams_agent(tmp_path, clock)
    await agent.apply(graph, intent(None))
    await agent.apply(graph, intent(None))
    assert ("clearUserPreferredPresence", None) not in graph.calls
    # Only the session this agent may have left behind before it started is cleared, once.
    assert graph.calls == [("clearPresence", None)]
    assert {"type": "teams_written", "preferred_dnd_until": None, "default_expiry": False} in (
        sent.sent
    ), "with nothing to write, the agent re-acknowledges what holds"


async def test_a_remembered_dnd_survives_an_agent_restart(tmp_path: Path) -> None:
    clock = [T0]
    agent, _, graph = teams_agent(tmp_path, clock)
    await agent.apply(graph, intent(None, dnd=True))
    assert graph.calls[-1] == ("setUserPreferredPresence", None)

    restarted, sent, graph = teams_agent(tmp_path, clock)
    await restarted.apply(graph, intent(None, dnd=True))
    assert ("setUserPreferredPresence", None) not in graph.calls, "not silently re-asserted"
    assert sent.sent[-1] == {
        "type": "teams_written",
        "preferred_dnd_until": (T0 + timedelta(days=1)).isoformat(),
        "default_expiry": True,
    }
    await restarted.apply(graph, intent(None, dnd=False))
    assert graph.calls[-1] == ("clearUserPreferredPresence", None)


async def test_the_newest_intent_wins(tmp_path: Path) -> None:
    agent, _, _ = teams_agent(tmp_path, [T0])
    agent.intent(intent("InACall"))
    agent.intent(intent(None))
    assert agent._intent == intent(None)


async def test_teams_settings_parse() -> None:
    config = TeamsConfig.parse(
        {
            "client_side": True,
            "mode": "telephony_only",
            "remember_credentials": True,
            "authority": "https://login.microsoftonline.com",
            "tenant_id": "contoso",
            "client_id": "app",
            "graph_url": "https://graph.microsoft.com/v1.0",
        }
    )
    assert config.active
    assert config.office_networks == ()  # an older hub sends none: the feature is off
    networks = TeamsConfig.parse({"office_networks": ["10.20.0.0/16", 7, "2001:db8:5::/48"]})
    assert networks.office_networks == ("10.20.0.0/16", "2001:db8:5::/48")
    assert not TeamsConfig.parse({"client_side": True, "mode": "off"}).active
    assert not TeamsConfig.parse(None).active


class RecordingTeams(TeamsAgent):
    """The Teams part with its sign-in and Graph loop replaced by a record of the runs."""

    def __init__(self, state: Path) -> None:
        super().__init__(state, None, Recorder(), lambda _text: None)
        self.runs: list[TeamsConfig] = []

    async def _run(self, config: TeamsConfig) -> None:
        self.runs.append(config)
        await asyncio.Event().wait()


def settings(**changes: Any) -> TeamsConfig:
    base = {
        "client_side": True,
        "mode": "telephony_and_presence",
        "remember_credentials": True,
        "authority": "https://login.example",
        "tenant_id": "contoso",
        "client_id": "app-1",
        "graph_url": "https://graph.example/v1.0",
    }
    return TeamsConfig.parse({**base, **changes})


async def test_the_teams_part_restarts_only_when_its_sign_in_depends_on_a_change(
    tmp_path: Path,
) -> None:
    teams = RecordingTeams(tmp_path)
    await teams.configure(settings())
    await asyncio.sleep(0)
    await teams.configure(settings(mode="telephony_only"))  # the hub's rules, not the sign-in
    await asyncio.sleep(0)
    await teams.configure(settings(office_networks=["10.20.0.0/16"]))  # decided anew, same run
    await asyncio.sleep(0)
    assert len(teams.runs) == 1
    assert teams.config is not None and teams.config.office_networks == ("10.20.0.0/16",)
    await teams.configure(settings(client_id="app-2"))  # another app registration
    await asyncio.sleep(0)
    assert [r.client_id for r in teams.runs] == ["app-1", "app-2"]
    await teams.configure(settings(client_id="app-2", remember_credentials=False))
    await asyncio.sleep(0)
    assert len(teams.runs) == 3

    (tmp_path / "teams-signin.cache").write_bytes(b"encrypted")
    await teams.configure(settings(client_side=False, remember_credentials=False))
    assert teams._task is None, "stopped"
    assert not (tmp_path / "teams-signin.cache").exists(), "nothing remembered stays behind"
    await teams.stop()


def test_the_address_matched_is_the_source_of_the_route_to_graph() -> None:
    # Real sockets, no packet sent: loopback routes from loopback.
    assert route_addresses("https://127.0.0.1:8443/v1.0") == ["127.0.0.1"]
    assert route_addresses("http://127.0.0.1/v1.0") == ["127.0.0.1"]
    assert route_addresses("https://localhost:8443/v1.0")[:1] in (["127.0.0.1"], ["::1"])
    assert route_addresses("not a url") == []
