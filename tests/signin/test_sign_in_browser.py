"""The whole redirect flow in a real browser (Debian's Chromium) against a certified
OpenID Connect provider: sign in, the own page, an administration page refused with a
clear page, sign out here and at the provider."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, expect

from tests.browser.helpers import debian_chromium
from tests.signin.conftest import SignInWorld
from tests.support.oidc_provider import sign_in_at_oidc_provider, sign_out_at_oidc_provider


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from debian_chromium()


def test_sign_in_own_page_refusal_and_sign_out_in_a_browser(
    signin_world: SignInWorld, browser: Browser
) -> None:
    world = signin_world
    context = browser.new_context(locale="de-DE")  # the browser's language by default
    page = context.new_page()
    page.goto(f"{world.server.url}/console/groups")  # an admin page: first the sign-in
    expect(page).to_have_url(f"{world.server.url}/console/login?next=%2Fconsole%2Fgroups")
    page.get_by_role("link", name="Anmelden mit Example SSO").click()
    sign_in_at_oidc_provider(page, "alice")
    # Back where she wanted to go, which is not hers to open.
    expect(page.get_by_role("heading", name="Nicht erlaubt")).to_be_visible()
    expect(page.get_by_text("Nur Administratoren dürfen diese Seite öffnen.")).to_be_visible()

    page.get_by_role("link", name="Meine Seite").click()
    expect(page.get_by_role("heading", name="Alice A.", exact=True)).to_be_visible()
    expect(page.get_by_role("heading", name="Persönliche API-Tokens")).to_be_visible()
    expect(page.get_by_role("heading", name="Benutzer löschen")).to_have_count(0)

    page.get_by_role("button", name="Abmelden").click()
    expect(page.get_by_role("heading", name="Sie sind abgemeldet")).to_be_visible()
    page.get_by_role("link", name="Auch vom Firmenkonto abmelden").click()
    sign_out_at_oidc_provider(page)
    expect(page).to_have_url(f"{world.server.url}/console/login")
    # Signed out at both: the next sign-in asks for the name again.
    page.get_by_role("link", name="Anmelden mit Example SSO").click()
    expect(page.get_by_label("Login name")).to_be_visible()
    context.close()
