"""Signing in with the admin token, and out again."""

from __future__ import annotations

from playwright.sync_api import Browser, expect

from tests.browser.helpers import new_context, sign_in
from tests.support.server import ADMIN_TOKEN, ServerProcess


def test_wrong_token_is_refused_and_the_right_one_signs_in(
    browser: Browser, server: ServerProcess
) -> None:
    context = new_context(browser)
    page = context.new_page()
    page.goto(server.url + "/")
    expect(page).to_have_url(server.url + "/console/login")  # not signed in: the login form

    page.locator("#token").fill("not-the-token")
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.locator("#login-form button[type=submit]").click()
    assert answer.value.status == 401
    expect(page.locator("#token-error")).to_contain_text("not the admin token")
    expect(page.locator("#token")).to_have_attribute("aria-invalid", "true")
    assert not [c for c in context.cookies() if c["name"] == "pb_console" and "auth" in c["value"]]
    page.goto(server.url + "/console/groups")
    expect(page).to_have_url(server.url + "/console/login?next=%2Fconsole%2Fgroups")

    page.locator("#token").fill(ADMIN_TOKEN)
    page.locator("#login-form button[type=submit]").click()
    expect(page).to_have_url(server.url + "/console/groups")  # back where we wanted to go
    cookie = next(c for c in context.cookies() if c["name"] == "pb_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"  # README: why Lax
    assert ADMIN_TOKEN not in cookie["value"]

    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(server.url + "/console/login")
    expect(page.get_by_role("status")).to_contain_text("signed out")
    page.goto(server.url + "/")
    expect(page).to_have_url(server.url + "/console/login")
    context.close()


def test_the_demo_link_signs_in_and_leaves_no_token_in_the_address(
    browser: Browser, server: ServerProcess
) -> None:
    context = new_context(browser)
    page = context.new_page()
    page.goto(f"{server.url}/#token={ADMIN_TOKEN}")
    expect(page.locator("#board")).to_be_visible()
    assert ADMIN_TOKEN not in page.url
    context.close()


def test_a_session_is_not_a_bearer_token_for_the_json_api(
    browser: Browser, server: ServerProcess
) -> None:
    context = new_context(browser)
    sign_in(context, server)
    # The cookie opens the console only; the API still wants the bearer token (no CSRF there).
    assert context.request.get(server.url + "/api/v1/groups").status == 401
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    assert context.request.get(server.url + "/api/v1/groups", headers=headers).ok
    context.close()
