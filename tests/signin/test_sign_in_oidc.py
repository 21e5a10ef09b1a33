"""Every employee signs in at the company's OpenID Connect provider (issue 14), here a
real certified provider: who gets in as whom, what each may open, sign-out, and the
hostile cases, each refused with a clear 4xx, counted in /metrics, nothing changed."""

from __future__ import annotations

import re

import httpx

from tests.signin.conftest import SignInWorld, callback_state
from tests.support.oidc_provider import complete_login_with_httpx


def csrf(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found is not None, page[:500]
    return found.group(1)


def console_cookie(client: httpx.Client) -> dict[str, str]:
    """The console's session cookie alone (the provider's share the host: ports don't
    separate cookies)."""
    return {c.name: c.value or "" for c in client.cookies.jar if c.name == "pb_console"}


def metric(world: SignInWorld, name: str, **labels: str) -> float:
    text = httpx.get(world.server.url + "/metrics").text
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    for line in text.splitlines():
        if line.startswith(f"{name}{{{wanted}}} ") or (not labels and line.startswith(name + " ")):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def test_an_employee_signs_in_and_gets_their_own_page_only(signin_world: SignInWorld) -> None:
    world = signin_world
    client, answer = world.sign_in("alice", next_="/console/me")
    assert answer.status_code == 303 and answer.headers["location"] == "/console/me"
    me = client.get("/console/me")
    assert me.status_code == 303
    assert me.headers["location"] == f"/console/users/{world.alice}"
    page = client.get(me.headers["location"])
    assert page.status_code == 200
    assert "Alice A." in page.text and "alice@example.com" in page.text.lower()
    assert 'action="/console/users/' in page.text  # their forms
    assert "Delete user" not in page.text and "Directory data" not in page.text
    # The board, read-only, for everyone signed in.
    assert client.get("/").status_code == 200
    # Another user's page and the administration: 403 with a page saying why.
    other = client.get(f"/console/users/{world.bob}")
    assert other.status_code == 403 and "another user" in other.text
    for admin_page in ("/console/groups", f"/console/groups/{world.group}", "/console/sync"):
        refused = client.get(admin_page)
        assert refused.status_code == 403, admin_page
        assert "Only administrators" in refused.text


def test_an_employee_changes_only_their_own_presence(signin_world: SignInWorld) -> None:
    world = signin_world
    client, _ = world.sign_in("bob")
    page = client.get(f"/console/users/{world.bob}").text
    form = {"csrf_token": csrf(page), "name": "Termin"}
    chosen = client.post(f"/console/users/{world.bob}/profile", data=form)
    assert chosen.status_code == 303
    presence = world.server.client().get(f"/api/v1/users/{world.bob}/presence").json()
    assert presence["profile"] == "Termin"
    before = world.server.client().get(f"/api/v1/users/{world.alice}/presence").json()
    refused = client.post(f"/console/users/{world.alice}/profile", data=form)
    assert refused.status_code == 403
    after = world.server.client().get(f"/api/v1/users/{world.alice}/presence").json()
    assert after == before
    clear = {"csrf_token": form["csrf_token"], "name": ""}
    assert client.post(f"/console/users/{world.bob}/profile", data=clear).status_code == 303


def test_an_administrator_by_group_claim_opens_the_administration(
    signin_world: SignInWorld,
) -> None:
    world = signin_world
    client, answer = world.sign_in("carol")
    assert answer.status_code == 303
    assert client.get("/console/groups").status_code == 200
    assert client.get(f"/console/users/{world.alice}").status_code == 200
    # Carol is no hub user: no page of her own, and the page says so.
    assert client.get("/console/me").status_code == 404


def test_someone_without_a_hub_user_is_told_so_and_not_signed_in(
    signin_world: SignInWorld,
) -> None:
    world = signin_world
    refused_before = metric(world, "presencebridge_sign_ins_refused_total", reason="no_user")
    client, answer = world.sign_in("stranger")
    assert answer.status_code == 403
    assert "stranger@example.com" in answer.text and "no user for you" in answer.text
    assert client.get("/").status_code == 303  # not signed in: to the sign-in page
    after = metric(world, "presencebridge_sign_ins_refused_total", reason="no_user")
    assert after == refused_before + 1


def test_sign_out_ends_the_session_even_for_a_copied_cookie(signin_world: SignInWorld) -> None:
    world = signin_world
    client, _ = world.sign_in("alice")
    copied = console_cookie(client)
    page = client.get("/").text
    out = client.post("/console/logout", data={"csrf_token": csrf(page)})
    assert out.status_code == 200
    # The provider's sign-out is offered, pointing back to this console.
    link = re.search(r'id="provider-sign-out" href="([^"]+)"', out.text)
    assert link is not None
    end_session = link.group(1).replace("&amp;", "&")
    assert end_session.startswith(world.provider.issuer)
    assert "post_logout_redirect_uri=" in end_session and "client_id=" in end_session
    assert client.get("/").status_code == 303
    thief = world.browser()
    thief.cookies.update(copied)
    assert thief.get("/").status_code == 303  # the session is gone from the store


def test_wrong_state_is_refused_and_counted(signin_world: SignInWorld) -> None:
    world = signin_world
    client = world.browser()
    back = complete_login_with_httpx(client, world.start(client), "alice")
    before = metric(world, "presencebridge_sign_ins_refused_total", reason="state")
    forged = back.replace(callback_state(back), "forged-state")
    answer = client.get(forged)
    assert answer.status_code == 400 and "state" in answer.text
    assert client.get("/").status_code == 303
    assert metric(world, "presencebridge_sign_ins_refused_total", reason="state") == before + 1


def test_a_replayed_callback_and_a_replayed_code_are_refused(signin_world: SignInWorld) -> None:
    world = signin_world
    client = world.browser()
    back = complete_login_with_httpx(client, world.start(client), "alice")
    assert client.get(back).status_code == 303  # signed in
    # The same answer again: the flow was used up.
    replay = world.browser()
    replay.cookies.update(console_cookie(client))
    assert replay.get(back).status_code == 400
    # A fresh flow in another browser, fed the used code with the new state.
    thief = world.browser()
    authorize = world.start(thief)
    state = re.search(r"[?&]state=([^&]+)", authorize)
    assert state is not None
    code = re.search(r"[?&]code=([^&]+)", back)
    assert code is not None
    before = metric(world, "presencebridge_sign_ins_refused_total", reason="code")
    answer = thief.get(
        "/console/sso/callback", params={"code": code.group(1), "state": state.group(1)}
    )
    assert answer.status_code == 400
    assert thief.get("/").status_code == 303
    assert metric(world, "presencebridge_sign_ins_refused_total", reason="code") == before + 1


def test_the_return_address_stays_on_this_site(signin_world: SignInWorld) -> None:
    world = signin_world
    for target in ("https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:1"):
        _, answer = world.sign_in("alice", next_=target)
        assert answer.status_code == 303
        assert answer.headers["location"] == "/", target


def test_forms_of_the_own_page_need_the_csrf_token(signin_world: SignInWorld) -> None:
    world = signin_world
    client, _ = world.sign_in("alice")
    before = world.server.client().get(f"/api/v1/users/{world.alice}/presence").json()
    for path, data in (
        ("dnd", {"on": "true"}),
        ("tokens", {}),
        ("personal-tokens", {"name": "cron"}),
        ("profile", {"name": "Termin"}),
    ):
        refused = client.post(f"/console/users/{world.alice}/{path}", data=data)
        assert refused.status_code == 403, path
        assert "without its security token" in refused.text
    assert world.server.client().get(f"/api/v1/users/{world.alice}/presence").json() == before
    tokens = world.server.client().get(f"/api/v1/users/{world.alice}/personal-tokens").json()
    assert tokens == []


def test_a_personal_token_made_on_the_page_acts_for_its_user_only(
    signin_world: SignInWorld,
) -> None:
    world = signin_world
    client, _ = world.sign_in("alice")
    page = client.get(f"/console/users/{world.alice}").text
    made = client.post(
        f"/console/users/{world.alice}/personal-tokens",
        data={"csrf_token": csrf(page), "name": "my script"},
    )
    assert made.status_code == 200
    token = re.search(r'id="new-token">([^<]+)<', made.text)
    assert token is not None
    script = httpx.Client(
        base_url=world.server.url, headers={"Authorization": f"Bearer {token.group(1)}"}
    )
    assert script.get("/api/v1/me").json() == {
        "role": "user", "user": world.alice, "via": "personal-token",
    }  # fmt: skip
    assert script.get(f"/api/v1/users/{world.alice}/presence").status_code == 200
    assert script.get(f"/api/v1/users/{world.bob}/presence").status_code == 403
    assert script.get("/api/v1/users").status_code == 403
    # The page never shows it again; revoking it ends it at once.
    again = client.get(f"/console/users/{world.alice}").text
    assert token.group(1) not in again and "my script" in again
    [listed] = world.server.client().get(f"/api/v1/users/{world.alice}/personal-tokens").json()
    revoke = {"csrf_token": csrf(again), "token_id": listed["id"]}
    assert (
        client.post(f"/console/users/{world.alice}/personal-tokens/revoke", data=revoke).status_code
        == 303
    )
    assert script.get(f"/api/v1/users/{world.alice}/presence").status_code == 401


def test_the_own_sync_mode_is_greyed_while_the_group_says_so(signin_world: SignInWorld) -> None:
    world = signin_world
    admin = world.server.client()
    settings = f"/api/v1/groups/{world.group}/settings"
    assert admin.patch(settings, json={"user_may_change": False}).is_success
    try:
        client, _ = world.sign_in("alice")
        page = client.get(f"/console/users/{world.alice}").text
        assert re.search(r"<fieldset disabled[^>]*>", page)
        assert "Your group does not let users choose their Teams sync mode" in page
        before = admin.get(f"/api/v1/users/{world.alice}/settings").json()
        form = {"csrf_token": csrf(page), "teams_sync_mode": "off"}
        refused = client.post(f"/console/users/{world.alice}/settings", data=form)
        assert refused.status_code == 403
        assert admin.get(f"/api/v1/users/{world.alice}/settings").json() == before
        # An administrator may, whatever the group says.
        carol, _ = world.sign_in("carol")
        admin_page = carol.get(f"/console/users/{world.alice}").text
        assert "<fieldset disabled" not in admin_page
        form["csrf_token"] = csrf(admin_page)
        assert carol.post(f"/console/users/{world.alice}/settings", data=form).status_code == 303
        after = admin.get(f"/api/v1/users/{world.alice}/settings").json()
        assert after["teams_sync_mode"] == "off"
    finally:
        assert admin.patch(settings, json={"user_may_change": True}).is_success
        admin.patch(f"/api/v1/users/{world.alice}/settings", json={"teams_sync_mode": None})


def test_deleting_a_user_ends_their_sessions_and_tokens(signin_world: SignInWorld) -> None:
    world = signin_world
    admin = world.server.client()
    body = {"id": "erin", "display_name": "Erin", "group": world.group, "email": "erin@example.com"}
    assert admin.post("/api/v1/users", json=body).status_code == 201
    client, answer = world.sign_in("erin")
    assert answer.status_code == 303
    assert client.get("/console/users/erin").status_code == 200
    made = admin.post("/api/v1/users/erin/personal-tokens", json={"name": "x"}).json()
    assert admin.delete("/api/v1/users/erin").status_code == 204
    assert client.get("/console/users/erin").status_code == 303  # signed out: to sign-in
    script = {"Authorization": f"Bearer {made['token']}"}
    assert httpx.get(f"{world.server.url}/api/v1/me", headers=script).status_code == 401
    # Made again under the same id, she must sign in again: nothing of the old is left.
    assert admin.post("/api/v1/users", json=body).status_code == 201
    assert client.get("/console/users/erin").status_code == 303
    assert admin.delete("/api/v1/users/erin").status_code == 204


def test_a_form_sent_after_the_session_ended_comes_back_after_signing_in_at_the_provider(
    signin_world: SignInWorld,
) -> None:
    """The input survives the round trip through the provider: kept on the server for the
    sign-in (never in a URL), offered once after the callback, sent only by a click."""
    world = signin_world
    client, _ = world.sign_in("alice")
    page = f"/console/users/{world.alice}"
    token = csrf(client.get(page).text)
    stale = world.browser()  # the same browser's tab, still showing the page
    stale.cookies.update(console_cookie(client))
    assert client.post("/console/logout", data={"csrf_token": token}).status_code in (200, 303)
    typed = {
        "csrf_token": token,
        "name": "Nach dem Abmelden",
        "status": "away",
        "text": "Gleich zurück",
        "color": "#335577",
        "api_token": "never-carried",
    }
    sent = stale.post(f"{page}/profiles", data=typed, headers={"Referer": world.server.url + page})
    assert sent.status_code == 401, sent.text[:300]
    assert "Sign in with" in sent.text
    sso = re.search(r'id="sso-link" href="([^"]+)"', sent.text)
    assert sso is not None
    authorize = stale.get(sso.group(1).replace("&amp;", "&"))
    assert authorize.status_code == 303
    location = authorize.headers["location"]
    assert "Nach" not in location and "zur" not in location  # nothing of the form in a URL
    back = complete_login_with_httpx(stale, location, "alice")
    assert "Nach" not in back
    offered = stale.get(back)
    assert offered.status_code == 200, offered.text[:300]
    assert f'action="{page}/profiles"' in offered.text and 'id="replay-form"' in offered.text
    fields = dict(re.findall(r'type="hidden" name="([^"]+)" value="([^"]*)"', offered.text))
    assert fields["name"] == "Nach dem Abmelden" and fields["text"] == "Gleich zurück"
    assert "api_token" not in fields and fields["csrf_token"] != token  # the new session's
    admin = world.server.client()
    profiles = f"/api/v1/users/{world.alice}/profiles"
    assert "Nach dem Abmelden" not in [p["name"] for p in admin.get(profiles).json()]
    again = stale.post(f"{page}/profiles", data=fields)
    assert again.status_code == 303, again.text[:300]
    assert "Nach dem Abmelden" in [p["name"] for p in admin.get(profiles).json()]
    # Handed out once: a second sign-in offers nothing.
    _, answer = world.sign_in("alice", next_=page)
    assert answer.status_code == 303 and answer.headers["location"] == page
