"""`presencebridge users import / export` against a running server (issue 12 part 7)."""

from __future__ import annotations

from pathlib import Path

from tests.api.test_cli import assert_one_line_error, run
from tests.support.server import ADMIN_TOKEN, ServerProcess

FILE = (
    "id;display_name;group;extensions;numbers\n"
    "anna;Anna Schmidt;hq;2101;030 1234567\n"
    "ben;Ben Müller;hq;2201;\n"
)


def test_import_and_export_from_the_command_line(server: ServerProcess, tmp_path: Path) -> None:
    common = ("--server", server.url, "--token", ADMIN_TOKEN)
    with server.client() as api:
        assert api.post("/api/v1/groups", json={"id": "hq", "name": "HQ"}).status_code == 201
    users = tmp_path / "users.csv"
    users.write_text(FILE, encoding="utf-8-sig")

    dry = run("users", "import", str(users), "--dry-run", *common)
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.splitlines() == [
        "would line 2: create anna (Anna Schmidt, group hq)",
        "would line 3: create ben (Ben Müller, group hq)",
        "would create 2, update 0, unchanged 0",
    ]
    with server.client() as api:
        assert api.get("/api/v1/users").json() == []

    done = run("users", "import", str(users), *common)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "create 2, update 0, unchanged 0"

    exported = run("users", "export", *common)
    assert exported.returncode == 0, exported.stderr
    assert exported.stdout.splitlines() == [
        "id,display_name,group,teams_user_id,email,extensions,numbers",
        "anna,Anna Schmidt,hq,,,2101,+49301234567",
        "ben,Ben Müller,hq,,,2201,",
    ]
    target = tmp_path / "out.csv"
    saved = run("users", "export", str(target), "--delimiter", ";", *common)
    assert saved.returncode == 0, saved.stderr
    assert (
        target.read_text(encoding="utf-8").splitlines()[1]
        == "anna;Anna Schmidt;hq;;;2101;+49301234567"
    )
    again = run("users", "import", str(target), *common)
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[-1] == "create 0, update 0, unchanged 2"

    users.write_text(FILE + "carl;Carl;nowhere;2101;\n", encoding="utf-8")
    bad = run("users", "import", str(users), *common)
    assert_one_line_error(bad, "server answered 422: 2 problem(s), nothing was written")
    assert "line 4: group 'nowhere' does not exist" in bad.stderr
    assert "line 4: extension '2101' belongs to user 'anna'" in bad.stderr
    assert_one_line_error(
        run("users", "import", str(tmp_path / "none.csv"), *common), "cannot read"
    )
