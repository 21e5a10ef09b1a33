"""The audit log (issue 18) on a real server over HTTP: who (admin token, personal
token, console session, command line) changed what, when; refused requests record
nothing; tokens never reach the table; filters, paging, the console page and its CSV
file; old rows pruned at start."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from tests.api.test_cli import run
from tests.api.test_console_http import csrf, signed_in
from tests.support.server import ADMIN_TOKEN, ServerProcess, make_user

AUDIT = "/api/v1/admin/audit"


def log(api: httpx.Client, **params: Any) -> dict[str, Any]:
    answer = api.get(AUDIT, params=params)
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def entries(api: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = log(api, **params)["entries"]
    return found


def test_admin_token_changes_say_who_what_and_when(
    server: ServerProcess, api: httpx.Client
) -> None:
    started = datetime.now(UTC) - timedelta(seconds=1)
    make_user(api, "alice", "hq")
    patch = {"user_may_change": False, "teams_sync_mode": "telephony_only"}
    assert api.patch("/api/v1/groups/hq/settings", json=patch).status_code == 200
    assert api.patch("/api/v1/users/alice", json={"email": "alice@example.com"}).is_success
    assert api.delete("/api/v1/users/alice").status_code == 204
    assert api.delete("/api/v1/groups/hq").status_code == 204

    rows = entries(api)
    assert [r["action"] for r in rows] == [
        "group.deleted", "user.deleted", "user.changed", "group.settings.changed",
        "user.created", "group.created",
    ]  # fmt: skip
    assert {(r["actor_kind"], r["actor"]) for r in rows} == {("admin-token", "administrator")}
    assert [r["target"] for r in rows] == ["hq", "alice", "alice", "hq", "alice", "hq"]
    settings = rows[3]["details"]
    assert settings["user_may_change"] == [True, False]
    assert settings["teams_sync_mode"][1] == "telephony_only"
    assert set(settings) == {"user_may_change", "teams_sync_mode"}  # only what changed
    assert rows[2]["details"] == {"email": [None, "alice@example.com"]}
    for row in rows:
        at = datetime.fromisoformat(row["at"])
        assert started <= at <= datetime.now(UTC) + timedelta(seconds=1)


def test_a_refused_request_records_nothing(server: ServerProcess, api: httpx.Client) -> None:
    make_user(api, "alice", "hq")
    before = log(api)["total"]
    bad = {"teams_sync_mode": "sometimes"}
    assert api.patch("/api/v1/groups/hq/settings", json=bad).status_code == 422
    assert api.patch("/api/v1/groups/nowhere/settings", json={}).status_code == 404
    assert api.post("/api/v1/groups", json={"id": "hq", "name": "Again"}).status_code == 409
    assert api.post("/api/v1/users/alice/profiles", json={"name": ""}).status_code == 422
    assert api.delete("/api/v1/groups/hq").status_code == 409  # alice is in it
    assert api.post("/api/v1/users/alice/appointments", json={"subject": "x"}).status_code == 422
    personal = api.post("/api/v1/users/alice/personal-tokens", json={"name": "script"}).json()
    with server.client(personal["token"]) as script:
        assert script.patch("/api/v1/groups/hq/settings", json={}).status_code == 403
    assert [r["action"] for r in entries(api)][:1] == ["personal_token.issued"]
    assert log(api)["total"] == before + 1


def test_tokens_and_the_admin_token_never_reach_the_audit_table(
    server: ServerProcess, api: httpx.Client
) -> None:
    make_user(api, "alice", "hq")
    agent = api.post("/api/v1/users/alice/agent-tokens").json()["token"]
    personal = api.post("/api/v1/users/alice/personal-tokens", json={"name": "backup"}).json()
    with signed_in(server) as console:  # the admin token signs in: "signed in" is recorded
        page = console.get("/console/users/alice")
        answer = console.post(
            "/console/users/alice/personal-tokens", data={"name": "cron", "csrf_token": csrf(page)}
        )
        assert answer.status_code == 200, answer.text  # the page shows the token once
    shown_once = answer.text
    actions = [r["action"] for r in entries(api)]
    assert actions.count("personal_token.issued") == 2 and "agent_token.issued" in actions
    assert "session.signed_in" in actions
    issued = entries(api, action="personal_token.issued")
    assert {r["details"]["name"] for r in issued} == {"backup", "cron"}
    assert issued[-1]["details"]["id"] == personal["id"]  # the token's id: not its secret

    with sqlite3.connect(server.data_dir / "presencebridge.db") as db:
        rows = db.execute("SELECT * FROM audit_log").fetchall()
    table = "\n".join("|".join(str(v) for v in row) for row in rows)
    assert len(rows) >= 6
    for secret in (agent, personal["token"], ADMIN_TOKEN, "pba_", "pbp_"):
        assert secret not in table
    assert "pbp_" in shown_once  # the console did show the new token, just not to the log


def test_a_personal_token_and_the_command_line_are_named_as_such(
    server: ServerProcess, api: httpx.Client
) -> None:
    make_user(api, "alice", "hq")
    token = api.post("/api/v1/users/alice/personal-tokens", json={"name": "s"}).json()["token"]
    profile = {"name": "Fokus", "status": "dnd", "text": "Bitte nicht stören", "color": "#c4314b"}
    with server.client(token) as script:
        assert script.post("/api/v1/users/alice/profiles", json=profile).status_code == 201
        assert script.get(AUDIT).status_code == 403  # the log is the administrators'
    mine = entries(api, action="profile.created")[0]
    assert (mine["actor_kind"], mine["actor"], mine["target"]) == (
        "personal-token",
        "alice",
        "alice",
    )
    assert mine["details"] == {"name": "Fokus"}

    common = ("--server", server.url, "--token", ADMIN_TOKEN)
    assert run("groups", "set", "hq", "reassert_dnd=true", *common).returncode == 0
    cli = entries(api, action="group.settings.changed")[0]
    assert (cli["actor_kind"], cli["actor"]) == ("cli", "administrator")
    assert cli["details"] == {"reassert_dnd": [False, True]}


def test_filters_and_pages(server: ServerProcess, api: httpx.Client) -> None:
    make_user(api, "alice", "hq")
    make_user(api, "bob", "hq")
    for i in range(7):
        body = {"name": f"P{i}", "status": "busy", "text": "t", "color": "#123456"}
        assert api.post("/api/v1/users/bob/profiles", json=body).status_code == 201
    found = log(api, target="BOB", action="profile", limit=3)
    assert found["total"] == 7 and len(found["entries"]) == 3
    names = [r["details"]["name"] for r in found["entries"]]
    while found["next_before"] is not None:
        found = log(api, target="bob", action="profile", limit=3, before=found["next_before"])
        names += [r["details"]["name"] for r in found["entries"]]
    assert names == [f"P{i}" for i in reversed(range(7))]
    assert log(api, actor="nobody")["entries"] == []
    assert api.get(AUDIT, params={"limit": 0}).status_code == 422
    assert api.get(AUDIT, params={"actor": "x" * 201}).status_code == 422
    # Found by the OpenAPI fuzzing: an id past what the databases keep, and a control
    # character no stored value can hold, are named, never a 500.
    huge = api.get(AUDIT, params={"before": str(10**26)})
    assert huge.status_code == 422 and "before" in huge.json()["detail"]
    nul = api.get(AUDIT, params={"actor": "a\x00b"})
    assert nul.status_code == 422 and "control character" in nul.json()["detail"]


def test_console_session_changes_show_on_the_audit_page_and_in_its_csv(
    server: ServerProcess, api: httpx.Client
) -> None:
    make_user(api, "alice", "hq")
    with signed_in(server) as console:
        token = csrf(console.get("/console/groups/hq"))
        form = {"csrf_token": token, "teams_sync_mode": "telephony_only", "user_may_change": "on"}
        assert console.post("/console/groups/hq/settings", data=form).status_code == 303
        rows = entries(api, action="group.settings.changed")
        assert (rows[0]["actor_kind"], rows[0]["actor"]) == ("session", "administrator")

        page = console.get("/console/audit", headers={"Accept-Language": "de"})
        assert page.status_code == 200
        assert "Änderungsprotokoll" in page.text and "Gruppeneinstellungen geändert" in page.text
        assert 'href="/console/groups/hq"' in page.text
        assert "teams_sync_mode:" in page.text and "telephony_only" in page.text
        empty = console.get("/console/audit", params={"actor": "nobody-at-all"})
        assert "No entry matches the filters." in empty.text
        user_page = console.get("/console/users/alice").text  # its last changes
        assert 'id="audit-h"' in user_page and "User created" in user_page
        assert 'href="/console/audit?target=alice"' in user_page

        console.post("/console/lang", data={"lang": "de", "next": "/", "csrf_token": token})
        exported = console.get("/console/audit.csv", params={"action": "group.settings"})
        assert exported.status_code == 200
        assert exported.content.startswith("\ufeff".encode())
        lines = exported.content.decode("utf-8-sig").splitlines()
        assert lines[0] == "Zeit;Wer;Angemeldet mit;Was;Ziel;Details"
        assert len(lines) == 2 and "Gruppeneinstellungen geändert" in lines[1]
        assert ";administrator;Anmeldung an der Konsole;" in lines[1]

        signed_out = console.post("/console/logout", data={"csrf_token": token})
        assert signed_out.status_code in (200, 303)
    assert entries(api)[0]["action"] == "session.signed_out"


def test_rows_older_than_the_retention_are_pruned_at_start(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", PRESENCEBRIDGE_AUDIT_RETENTION_DAYS="30")
    server.start()
    try:
        with server.client() as api:
            make_user(api, "alice", "hq")
        server.stop()
        old = (datetime.now(UTC) - timedelta(days=31)).replace(tzinfo=None)
        with sqlite3.connect(server.data_dir / "presencebridge.db") as db:
            db.execute(
                "INSERT INTO audit_log (at, actor_kind, actor, action, target, details) "
                "VALUES (?, 'cli', 'administrator', 'group.created', 'ancient', '{}')",
                (old.isoformat(sep=" "),),
            )
        server.start()
        with server.client() as api:
            assert [r["target"] for r in entries(api)] == ["alice", "hq"]
    finally:
        server.stop()


def test_a_csv_import_is_one_row_and_a_dry_run_or_a_refused_file_none(
    server: ServerProcess, api: httpx.Client
) -> None:
    make_user(api, "alice", "hq")
    before = log(api)["total"]
    headers = {"Content-Type": "text/csv"}
    text = "id,display_name,group\nalice,Alice Renamed,hq\nbob,Bob,hq\n"
    dry = api.post("/api/v1/admin/users/import", params={"dry_run": "true"}, content=text,
                   headers=headers)  # fmt: skip
    assert dry.status_code == 200, dry.text
    wrong = "id,display_name,group\ncarl,Carl,nowhere\n"
    refused = api.post("/api/v1/admin/users/import", content=wrong, headers=headers)
    assert refused.status_code == 422, refused.text
    assert log(api)["total"] == before
    done = api.post("/api/v1/admin/users/import", content=text, headers=headers)
    assert done.status_code == 200, done.text
    assert log(api)["total"] == before + 1
    row = entries(api)[0]
    assert (row["action"], row["target"]) == ("users.imported", "users")
    assert row["details"] == {"created": 1, "updated": 1, "users": ["bob", "alice"]}
