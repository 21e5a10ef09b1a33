"""Client-side Teams mode: the agent signs its user in and runs the user's Teams sync.

A Graph emulator (HTTPS, its own CA) stands in for Entra ID and Graph; the
server has an app registration without a secret, so it cannot reach Teams
itself and its agents do (SPEC §5). Each test plays the user: the agent prints a
device code, the emulator's control API approves it as the user would in a
browser.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.agent.support import AgentProcess, presence, stays
from tests.support.server import ServerProcess
from tests.support.teams import CLIENT_ID, TENANT, EmulatorProcess, new_teams_id
from tests.support.waiting import eventually

AGENT_SECRET = "a-desktop-secret-for-the-agent-token-cache"
DND = {"name": "Fokus", "status": "dnd", "text": "Fokuszeit", "color": "#cc0000"}


def start_emulator(folder: Path) -> Iterator[EmulatorProcess]:
    process = EmulatorProcess(folder / "tls")
    process.start()
    yield process
    process.stop()


def start_server(folder: Path, emulator: EmulatorProcess) -> Iterator[ServerProcess]:
    """A hub whose app registration has no secret: client-side Teams mode."""
    process = ServerProcess(
        folder / "server",
        PRESENCEBRIDGE_GRAPH_URL=f"{emulator.base_url}/v1.0",
        PRESENCEBRIDGE_AUTHORITY=emulator.base_url,
        PRESENCEBRIDGE_CA_BUNDLE=str(emulator.ca_file),
        PRESENCEBRIDGE_TENANT_ID=TENANT,
        PRESENCEBRIDGE_CLIENT_ID=CLIENT_ID,
    )
    process.env.pop("PRESENCEBRIDGE_CLIENT_SECRET", None)
    process.start()
    yield process
    process.stop()


# The tests share an emulator and a server (each has its own users and groups); the one
# that moves the emulator's clock has its own.
@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    yield from start_emulator(tmp_path_factory.mktemp("emulator"))


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, emulator: EmulatorProcess
) -> Iterator[ServerProcess]:
    yield from start_server(tmp_path_factory.mktemp("hub"), emulator)


@pytest.fixture
def api(server: ServerProcess) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


class User:
    def __init__(
        self,
        api: httpx.Client,
        emulator: EmulatorProcess,
        name: str,
        upn: str,
        remember: bool = True,
        federated: bool = False,
        **settings: Any,
    ) -> None:
        self.api, self.emulator, self.id = api, emulator, name
        self.teams_id = new_teams_id()
        emulator.post("/_emulator/users", {"id": self.teams_id, "upn": upn, "federated": federated})
        emulator.client_presence(self.teams_id, "Available", "Available")
        self.group = group = f"g-{name}"
        settings = {
            "teams_sync_mode": "telephony_and_presence",
            "remember_credentials": remember,
            **settings,
        }
        assert api.post(
            "/api/v1/groups", json={"id": group, "name": group, "settings": settings}
        ).is_success
        body = {"id": name, "display_name": name, "group": group, "teams_user_id": self.teams_id}
        assert api.post("/api/v1/users", json=body).status_code == 201
        self.token: str = api.post(f"/api/v1/users/{name}/agent-tokens").json()["token"]

    def presence(self) -> dict[str, Any]:
        return presence(self.api, self.id)

    def work_location(self) -> tuple[str, str]:
        """What Graph shows as the user's work location: (workLocationType, source)."""
        with self.emulator.control() as client:
            response = client.get(f"/_emulator/users/{self.teams_id}")
            assert response.is_success, response.text
            shown = response.json()["presence"]["workLocation"]
        return shown["workLocationType"], shown["source"]

    def location_writes(self) -> dict[str, int]:
        """The work-location requests the emulator took for the user, by action."""
        writes = self.emulator.stats()["users"][self.teams_id]
        return {a: writes[a] for a in ("setAutomaticLocation", "clearAutomaticLocation")}

    def office_networks(self, networks: str) -> None:
        """The administrator changes the group's office networks."""
        body = {"teams_work_location_office_networks": networks}
        response = self.api.patch(f"/api/v1/groups/{self.group}/settings", json=body)
        assert response.is_success, response.text

    def approve(self, agent: AgentProcess) -> None:
        """The user opens the verification page and enters the code the agent printed."""
        code = agent.user_code()
        self.emulator.post("/_emulator/device/approve", {"user_code": code, "user": self.teams_id})


def make_agent(
    server: ServerProcess,
    emulator: EmulatorProcess,
    user: User,
    state_dir: Path,
    secret: str | None = AGENT_SECRET,
) -> AgentProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PRESENCEBRIDGE_")}
    env.pop("DBUS_SESSION_BUS_ADDRESS", None)  # no desktop keyring in these tests
    if secret:
        env["PRESENCEBRIDGE_AGENT_SECRET"] = secret
    env["PULSE_SERVER"] = "unix:/nonexistent"  # no sound server needed for Teams
    return AgentProcess(
        server.url, user.token, state_dir, env, "--ca-bundle", str(emulator.ca_file)
    )


