"""What the XMPP tests share: a real XMPP server with a watcher account (bob) and the
account the hub logs into for alice, and a hub server whose `[[publish]]` tables point
at it. Everything runs as separate processes on free ports."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.server import ServerProcess
from tests.support.teams import CLIENT_ID, CLIENT_SECRET, TENANT, EmulatorProcess
from tests.support.waiting import eventually
from tests.support.xmpp import (
    COMPONENT,
    DOMAIN,
    Account,
    EjabberdServer,
    ProsodyServer,
)

COMPONENT_SECRET = "xmpp-component-secret-7f3a9c2e"
HUB_PASSWORD = "hub-account-password-51c2d8"
BOB = Account("bob", "bob-password")
ALICE = Account("alice", HUB_PASSWORD)  # the account the hub logs into for alice
ALICE_COMPONENT = f"alice@{COMPONENT}"
ALICE_ACCOUNT = f"alice@{DOMAIN}/presencebridge"
# Bounds only: a hub, an emulator and an XMPP server start on two busy cores.
WAIT = 90.0

XmppServer = ProsodyServer | EjabberdServer


def xmpp_server(kind: str, folder: Path, secret: str = COMPONENT_SECRET) -> XmppServer:
    """A started server where bob has alice's telephony contact (`alice@presence…`) and
    alice's own account in his roster."""
    if kind == "prosody":
        members = {BOB.jid: "Bob", ALICE.jid: "Alice", ALICE_COMPONENT: "Alice (Telefon)"}
        prosody = ProsodyServer(folder, secret, members)
        for account in (BOB, ALICE):
            prosody.register(account)
        prosody.start()
        return prosody
    ejabberd = EjabberdServer(folder, secret)
    try:
        ejabberd.start()
        for account in (BOB, ALICE):
            ejabberd.register(account)
        ejabberd.shared_group()
        ejabberd.contact(BOB.user, ALICE_COMPONENT, "Alice (Telefon)")
    except BaseException:
        ejabberd.close()
        raise
    return ejabberd


def publish_tables(xmpp: XmppServer, component: bool = True, account: bool = True) -> str:
    tables = ""
    if component:
        tables += f"""
[[publish]]
kind = "xmpp-component"
name = "chat"
domain = "{COMPONENT}"
port = {xmpp.component}
language = "de"
secret_env = "XMPP_COMPONENT_SECRET"
"""
    if account:
        tables += f"""
[[publish]]
kind = "xmpp-account"
name = "accounts"
address = "email-local"
domain = "{DOMAIN}"
port = {xmpp.c2s}
tls = "none"
language = "de"
secret_env = "XMPP_ACCOUNT_PASSWORD"
"""
    return tables


def hub_server(
    folder: Path,
    config: str,
    emulator: EmulatorProcess | None = None,
    secret: str = COMPONENT_SECRET,
) -> ServerProcess:
    """A started hub with `config` as its file (Graph in the emulator, when given)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "presencebridge.toml"
    path.write_text(config)
    env = {"XMPP_COMPONENT_SECRET": secret, "XMPP_ACCOUNT_PASSWORD": HUB_PASSWORD}
    if emulator is not None:
        env |= {
            "PRESENCEBRIDGE_GRAPH_URL": f"{emulator.base_url}/v1.0",
            "PRESENCEBRIDGE_AUTHORITY": emulator.base_url,
            "PRESENCEBRIDGE_CA_BUNDLE": str(emulator.ca_file),
            "PRESENCEBRIDGE_TENANT_ID": TENANT,
            "PRESENCEBRIDGE_CLIENT_ID": CLIENT_ID,
            "PRESENCEBRIDGE_CLIENT_SECRET": CLIENT_SECRET,
        }
    process = ServerProcess(folder / "server", ("--config", str(path)), **env)
    process.start()
    return process


def add_alice(api: httpx.Client, teams_id: str | None = None) -> str:
    """alice, e-mail alice@example.com: `alice@presence.localhost` for the component,
    `alice@localhost` for the account outlet."""
    body = {"id": "hq", "name": "HQ", "settings": {"teams_sync_mode": "telephony_and_presence"}}
    assert api.post("/api/v1/groups", json=body).status_code == 201
    user: dict[str, Any] = {"id": "alice", "display_name": "Alice", "group": "hq",
                            "email": "alice@example.com"}  # fmt: skip
    if teams_id is not None:
        user["teams_user_id"] = teams_id
    response = api.post("/api/v1/users", json=user)
    assert response.status_code == 201, response.text
    return "alice"


def connectors(server: ServerProcess) -> dict[str, dict[str, Any]]:
    health = httpx.get(server.url + "/healthz", timeout=10).json()
    return {c["name"]: c for c in health["connectors"]}


def all_up(server: ServerProcess, timeout: float = WAIT) -> dict[str, dict[str, Any]]:
    return eventually(
        lambda: connectors(server),
        lambda found: bool(found) and all(c["up"] for c in found.values()),
        timeout,
        step=0.1,
    )


def pbx(api: httpx.Client, user: str, call_id: str, state: str) -> None:
    event = {"user": user, "call_id": call_id, "state": state}
    response = api.post("/api/v1/telephony/events", json=event)
    assert response.status_code == 200, response.text


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    process = EmulatorProcess(tmp_path_factory.mktemp("emulator") / "tls")
    process.start()
    yield process
    process.stop()
