"""Every state-changing request needs the session's CSRF token and this origin."""

from __future__ import annotations

import uuid

import httpx
from playwright.sync_api import Browser

from tests.browser.helpers import csrf_of, new_context, sign_in
from tests.support.server import ServerProcess


def test_posts_without_the_right_token_are_refused_and_change_nothing(
    browser: Browser, server: ServerProcess, api: httpx.Client
) -> None:
    context = new_context(browser)
    page = sign_in(context, server)
    token = csrf_of(page)
    url = server.url + "/console/groups"
    group = f"csrf-{uuid.uuid4().hex[:6]}"
    form: dict[str, str | float | bool] = {"id": group, "name": "Forged", "teams_sync_mode": "off"}

    missing = context.request.post(url, form=form)
    assert missing.status == 403
    assert "without its security token" in missing.text()

    wrong = context.request.post(url, form={**form, "csrf_token": "x" * 43})
    assert wrong.status == 403
    assert "This form is out of date" in wrong.text()  # still signed in: a stale form

    foreign = context.request.post(
        url, form={**form, "csrf_token": token}, headers={"Origin": "http://evil.example"}
    )
    assert foreign.status == 403
    assert "sent from another web site" in foreign.text()

    # fetch() from the page itself, without the header: refused with a JSON reason.
    answer = page.evaluate(
        """async (url) => {
            const r = await fetch(url, {method: 'POST', headers: {'Accept': 'application/json'},
                                        body: new URLSearchParams({id: 'x', name: 'y'})});
            return [r.status, await r.json()];
        }""",
        url,
    )
    assert answer == [
        403,
        {"detail": "CSRF token missing: reload the page and try again", "code": "csrf"},
    ]
    assert api.get(f"/api/v1/groups/{group}").status_code == 404
    assert api.get("/api/v1/groups/x").status_code == 404

    # The same form with the token goes through.
    accepted = context.request.post(url, form={**form, "csrf_token": token}, max_redirects=0)
    assert accepted.status == 303
    assert api.get(f"/api/v1/groups/{group}").status_code == 200
    context.close()


def test_the_login_form_needs_its_token_too(browser: Browser, server: ServerProcess) -> None:
    context = new_context(browser)
    response = context.request.post(server.url + "/console/login", form={"token": "anything"})
    assert response.status == 403
    assert "without its security token" in response.text()
    context.close()
