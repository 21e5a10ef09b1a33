"""The deploy/ examples as the tests read them, and the server as the unit starts it."""

from __future__ import annotations

import shlex
import tomllib
from pathlib import Path
from typing import Any

import httpx

from tests.support.server import ServerProcess

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
UNIT = DEPLOY / "presencebridge.service"
TOML = DEPLOY / "presencebridge.toml"
ENV_EXAMPLE = DEPLOY / "env.example"

INSTALLED_TOML = "/etc/presencebridge/presencebridge.toml"


def parse_unit(path: Path = UNIT) -> dict[str, list[tuple[str, str]]]:
    """A systemd unit file: section -> (key, value) pairs in order (keys may repeat)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current: list[tuple[str, str]] | None = None
    pending = ""
    for raw in path.read_text().splitlines():
        line = pending + raw.strip()
        pending = ""
        if line.endswith("\\"):
            pending = line[:-1] + " "
            continue
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], [])
            continue
        key, sep, value = line.partition("=")
        assert sep and current is not None, f"{path}: not a unit file line: {raw!r}"
        current.append((key.strip(), value.strip()))
    return sections


def unit_value(section: list[tuple[str, str]], key: str) -> str:
    """The last value of `key` (systemd's rule for single-valued settings)."""
    values = [v for k, v in section if k == key]
    assert values, f"{UNIT.name} sets no {key}="
    return values[-1]


def exec_start() -> list[str]:
    return shlex.split(unit_value(parse_unit()["Service"], "ExecStart"))


def env_example() -> dict[str, str]:
    pairs = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, sep, value = line.partition("=")
            assert sep, f"{ENV_EXAMPLE.name}: not NAME=value: {line!r}"
            pairs[name.strip()] = value
    return pairs


def toml_example() -> dict[str, Any]:
    return tomllib.loads(TOML.read_text())


class UnitServer(ServerProcess):
    """`presencebridge serve` with the unit's ExecStart arguments and the example TOML.

    Only what a test machine needs differs: the venv's binary instead of
    /opt/presencebridge/venv, the repository's TOML instead of /etc's, and port
    and data folder from the environment (which wins over the file).
    """

    def __init__(self, data_dir: Path, **env: str) -> None:
        super().__init__(data_dir, (), **env)
        args = exec_start()[1:]
        assert INSTALLED_TOML in args, f"ExecStart no longer passes {INSTALLED_TOML}"
        self.args = [str(TOML) if a == INSTALLED_TOML else a for a in args]
        self.env["PRESENCEBRIDGE_PORT"] = str(self.port)

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.launch(self.args, self.env)
        self.wait_until(lambda: httpx.get(self.url + "/healthz", timeout=1).status_code == 200)
