"""`presencebridge serve` refuses a bad webhook table when it reads the file, with one
clear line naming the table and the field (issue 17 part 4)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.support.server import ADMIN_TOKEN, BIN


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            'url = "ftp://files.example/x"\nsecret_env = "HOOK_SECRET"',
            "[[publish]] door: url must be an http:// or https:// URL with a host",
        ),
        (
            'url = "https://hook.example/x"',
            "[[publish]] door: the HMAC secret is missing: name secret_env or secret_file",
        ),
    ],
)
def test_serve_refuses_a_bad_webhook_table_naming_it(
    tmp_path: Path, table: str, message: str
) -> None:
    config = tmp_path / "presencebridge.toml"
    config.write_text(f'[[publish]]\nkind = "webhook"\nname = "door"\n{table}\n')
    env = {
        **os.environ,
        "PRESENCEBRIDGE_ADMIN_TOKEN": ADMIN_TOKEN,
        "PRESENCEBRIDGE_DATA_DIR": str(tmp_path / "data"),
        "HOOK_SECRET": "never-shown-secret",
    }
    done = subprocess.run(
        [str(BIN), "serve", "--config", str(config), "--port", "0"],
        capture_output=True, text=True, timeout=120, env=env, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert message in done.stderr
    assert "never-shown-secret" not in done.stderr + done.stdout
