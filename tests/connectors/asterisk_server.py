"""A server whose `[[pbx]]` and `[[publish]]` tables point at a test Asterisk, as an
operator would configure it: AMI users and secrets from the environment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.support.asterisk import CONTEXT, AsteriskProcess
from tests.support.server import ServerProcess
from tests.support.teams import CLIENT_ID, CLIENT_SECRET, TENANT, EmulatorProcess

# Short keepalive and backoff bounds so the fault tests see a dead link and a
# reconnect within seconds; production defaults are 20 s and 30 s.
FAST = "keepalive_seconds = 2\naction_timeout_seconds = 3\nreconnect_max_seconds = 1\n"


def config(
    ami_port: int, pbx: bool = True, publish: bool = True, apply_profile: bool = False
) -> str:
    text = ""
    if pbx:
        text += f"""[[pbx]]
kind = "asterisk-ami"
name = "asterisk"
host = "127.0.0.1"
port = {ami_port}
username = "reader"
secret_env = "TEST_AMI_READER_SECRET"
context = "{CONTEXT}"
{FAST}
"""
    if publish:
        text += f"""[[publish]]
kind = "asterisk-ami"
name = "asterisk-blf"
host = "127.0.0.1"
port = {ami_port}
username = "{"profile" if apply_profile else "writer"}"
secret_env = "TEST_AMI_WRITER_SECRET"
device = "Custom:{{extension}}-teams"
apply_profile = {"true" if apply_profile else "false"}
{FAST}
"""
    return text


def asterisk_server(
    folder: Path,
    asterisk: AsteriskProcess,
    *,
    ami_port: int | None = None,
    emulator: EmulatorProcess | None = None,
    pbx: bool = True,
    publish: bool = True,
    reader_secret: str | None = None,
    apply_profile: bool = False,
) -> ServerProcess:
    """A started server reading and writing `asterisk` (through `ami_port`, e.g. a
    proxy's, when given), with Graph in `emulator` when given."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "presencebridge.toml"
    path.write_text(config(ami_port or asterisk.ami_port, pbx, publish, apply_profile))
    env = {
        "TEST_AMI_READER_SECRET": reader_secret or asterisk.secrets["reader"],
        "TEST_AMI_WRITER_SECRET": asterisk.secrets["profile" if apply_profile else "writer"],
    }
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


def add_user(api: httpx.Client, user: str, extension: str, teams_id: str | None = None) -> None:
    if api.get("/api/v1/groups/office").status_code == 404:
        group = {"id": "office", "name": "Office",
                 "settings": {"teams_sync_mode": "telephony_and_presence"}}  # fmt: skip
        assert api.post("/api/v1/groups", json=group).status_code == 201
    body: dict[str, Any] = {"id": user, "display_name": user.title(), "group": "office",
                            "extensions": [extension]}  # fmt: skip
    if teams_id is not None:
        body["teams_user_id"] = teams_id
    response = api.post("/api/v1/users", json=body)
    assert response.status_code == 201, response.text


def connector(server: ServerProcess, name: str) -> dict[str, Any]:
    """The connector's entry on /healthz."""
    with server.client() as client:
        found = client.get("/healthz").json()["connectors"]
    [entry] = [c for c in found if c["name"] == name]
    result: dict[str, Any] = entry
    return result


def telephony(server: ServerProcess, user: str) -> str:
    with server.client() as client:
        value: str = client.get(f"/api/v1/users/{user}/presence").json()["telephony"]
    return value
