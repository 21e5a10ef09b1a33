"""Directory rules through the API (issue 12 part 5): saved rules replace the
configuration file's, a preview runs the source with rules not saved, a reset brings
the file's back; bad rules are refused naming the problem and store nothing. A server
and the Graph emulator as separate processes, the directory in the emulator."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.server import ADMIN_TOKEN, BIN, ServerProcess
from tests.support.teams import EmulatorProcess
from tests.sync.directory import directory_server, users

CONFIG = """
[[directory]]
kind = "entra"
default_group = "hq"
schedule_minutes = 0
max_removal_share = 0.5
"""
RULES = "/api/v1/admin/directory/entra/rules"
SALES_AND_NO_TEMPS = {
    "rules": [
        {"member_of": "Sales", "group": "sales"},
        {"attribute": "department", "equals": "Temps", "in_scope": False},
    ],
    "default_group": "hq",
}


@pytest.fixture
def emulator(tmp_path: Path) -> Iterator[EmulatorProcess]:
    process = EmulatorProcess(tmp_path / "emulator" / "tls")
    process.start()
    yield process
    process.stop()


@pytest.fixture
def server(tmp_path: Path, emulator: EmulatorProcess) -> Iterator[ServerProcess]:
    """Four people in Entra ID: u2 in the group Sales, u3 a temp, u4 in sales by
    department only; the file's rules put everyone in hq."""
    emulator.post("/_emulator/directory/groups", {"id": "g-sales", "displayName": "Sales"})
    for n in range(1, 5):
        body: dict[str, Any] = {
            "id": f"0000000{n}-bbbb",
            "displayName": f"User {n}",
            "userPrincipalName": f"u{n}@contoso.com",
        }
        if n == 2:
            body["groups"] = ["g-sales"]
        if n in (3, 4):
            body["department"] = "Temps" if n == 3 else "Sales"
        emulator.post("/_emulator/directory/users", body)
    process = directory_server(tmp_path, emulator, CONFIG)
    yield process
    process.stop()


@pytest.fixture
def api(server: ServerProcess) -> Iterator[httpx.Client]:
    with server.client() as client:
        yield client


def source(api: httpx.Client) -> dict[str, Any]:
    [entra] = api.get("/api/v1/admin/directory").json()["sources"]
    return dict(entra)


def run(api: httpx.Client) -> dict[str, Any]:
    answer = api.post("/api/v1/admin/directory/sync", json={}, timeout=60).json()
    assert answer["ok"], answer
    return dict(answer["runs"][0])


def show(server: ServerProcess) -> str:
    """`presencebridge directory show`, as an administrator runs it."""
    done = subprocess.run(
        [str(BIN), "directory", "show", "--server", server.url],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PRESENCEBRIDGE_ADMIN_TOKEN": ADMIN_TOKEN},
        check=True,
    )
    return done.stdout


def groups(server: ServerProcess) -> dict[str, str]:
    return {user_id: u["group"] for user_id, u in users(server).items()}


