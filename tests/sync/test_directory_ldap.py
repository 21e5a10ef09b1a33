"""The directory sync from Active Directory over LDAP: a real slapd with an AD-like
tree, the Graph emulator (where the Teams accounts are looked up by UPN) and the
server as separate processes, driven through the CLI as an administrator would."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import ServerProcess
from tests.support.slapd import AD_READER, AD_SUFFIX, Slapd, throwaway_slapd
from tests.support.teams import EmulatorProcess
from tests.sync.directory import directory_server, sync, users

USERS = 60


@pytest.fixture
def slapd() -> Iterator[Slapd]:
    with throwaway_slapd(USERS) as server:
        yield server


@pytest.fixture
def server(tmp_path: Path, emulator: EmulatorProcess, slapd: Slapd) -> Iterator[ServerProcess]:
    password = tmp_path / "bind-password"
    password.write_text(slapd.reader_password)
    config = f"""
[[directory]]
name = "corp"
kind = "ldap"
default_group = "hq"
schedule_minutes = 0
bind_password_file = "{password}"
rules = [{{member_of = "cn=Sales,ou=Groups,{AD_SUFFIX}", group = "sales"}}]

[directory.ldap]
url = "{slapd.ldap_url}"
start_tls = true
ca_file = "{slapd.certificate.ca_file}"
bind_dn = "{AD_READER}"
base_dn = "{AD_SUFFIX}"
page_size = 20
"""
    process = directory_server(tmp_path, emulator, config)
    yield process
    process.stop()


def test_dry_run_then_sync_from_ldap_finds_teams_accounts_by_upn(
    server: ServerProcess, emulator: EmulatorProcess, slapd: Slapd
) -> None:
    enabled = sorted((p for p in slapd.seed.ad.values() if p.enabled), key=lambda p: p.key)
    # These three have a Teams account; the others have none.
    in_teams = [p for p in enabled if p.upn][:3]
    for n, person in enumerate(in_teams):
        body = {"id": f"teams-{n}", "displayName": person.display_name,
                "userPrincipalName": person.upn}  # fmt: skip
        emulator.post("/_emulator/directory/users", body)

    dry = sync(server, "--dry-run")
    assert dry.returncode == 0, dry
    found = re.search(r"would create (\d+)", dry.stdout)
    assert found is not None, dry.stdout
    assert int(found.group(1)) == len(enabled)
    assert users(server) == {}

    done = sync(server)
    assert done.returncode == 0, done
    assert f"corp: create {len(enabled)}," in done.stdout, done.stdout
    created = {u["email"] or u["id"]: u for u in users(server).values()}
    with server.client() as client:
        for n, person in enumerate(in_teams):
            user = next(u for u in created.values() if u["teams_user_id"] == f"teams-{n}")
            assert user["display_name"] == person.display_name
        without = next(u for u in created.values() if u["teams_user_id"] is None)
        mode = client.get(f"/api/v1/users/{without['id']}/settings").json()
        assert mode["teams_sync_mode"] == "off", "no Teams account: created with sync off"

    # The rule: members of the AD group Sales (by DN) go to `sales`, everyone else to hq.
    sales_dn = f"cn=Sales,ou=Groups,{AD_SUFFIX}".casefold()
    by_id = {u["id"]: u for u in created.values()}
    checked = 0
    for person in enabled:
        listed = by_id.get((person.upn or "").lower())
        if listed is None:
            continue
        in_sales = sales_dn in {g.casefold() for g in person.groups}
        assert listed["group"] == ("sales" if in_sales else "hq"), person
        checked += in_sales
    assert checked > 0, "no member of Sales was checked"

    again = sync(server)
    assert again.returncode == 0, again
    assert f"unchanged {len(enabled)}" in again.stdout, again.stdout


def test_a_wrong_bind_password_changes_nothing_and_is_never_shown(
    server: ServerProcess, slapd: Slapd, tmp_path: Path
) -> None:
    # The password is read at start: a server started with a wrong one.
    server.stop()
    (tmp_path / "bind-password").write_text("not-the-password")
    server.start()
    failed = sync(server)
    assert failed.returncode != 0
    assert "invalidCredentials" in failed.stdout + failed.stderr
    assert users(server) == {}
    assert "not-the-password" not in failed.stdout + failed.stderr
    assert slapd.reader_password not in server.log_path.read_text()
