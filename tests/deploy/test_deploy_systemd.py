"""deploy/presencebridge.service, presencebridge.toml and env.example as an admin installs them."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import httpx

from presencebridge.config import Settings, load_settings
from tests.deploy.support import (
    ENV_EXAMPLE,
    TOML,
    UNIT,
    UnitServer,
    env_example,
    exec_start,
    parse_unit,
    toml_example,
    unit_value,
)
from tests.support.server import ADMIN_TOKEN, BIN

SYSTEMD_ANALYZE = shutil.which("systemd-analyze")
NO_SYSTEMD = (
    "systemd-analyze is missing: install Debian's package systemd "
    "(apt-get install systemd, or `make sysdeps` as root)"
)
SECRETS = ("admin_token", "client_secret", "secret_key", "database_url")


def _local_copy(folder: Path) -> Path:
    """The unit with ExecStart pointing at this checkout's venv (/opt does not exist here)."""
    folder.mkdir(parents=True, exist_ok=True)
    installed = exec_start()[0]
    copy = folder / UNIT.name
    copy.write_text(UNIT.read_text().replace(installed, str(BIN)))
    return copy


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    assert SYSTEMD_ANALYZE, NO_SYSTEMD
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "verify", str(_local_copy(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    # Unknown or misspelt keys are only warnings (exit 0): the output must be empty.
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), (
        result.stdout + result.stderr
    )


def test_the_unit_is_hardened_and_systemd_rates_it_ok(tmp_path: Path) -> None:
    service = parse_unit()["Service"]
    assert unit_value(service, "User") not in ("", "root")
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "Restart": "on-failure",
        "StateDirectory": "presencebridge",
        "CapabilityBoundingSet": "",
    }.items():
        assert unit_value(service, key) == value, key
    assert parse_unit()["Install"] == [("WantedBy", "multi-user.target")]

    assert SYSTEMD_ANALYZE, NO_SYSTEMD
    result = subprocess.run(
        [SYSTEMD_ANALYZE, "security", "--offline=true", str(_local_copy(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
    )
    found = re.search(r"Overall exposure level for \S+: ([\d.]+) (\w+)", result.stdout)
    assert found, result.stdout + result.stderr
    # systemd's scale: 0 (locked down) to 10 (unprotected); below 2 it says "OK".
    assert float(found.group(1)) < 2.0, result.stdout


def test_execstart_names_the_serve_command_and_options_it_accepts() -> None:
    argv = exec_start()
    assert argv[0].startswith("/") and Path(argv[0]).name == "presencebridge", argv
    assert argv[1] == "serve", argv
    helped = subprocess.run(
        [str(BIN), "serve", "--help"], capture_output=True, text=True, timeout=60
    )
    assert helped.returncode == 0, helped.stderr
    for option in (a for a in argv[2:] if a.startswith("--")):
        assert option.split("=")[0] in helped.stdout, f"`serve` has no option {option}"


def test_the_server_runs_with_the_units_command_line_and_the_example_toml(
    tmp_path: Path,
) -> None:
    server = UnitServer(tmp_path / "state")
    server.start()
    try:
        health = httpx.get(server.url + "/healthz", timeout=5)
        assert health.status_code == 200 and health.json()["status"] == "ok"
        with server.client() as api:
            assert api.get("/api/v1/groups").status_code == 200
    finally:
        server.stop()
    # The example's log_format = "json" applies: every line a collector can parse.
    lines = [line for line in server.log_path.read_text().splitlines() if line.strip()]
    assert lines and all(json.loads(line)["message"] for line in lines), lines[:5]
    assert ADMIN_TOKEN not in server.log_path.read_text()


def test_settings_and_secrets_are_split_between_toml_and_environment_file() -> None:
    service = parse_unit()["Service"]
    assert unit_value(service, "EnvironmentFile") == "/etc/presencebridge/env"
    assert not [v for k, v in service if k == "Environment" and "PRESENCEBRIDGE_" in v], (
        "settings belong in the TOML, secrets in the EnvironmentFile, never in the unit"
    )
    # The example TOML is valid as it stands (unknown keys would be refused) ...
    settings = load_settings(TOML)
    # ... and keeps its data where the unit lets the service write.
    state = unit_value(service, "StateDirectory")
    assert settings.data_dir == Path("/var/lib") / state
    assert unit_value(service, "WorkingDirectory") == f"/var/lib/{state}"
    assert settings.host == "127.0.0.1"  # only nginx reaches the hub
    assert not set(SECRETS) & set(toml_example()), "a secret in the TOML example"

    fields = {f"PRESENCEBRIDGE_{name.upper()}" for name in Settings.model_fields}
    names = set(env_example())
    assert names <= fields, f"{ENV_EXAMPLE.name} names unknown settings: {names - fields}"
    assert {f"PRESENCEBRIDGE_{s.upper()}" for s in SECRETS} <= names
    assert all(v == "change-me" or "change-me" in v for v in env_example().values())
