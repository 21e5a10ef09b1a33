"""The user lifecycle in the console (issue 12), over plain HTTP with a real session:
the directory form, deleting with a confirm step, agent tokens, groups and templates.
Invalid input shows the form again with the input kept and the field marked."""

from __future__ import annotations

import httpx

from tests.api.test_console_http import csrf, signed_in
from tests.support.server import ServerProcess, make_user


def test_directory_form_tokens_and_deletes(server: ServerProcess) -> None:
    with server.client() as api:
        make_user(api, "alice")
        make_user(api, "bob")
        assert api.patch("/api/v1/users/bob", json={"extensions": ["2201"]}).status_code == 200
        api.post("/api/v1/users/alice/agent-tokens")
    with signed_in(server) as console:
        page = console.get("/console/users/alice", headers={"Accept-Language": "de"})
        assert "Verzeichnisdaten" in page.text and "Agent-Tokens" in page.text
        token = csrf(page)
        form = {
            "csrf_token": token,
            "display_name": "Alice L.",
            "group": "hq",
            "teams_user_id": "",
            "email": "alice@example.com",
            "extensions": "2101",
            "numbers": "030 1234567, 12ab",
        }
        shown = console.post("/console/users/alice/directory", data=form)
        assert shown.status_code == 422
        assert 'value="030 1234567, 12ab"' in shown.text  # the input is kept
        assert "12ab" in shown.text and 'class="field invalid"' in shown.text

        shown = console.post(
            "/console/users/alice/directory", data={**form, "numbers": "", "extensions": "2201"}
        )
        assert shown.status_code == 409
        assert "bob" in shown.text and 'value="2201"' in shown.text

        saved = console.post(
            "/console/users/alice/directory", data={**form, "numbers": "030 1234567"}
        )
        assert saved.status_code == 303, saved.text
        with server.client() as api:
            alice = api.get("/api/v1/users/alice").json()
            assert (alice["email"], alice["numbers"]) == ("alice@example.com", ["+49301234567"])
            [issued] = api.get("/api/v1/users/alice/agent-tokens").json()
        page = console.get("/console/users/alice")
        assert issued["id"] in page.text
        revoked = console.post(
            "/console/users/alice/tokens/revoke",
            data={"csrf_token": token, "token_id": issued["id"]},
        )
        assert revoked.status_code == 303

        refused = console.post("/console/users/alice/delete", data={"csrf_token": token})
        assert refused.status_code == 422  # the confirm step
        deleted = console.post(
            "/console/users/alice/delete", data={"csrf_token": token, "confirm": "true"}
        )
        assert deleted.status_code == 303
        in_use = console.post(
            "/console/groups/hq/delete", data={"csrf_token": token, "confirm": "true"}
        )
        assert in_use.status_code == 303
        shown = console.get(in_use.headers["location"], headers={"Accept-Language": "en"})
        assert "The group still has 1 user(s)" in shown.text
        template = {"name": "MS Teams", "status": "busy", "text": "x", "color": "#5b5fc7"}
        with server.client() as api:
            assert api.post("/api/v1/groups/hq/templates", json=template).status_code == 201
        asked = console.post(
            "/console/groups/hq/templates/delete", data={"csrf_token": token, "name": "MS Teams"}
        )
        assert asked.status_code == 200 and 'id="confirm-button"' in asked.text  # a 2nd step
        removed = console.post(
            "/console/groups/hq/templates/delete",
            data={"csrf_token": token, "name": "MS Teams", "confirm": "yes"},
        )
        assert removed.status_code == 303
    with server.client() as api:
        check(api)


def check(api: httpx.Client) -> None:
    assert api.get("/api/v1/users/alice").status_code == 404
    assert api.get("/api/v1/users/alice/agent-tokens").status_code == 404
    assert api.get("/api/v1/groups/hq").status_code == 200  # bob is still in it
