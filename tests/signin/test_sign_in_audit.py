"""The audit log (issue 18) names a person signed in at the OpenID Connect provider
by their sign-in name, for their own changes and an administrator's, and records
their sign-in and sign-out; a refused form records nothing."""

from __future__ import annotations

from typing import Any

import httpx

from tests.signin.conftest import SignInWorld
from tests.signin.test_sign_in_oidc import csrf


def audit(world: SignInWorld, **params: str) -> list[dict[str, Any]]:
    with world.server.client() as admin:
        answer = admin.get("/api/v1/admin/audit", params={"limit": "1000", **params})
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()["entries"]
    return found


def test_an_employees_own_change_names_them(signin_world: SignInWorld) -> None:
    world = signin_world
    client, _ = world.sign_in("alice")
    signed = audit(world, action="session.signed_in", target=world.alice)
    assert signed and signed[0]["actor_kind"] == "session"
    assert signed[0]["actor"].lower() == "alice@example.com"

    page = client.get(f"/console/users/{world.alice}").text
    form = {"csrf_token": csrf(page), "name": "Termin"}
    assert client.post(f"/console/users/{world.alice}/profile", data=form).status_code == 303
    chosen = audit(world, action="profile.selected", target=world.alice)[0]
    assert (chosen["actor_kind"], chosen["actor"].lower()) == ("session", "alice@example.com")
    assert chosen["details"]["name"][1] == "Termin"

    before = len(audit(world))
    refused = client.post(f"/console/users/{world.bob}/profile", data=form)  # not hers: 403
    assert refused.status_code == 403
    assert client.get("/console/audit").status_code == 403  # the log is the administrators'
    assert len(audit(world)) == before

    clear = {"csrf_token": form["csrf_token"], "name": ""}
    assert client.post(f"/console/users/{world.alice}/profile", data=clear).status_code == 303
    assert client.post("/console/logout", data={"csrf_token": form["csrf_token"]}).is_success
    out = audit(world, action="session.signed_out", target=world.alice)
    assert out and out[0]["actor"].lower() == "alice@example.com"


def test_an_administrators_change_names_them_and_shows_on_the_page(
    signin_world: SignInWorld,
) -> None:
    world = signin_world
    client, _ = world.sign_in("carol")  # an administrator by group claim, no hub user
    page = client.get(f"/console/groups/{world.group}")
    form = {"csrf_token": csrf(page.text), "teams_sync_mode": "telephony_only"}
    saved = client.post(f"/console/groups/{world.group}/settings", data=form)
    assert saved.status_code == 303, saved.text[:300]
    row = audit(world, action="group.settings.changed", target=world.group)[0]
    assert (row["actor_kind"], row["actor"]) == ("session", "carol@example.com")
    assert row["details"]["teams_sync_mode"][1] == "telephony_only"

    shown = client.get("/console/audit", params={"actor": "carol"})
    assert shown.status_code == 200
    assert "carol@example.com" in shown.text and "Group settings changed" in shown.text
    assert f'href="/console/groups/{world.group}"' in shown.text
    with httpx.Client(base_url=world.server.url) as nobody:
        assert nobody.get("/console/audit").status_code in (302, 303, 307)
