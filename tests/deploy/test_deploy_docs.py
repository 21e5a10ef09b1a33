"""docs/deploy.md names only settings, commands, paths and metrics that exist."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer
from prometheus_client import generate_latest
from starlette.routing import Match

from presencebridge import metrics
from presencebridge.api.app import create_app
from presencebridge.cli import app as cli_app
from presencebridge.config import Settings
from tests.deploy.support import DEPLOY

DOC = DEPLOY.parent / "docs" / "deploy.md"
README = DEPLOY.parent / "README.md"
# Read by other parts than the server's settings: the CLI and the agent.
OTHER_VARIABLES = {"PRESENCEBRIDGE_SERVER", "PRESENCEBRIDGE_AGENT_TOKEN"}


def _text() -> str:
    return DOC.read_text()


def test_every_setting_named_exists() -> None:
    fields = set(Settings.model_fields)
    variables = set(re.findall(r"PRESENCEBRIDGE_[A-Z_]+", _text()))
    unknown = {v for v in variables if v.removeprefix("PRESENCEBRIDGE_").lower() not in fields}
    assert unknown <= OTHER_VARIABLES, f"not a setting: {sorted(unknown - OTHER_VARIABLES)}"
    # The settings table's TOML keys (first column, lower case).
    keys: set[str] = set()
    for line in _text().splitlines():
        if line.startswith("| `") and "| TOML |" in line:
            keys.update(re.findall(r"`([a-z_]+)`", line.split("|")[1]))
    assert keys and keys <= fields, f"not a TOML key: {sorted(keys - fields)}"


def test_every_command_named_exists() -> None:
    command = typer.main.get_command(cli_app)
    known = set(getattr(command, "commands", {}))
    # In code: `presencebridge groups set ...`, .../venv/bin/presencebridge serve ...
    used = set(re.findall(r"(?:`|/bin/)presencebridge ([a-z][a-z-]*)", _text()))
    assert {"serve", "version"} <= used
    assert used <= known, f"no such command: {sorted(used - known)}"


def test_every_api_path_and_metric_named_exists(tmp_path: Path) -> None:
    app = create_app(Settings(admin_token="docs-check", data_dir=tmp_path))

    def served(path: str) -> bool:
        for kind in ("http", "websocket"):
            scope: dict[str, Any] = {
                "type": kind,
                "path": path,
                "method": "GET",
                "root_path": "",
                "headers": [],
            }
            if any(route.matches(scope)[0] != Match.NONE for route in app.routes):
                return True
        return False

    for path in set(re.findall(r"(/(?:api/v1|console|graph)/[a-z/_-]*[a-z])", _text())):
        assert served(path), f"docs/deploy.md names {path}, which the server does not serve"
    exposed = generate_latest(metrics.REGISTRY).decode()
    for name in set(re.findall(r"presencebridge_[a-z_]+", _text())):
        assert f"# TYPE {name} " in exposed, f"no metric {name}"


def test_the_readme_links_the_deployment_guide() -> None:
    assert "(docs/deploy.md)" in README.read_text()