def teams_call(p: dict[str, Any]) -> bool:
    return p["telephony"] == "on_the_phone" and any(
        a["origin"] == "teams" for a in p["appointments"]
    )


def no_teams_appointment(p: dict[str, Any]) -> bool:
    return p["telephony"] == "idle" and not any(a["origin"] == "teams" for a in p["appointments"])


def test_killed_during_a_call_the_agent_leaves_the_appointment_and_its_restart_removes_it(
    tmp_path: Path, server: ServerProcess, api: httpx.Client, emulator: EmulatorProcess
) -> None:
    alice = User(api, emulator, "alice", "alice@contoso.example")
    agent = make_agent(server, emulator, alice, tmp_path / "alice")
    agent.start()
    try:
        alice.approve(agent)
        agent.wait_for("signed in as alice@contoso.example")
        agent.wait_for(r"remembered \(encrypted\)")

        emulator.client_presence(alice.teams_id, "Busy", "InACall")  # a Teams call
        eventually(alice.presence, teams_call, timeout=30)

        agent.kill9()  # the PC crashes during the call
        emulator.client_presence(alice.teams_id, "Available", "Available")  # the call ends
        stays(alice.presence, teams_call, seconds=3)  # nobody reads Teams for alice now

        agent.start()  # the next morning: no sign-in prompt, the hello cleans up
        eventually(alice.presence, no_teams_appointment, timeout=30)
        agent.wait_for(r"signed in as alice@contoso.example \(remembered\)")
        assert "enter the code" not in agent.output()

        # And the remembered sign-in works: the next call is seen again.
        emulator.client_presence(alice.teams_id, "Busy", "InACall")
        eventually(alice.presence, teams_call, timeout=30)
    finally:
        agent.stop()
    cache = (tmp_path / "alice" / "teams-signin.cache").read_bytes()
    # A JWT in the clear would stand in quotes ('"eyJ'); the ciphertext is base64url,
    # which has no quote, while a bare "eyJ" turns up in it by chance (1 run in ~150).
    for readable in (b"access_token", b"refresh_token", b"secret", b"alice", b"contoso", b'"eyJ'):
        assert readable not in cache
    assert oct((tmp_path / "alice" / "teams-signin.cache").stat().st_mode)[-3:] == "600"


def test_the_agent_writes_the_hubs_calls_and_dnd_to_teams(
    tmp_path: Path, server: ServerProcess, api: httpx.Client, emulator: EmulatorProcess
) -> None:
    bob = User(api, emulator, "bob", "bob@contoso.example", remember=False)
    agent = make_agent(server, emulator, bob, tmp_path / "bob")
    agent.start()
    try:
        bob.approve(agent)
        agent.wait_for("signed in as bob@contoso.example")

        call = {"user": "bob", "call_id": "4711", "state": "connected"}
        assert api.post("/api/v1/telephony/events", json=call).is_success
        eventually(lambda: emulator.shown(bob.teams_id), lambda s: s == ("Busy", "InACall"), 8)
        # The hub's own write is not mistaken for a Teams call (no echo).
        stays(bob.presence, lambda p: not any(a["origin"] == "teams" for a in p["appointments"]), 3)
        assert api.post("/api/v1/telephony/events", json={**call, "state": "ended"}).is_success
        eventually(lambda: emulator.shown(bob.teams_id), lambda s: s[0] == "Available", 8)

        assert api.post("/api/v1/users/bob/profiles", json=DND).status_code == 201
        assert api.put("/api/v1/users/bob/profile", json={"name": "Fokus"}).is_success
        dnd = ("DoNotDisturb", "DoNotDisturb")
        eventually(lambda: emulator.shown(bob.teams_id), lambda s: s == dnd, 8)
        assert api.put("/api/v1/users/bob/profile", json={"name": None}).is_success
        eventually(lambda: emulator.shown(bob.teams_id), lambda s: s[0] == "Available", 8)

        # remember_credentials is off: nothing of the sign-in is on disk, and the next
        # start asks for it again.
        assert not (tmp_path / "bob" / "teams-signin.cache").exists()
        agent.stop()
        agent.start()
        bob.approve(agent)
        agent.wait_for("signed in as bob@contoso.example")
    finally:
        agent.stop()


