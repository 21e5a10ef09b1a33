"""The directory sync from Entra ID: the Graph emulator and the server as separate
processes over HTTPS, driven through the CLI as an administrator would."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.server import ServerProcess
from tests.support.teams import EmulatorProcess
from tests.sync.directory import directory_server, sync, users

CONFIG = """
[[directory]]
kind = "entra"
extension_attribute = "onPremisesExtensionAttributes/extensionAttribute1"
default_group = "hq"
schedule_minutes = 0
rules = [{member_of = "Sales", group = "sales"}]
"""


@pytest.fixture
def server(tmp_path: Path, emulator: EmulatorProcess) -> Iterator[ServerProcess]:
    process = directory_server(tmp_path, emulator, CONFIG)
    yield process
    process.stop()


def directory_user(emulator: EmulatorProcess, n: int, **fields: Any) -> None:
    body = {"id": f"0000000{n:02d}-aaaa", "displayName": f"User {n}",
            "userPrincipalName": f"u{n}@contoso.com", **fields}  # fmt: skip
    emulator.post("/_emulator/directory/users", body)


def seed(emulator: EmulatorProcess, count: int = 10) -> None:
    emulator.post("/_emulator/directory/groups", {"id": "g-sales", "displayName": "Sales"})
    for n in range(1, count + 1):
        extra: dict[str, Any] = {}
        if n == 2:
            extra["groups"] = ["g-sales"]
        if n == 3:
            extra["extensionAttributes"] = {"extensionAttribute1": "2103"}
        if n == 4:
            extra["businessPhones"] = ["030 1234567"]
        directory_user(emulator, n, **extra)


def test_dry_run_then_sync_then_a_delta(server: ServerProcess, emulator: EmulatorProcess) -> None:
    seed(emulator)
    dry = sync(server, "--dry-run")
    assert dry.returncode == 0, dry
    assert "would create 10, update 0, disable 0, delete 0, unchanged 0" in dry.stdout
    assert "create u2@contoso.com (User 2, group sales)" in dry.stdout
    assert users(server) == {}

    done = sync(server)
    assert done.returncode == 0, done
    assert "entra: create 10, update 0, disable 0, delete 0, unchanged 0" in done.stdout
    found = users(server)
    assert found["u2@contoso.com"]["group"] == "sales"
    assert found["u1@contoso.com"]["teams_user_id"] == "000000001-aaaa"
    assert found["u3@contoso.com"]["extensions"] == ["2103"]
    assert found["u4@contoso.com"]["numbers"] == ["+49301234567"]
    again = sync(server)
    assert "create 0, update 0, disable 0, delete 0, unchanged 10" in again.stdout

    before = users(server)
    directory_user(emulator, 11)
    with emulator.control() as client:
        client.patch("/_emulator/directory/users/000000005-aaaa", json={"displayName": "Eve"})
        client.patch("/_emulator/directory/users/000000006-aaaa", json={"groups": ["g-sales"]})
        client.delete("/_emulator/directory/users/000000007-aaaa")
    delta = sync(server)
    assert "create 1, update 2, disable 1, delete 0, unchanged 7" in delta.stdout, delta
    found = users(server)
    assert found["u5@contoso.com"]["display_name"] == "Eve"
    # A delta item holds only what changed: the rest of the user stays as it was.
    unchanged = ("email", "teams_user_id", "group", "extensions", "numbers")
    assert {k: found["u5@contoso.com"][k] for k in unchanged} == {
        k: before["u5@contoso.com"][k] for k in unchanged
    }
    assert found["u6@contoso.com"]["group"] == "sales"
    with server.client() as client:
        history = client.get("/api/v1/users/u6@contoso.com/history").json()
        assert any(h["source"] == "directory" and "group" in (h.get("change") or "")
                   for h in history)  # fmt: skip
        settings = client.get("/api/v1/users/u7@contoso.com/settings").json()
        assert settings["teams_sync_mode"] == "off"


def test_the_safety_stop_and_force(server: ServerProcess, emulator: EmulatorProcess) -> None:
    seed(emulator)
    assert sync(server).returncode == 0
    with emulator.control() as client:
        for n in (1, 2, 3):
            client.delete(f"/_emulator/directory/users/00000000{n}-aaaa")
    stopped = sync(server)
    assert stopped.returncode == 1
    assert "would disable 3 of 10 users" in stopped.stdout and "--force" in stopped.stdout
    with server.client() as client:
        assert (
            client.get("/api/v1/users/u1@contoso.com/settings").json()["teams_sync_mode"] != "off"
        )
    forced = sync(server, "--force")
    assert forced.returncode == 0 and "disable 3" in forced.stdout


def test_a_failed_read_midway_changes_nothing(
    server: ServerProcess, emulator: EmulatorProcess
) -> None:
    seed(emulator)
    # The deltaLink and the users' page answer; the group members' read then fails.
    emulator.post("/_emulator/directory/faults", {"fail_after_pages": 3})
    failed = sync(server)
    assert failed.returncode == 1
    assert "could not be read" in failed.stdout and "nothing was changed" in failed.stdout
    assert users(server) == {}
    emulator.post("/_emulator/directory/faults", {"fail_after_pages": None})
    assert "create 10" in sync(server).stdout
