"""The CLI's lifecycle commands (issue 12) against a running server."""

from __future__ import annotations

from tests.api.test_cli import assert_one_line_error, run
from tests.support.server import ADMIN_TOKEN, ServerProcess, make_user


def test_update_delete_and_revoke_from_the_command_line(server: ServerProcess) -> None:
    common = ("--server", server.url, "--token", ADMIN_TOKEN)
    with server.client() as api:
        make_user(api, "alice")
        make_user(api, "bob")
        api.post("/api/v1/users/alice/agent-tokens")
    updated = run(
        "users", "update", "alice", "--name", "Alice L.", "--email", "a@x.de",
        "--extension", "2101", "--extension", "2102", "--number", "030 1234567", *common,
    )  # fmt: skip
    assert updated.returncode == 0, updated.stderr
    assert "extensions 2101, 2102, numbers +49301234567" in updated.stdout

    duplicate = run("users", "update", "bob", "--extension", "2101", *common)
    assert_one_line_error(
        duplicate, "server answered 409: extension '2101' belongs to user 'alice'"
    )
    bad = run("users", "update", "bob", "--number", "12ab", *common)
    assert_one_line_error(bad, "'12ab' is not a valid phone number")
    assert_one_line_error(run("users", "update", "bob", *common), "nothing to change")

    listed = run("users", "agent-tokens", "alice", *common)
    assert listed.returncode == 0, listed.stderr
    with server.client() as api:
        [issued] = api.get("/api/v1/users/alice/agent-tokens").json()
    assert issued["id"] in listed.stdout
    revoked = run("users", "revoke-token", "alice", issued["id"], *common)
    assert revoked.returncode == 0, revoked.stderr
    assert_one_line_error(run("groups", "delete", "hq", *common), "2 user(s)")

    assert run("users", "delete", "alice", *common).returncode == 0
    assert run("users", "delete", "bob", *common).returncode == 0
    assert_one_line_error(run("users", "delete", "bob", *common), "404: unknown user 'bob'")
    assert_one_line_error(
        run("groups", "delete-template", "hq", "No such", *common), "no template named 'No such'"
    )
    assert run("groups", "delete", "hq", *common).returncode == 0
    with server.client() as api:
        assert api.get("/api/v1/groups/hq").status_code == 404