def test_a_federated_account_is_not_remembered_and_signs_in_at_each_start(
    tmp_path: Path, server: ServerProcess, api: httpx.Client, emulator: EmulatorProcess
) -> None:
    carol = User(api, emulator, "carol", "carol@fabrikam.example", federated=True)
    agent = make_agent(server, emulator, carol, tmp_path / "carol")
    agent.start()
    try:
        carol.approve(agent)
        agent.wait_for("signed in as carol@fabrikam.example")
        agent.wait_for(r"not remembered: this is a federated \(ADFS\) account")
        emulator.client_presence(carol.teams_id, "Busy", "InACall")
        eventually(carol.presence, teams_call, timeout=30)  # the sync itself works
        agent.stop()
        assert not (tmp_path / "carol" / "teams-signin.cache").exists()

        agent.start()
        carol.approve(agent)  # asked again
        agent.wait_for("signed in as carol@fabrikam.example")
    finally:
        agent.stop()


def test_without_keyring_or_secret_the_sign_in_stays_in_memory_and_expiry_asks_again(
    tmp_path: Path,
) -> None:
    for emulator in start_emulator(tmp_path):
        for server in start_server(tmp_path, emulator):
            with server.client() as api:
                dave = User(api, emulator, "dave", "dave@contoso.example")
                agent = make_agent(server, emulator, dave, tmp_path / "dave", secret=None)
                agent.start()
                try:
                    dave.approve(agent)
                    agent.wait_for("signed in as dave@contoso.example")
                    agent.wait_for("cannot be remembered on this computer")
                    assert "PRESENCEBRIDGE_AGENT_SECRET" in agent.output()

                    # 91 days later the refresh token has expired: a new sign-in is asked for.
                    first = agent.user_code()
                    emulator.advance(91 * 86400)
                    agent.wait_for("please sign in again", timeout=15)
                    second = agent.wait_for(rf"enter the code (?!{first})(\S+) to authenticate")
                    approve = {"user_code": second.group(1), "user": dave.teams_id}
                    emulator.post("/_emulator/device/approve", approve)
                    emulator.client_presence(dave.teams_id, "Busy", "InACall")
                    eventually(dave.presence, teams_call, timeout=30)
                finally:
                    agent.stop()
    assert not (tmp_path / "dave" / "teams-signin.cache").exists()


def test_the_agent_sets_the_work_location_from_the_office_networks_and_clears_it_when_done(
    tmp_path: Path, server: ServerProcess, api: httpx.Client, emulator: EmulatorProcess
) -> None:
    # The emulator is on 127.0.0.1: the agent's route to Graph leaves from loopback.
    erin = User(
        api,
        emulator,
        "erin",
        "erin@contoso.example",
        remember=False,
        teams_work_location_office_networks="10.99.0.0/16; 127.0.0.0/8",
    )
    agent = make_agent(server, emulator, erin, tmp_path / "erin")
    agent.start()
    try:
        erin.approve(agent)
        agent.wait_for("signed in as erin@contoso.example")
        eventually(erin.work_location, lambda w: w == ("office", "automatic"), timeout=30)

        erin.office_networks("10.99.0.0/16, 2001:db8:5::/48")  # loopback is not the office
        eventually(erin.work_location, lambda w: w == ("remote", "automatic"), timeout=30)
        # One request per decided value: nothing is written again while it holds.
        assert erin.location_writes() == {"setAutomaticLocation": 2, "clearAutomaticLocation": 0}

        erin.office_networks("")  # the administrator switches it off: the agent clears
        eventually(erin.work_location, lambda w: w == ("unspecified", "none"), timeout=30)
        assert erin.location_writes() == {"setAutomaticLocation": 2, "clearAutomaticLocation": 1}

        erin.office_networks("127.0.0.1/32")
        eventually(erin.work_location, lambda w: w == ("office", "automatic"), timeout=30)

        agent.stop()  # SIGTERM, as at logout: the agent clears what it set, then exits
        assert agent.process is not None and agent.process.returncode == 0, agent.output()
        assert erin.work_location() == ("unspecified", "none")
        assert erin.location_writes() == {"setAutomaticLocation": 3, "clearAutomaticLocation": 2}
    finally:
        agent.stop()


def test_without_office_networks_the_agent_makes_no_work_location_request(
    tmp_path: Path, server: ServerProcess, api: httpx.Client, emulator: EmulatorProcess
) -> None:
    frank = User(api, emulator, "frank", "frank@contoso.example", remember=False)
    agent = make_agent(server, emulator, frank, tmp_path / "frank")
    agent.start()
    try:
        frank.approve(agent)
        agent.wait_for("signed in as frank@contoso.example")
        emulator.client_presence(frank.teams_id, "Busy", "InACall")
        eventually(frank.presence, teams_call, timeout=30)  # its Graph loops do run
    finally:
        agent.stop()
    assert agent.process is not None and agent.process.returncode == 0, agent.output()
    assert frank.location_writes() == {"setAutomaticLocation": 0, "clearAutomaticLocation": 0}
    assert frank.work_location() == ("unspecified", "none")
