"""A server with `[[directory]]` tables, run against the Graph emulator, and the CLI's
`directory sync` as an administrator runs it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

from tests.support.server import ADMIN_TOKEN, BIN, ServerProcess
from tests.support.teams import CLIENT_ID, CLIENT_SECRET, TENANT, EmulatorProcess


def directory_server(folder: Path, emulator: EmulatorProcess, config: str) -> ServerProcess:
    """A started server with `config` as its file, Graph in the emulator, and the
    groups `hq` and `sales` (Teams sync on)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "presencebridge.toml"
    path.write_text(config)
    process = ServerProcess(
        folder / "server",
        ("--config", str(path)),
        PRESENCEBRIDGE_GRAPH_URL=f"{emulator.base_url}/v1.0",
        PRESENCEBRIDGE_AUTHORITY=emulator.base_url,
        PRESENCEBRIDGE_CA_BUNDLE=str(emulator.ca_file),
        PRESENCEBRIDGE_TENANT_ID=TENANT,
        PRESENCEBRIDGE_CLIENT_ID=CLIENT_ID,
        PRESENCEBRIDGE_CLIENT_SECRET=CLIENT_SECRET,
    )
    process.start()
    with process.client() as client:
        for group in ("hq", "sales"):
            body = {"id": group, "name": group.upper(),
                    "settings": {"teams_sync_mode": "telephony_and_presence"}}  # fmt: skip
            assert client.post("/api/v1/groups", json=body).status_code == 201
    return process


def sync(server: ServerProcess, *flags: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN), "directory", "sync", *flags, "--server", server.url],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PRESENCEBRIDGE_ADMIN_TOKEN": ADMIN_TOKEN},
        check=False,
    )


def users(server: ServerProcess) -> dict[str, dict[str, Any]]:
    with server.client() as client:
        return {u["id"]: u for u in client.get("/api/v1/users").json()}
