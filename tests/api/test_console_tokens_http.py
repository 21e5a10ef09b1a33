"""The administrator's overview of every user's tokens (`/console/tokens`, issue 18),
over real HTTP: each token with its user, kind and age; revoking one asks first, then
the token stops working at once; a user who is no administrator may not open it."""

from __future__ import annotations

import re

import httpx

from tests.api.test_console_http import csrf, signed_in
from tests.support.server import ServerProcess, make_user

URL = "/console/tokens"


def test_every_users_tokens_listed_and_revoked_after_a_confirmation(
    server: ServerProcess, api: httpx.Client
) -> None:
    make_user(api, "alice")
    make_user(api, "bob")
    agent = api.post("/api/v1/users/alice/agent-tokens").json()
    [listed] = api.get("/api/v1/users/alice/agent-tokens").json()
    agent["id"] = listed["id"]
    personal = api.post("/api/v1/users/bob/personal-tokens", json={"name": "nightly"}).json()
    with signed_in(server) as console:
        page = console.get(URL)
        assert page.status_code == 200
        rows = re.findall(r'<tr data-token="([^"]+)">(.*?)</tr>', page.text, re.S)
        assert [token_id for token_id, _ in rows] == [agent["id"], personal["id"]]
        assert "Agent token" in rows[0][1] and "alice" in rows[0][1]
        assert "Personal token" in rows[1][1] and "nightly" in rows[1][1]
        assert agent["token"] not in page.text and personal["token"] not in page.text

        form = {"csrf_token": csrf(page), "user_id": "bob", "token_id": personal["id"]}
        form["kind"] = "personal"
        asked = console.post(URL + "/revoke", data=form)
        assert asked.status_code == 200 and 'id="confirm-form"' in asked.text
        assert "Revoke this personal token of bob?" in asked.text
        with server.client(personal["token"]) as script:
            assert script.get("/api/v1/users/bob/presence").status_code == 200
            done = console.post(URL + "/revoke", data=form | {"confirm": "yes"})
            assert done.status_code == 303 and done.headers["location"] == URL
            assert script.get("/api/v1/users/bob/presence").status_code == 401
        shown = console.get(URL).text
        assert "Token of bob revoked." in shown and personal["id"] not in shown
        assert agent["id"] in shown
        # Gone already (another administrator was quicker): said, nothing else happens.
        again = console.post(URL + "/revoke", data=form | {"confirm": "yes"})
        assert again.status_code == 303
        assert "That token does not exist (any more)." in console.get(URL).text