def test_saved_rules_replace_the_files_until_reset(
    server: ServerProcess, api: httpx.Client
) -> None:
    entra = source(api)
    assert (entra["rules_source"], entra["rules"], entra["default_group"]) == ("config", [], "hq")
    first = run(api)
    assert set(groups(server).values()) == {"hq"}

    preview = api.post(RULES + "/preview", json=SALES_AND_NO_TEMPS, timeout=60)
    assert preview.status_code == 200, preview.text
    report = preview.json()
    assert report["preview"] and report["dry_run"] and report["ok"]
    assert report["counts"]["update"] == 1 and report["counts"]["disable"] == 1
    assert "update u2@contoso.com: group: sales" in report["lines"]
    assert "disable u3@contoso.com (out of scope)" in report["lines"]
    # Nothing stored: the file's rules, the users and the last run are as they were.
    assert source(api)["rules_source"] == "config"
    assert source(api)["last_run"]["run"] == first["run"]
    assert set(groups(server).values()) == {"hq"}

    saved = api.put(RULES, json=SALES_AND_NO_TEMPS)
    assert saved.status_code == 200, saved.text
    assert saved.json()["rules_source"] == "console"
    entra = source(api)
    assert entra["rules_source"] == "console" and entra["rules_changed_by"] == "api"
    assert [r["member_of"] for r in entra["rules"]] == ["Sales", None]
    assert entra["rules"][1] == {
        "group": None,
        "in_scope": False,
        "member_of": None,
        "ou": None,
        "attribute": "department",
        "equals": "Temps",
    }
    shown = show(server)
    assert shown.startswith("entra: rules saved through the API at "), shown
    assert "  1. member_of = 'Sales' -> group sales\n" in shown
    assert "  2. attribute = 'department', equals = 'Temps' -> not in scope\n" in shown
    assert "  default group: hq\n" in shown
    # The next run uses them. Department was not read before (no rule named it): the run
    # reads everyone again rather than a delta without it.
    after = run(api)
    assert after["full_read"] and after["counts"]["update"] == 1, after
    found = users(server)
    assert found["u2@contoso.com"]["group"] == "sales"
    assert found["u4@contoso.com"]["group"] == "hq"  # department Sales is no rule
    assert api.get("/api/v1/users/u3@contoso.com/settings").json()["teams_sync_mode"] == "off"

    reset = api.delete(RULES)
    assert reset.status_code == 200 and reset.json()["rules_source"] == "config"
    assert (source(api)["rules_source"], source(api)["rules"]) == ("config", [])
    assert show(server).startswith("entra: rules from the configuration file\n")
    back = run(api)
    assert back["counts"]["update"] == 2, back  # u2 to hq, u3 enabled again
    assert set(groups(server).values()) == {"hq"}
    assert api.get("/api/v1/users/u3@contoso.com/settings").json()["teams_sync_mode"] is None


BAD = [
    ({"rules": [{"group": "sales"}]}, "rules.0: Value error, a rule needs a condition"),
    ({"rules": [{"member_of": "", "group": "sales"}]}, "rules.0.member_of: String should have"),
    ({"rules": [{"member_of": "Sales"}]}, 'rules.0: Value error, a rule needs group = "'),
    (
        {"rules": [{"member_of": "Sales", "group": "sales", "in_scope": False}]},
        "a rule with in_scope = false takes no group",
    ),
    ({"rules": [{"member_of": "Sales", "in_scope": "false"}]}, "rules.0.in_scope: Input should"),
    ({"rules": [{"ou": "OU=x", "grp": "sales"}]}, "rules.0.grp: Extra inputs are not permitted"),
    ({"rules": [{"attribute": "a\u0000b", "group": "hq"}]}, "rules.0.attribute: Value error, must"),
    ({"rules": [{"equals": "x", "ou": "OU=y", "group": "hq"}]}, "equals needs attribute"),
    ({"rules": [], "default_group": "not a group"}, "default_group: String should match pattern"),
    (
        {"rules": [{"ou": "OU=x", "group": "hq"}, {"ou": "OU=y", "group": "nowhere"}]},
        "rules.1.group: no configuration group 'nowhere'; create it first",
    ),
    ({"rules": [], "default_group": "elsewhere"}, "default_group: no configuration group 'else"),
]


@pytest.mark.parametrize("method", ["PUT", "POST"])
def test_bad_rules_are_refused_naming_the_problem_and_nothing_is_stored(
    api: httpx.Client, method: str
) -> None:
    path = RULES if method == "PUT" else RULES + "/preview"
    good = {"rules": [{"ou": "OU=Staff,DC=corp", "group": "sales"}], "default_group": None}
    if method == "PUT":  # saved rules stay as they were when a later change is refused
        assert api.put(RULES, json=good).status_code == 200
    for body, named in BAD:
        answer = api.request(method, path, json=body)
        assert answer.status_code == 422, (body, answer.text)
        assert named in answer.json()["detail"], (body, answer.json())
    entra = source(api)
    if method == "PUT":
        assert entra["rules_source"] == "console"
        assert [r["ou"] for r in entra["rules"]] == ["OU=Staff,DC=corp"]
        assert entra["default_group"] is None
    else:
        assert entra["rules_source"] == "config" and entra["last_run"] is None


def test_an_unknown_source_is_named(api: httpx.Client) -> None:
    answer = api.put("/api/v1/admin/directory/ldap/rules", json={"rules": []})
    assert answer.status_code == 404
    assert answer.json()["detail"] == "unknown directory 'ldap'; configured: entra"
    assert api.delete("/api/v1/admin/directory/ldap/rules").status_code == 404
    assert api.put("/api/v1/admin/directory/Entra/rules", json={"rules": []}).status_code == 422
