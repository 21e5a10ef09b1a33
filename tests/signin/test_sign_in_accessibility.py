"""axe-core over what an employee signed in by single sign-on sees: their own page, the
board, a page refused to them, and the sign-in page with its provider button; in German
and English, no serious or critical violation."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, expect

from tests.browser.helpers import axe_violations, debian_chromium, new_context
from tests.signin.conftest import SignInWorld


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from debian_chromium()


@pytest.mark.parametrize("lang", ["en", "de"])
def test_an_employees_pages_have_no_serious_violations(
    signin_world: SignInWorld, browser: Browser, lang: str
) -> None:
    world = signin_world
    context = new_context(browser, lang, bypass_csp=True)
    page = context.new_page()
    page.goto(world.server.url + "/console/login")
    expect(page.locator("a[href^='/console/sso']")).to_be_visible()
    found = {}
    if violations := axe_violations(page):
        found["login"] = violations
    client, answer = world.sign_in("alice", next_="/console/me")
    assert answer.status_code == 303
    session = client.cookies.get("pb_console")
    assert session
    context.add_cookies([{"name": "pb_console", "value": session, "url": world.server.url}])
    for name, path in (
        ("own page", f"/console/users/{world.alice}"),
        ("board", "/"),
        ("refused", "/console/groups"),
        ("another user's page", f"/console/users/{world.bob}"),
    ):
        page.goto(world.server.url + path)
        expect(page.locator("html")).to_have_attribute("lang", lang)
        expect(page.locator("main h1").first).to_be_visible()
        if name == "own page":
            expect(page.locator("#personal-tokens")).to_be_visible()  # signed in as Alice
        if violations := axe_violations(page):
            found[name] = violations
    context.close()
    report = "\n".join(
        f"{name}: {', '.join(str(v['id']) for v in vs)}\n    {json.dumps(vs, ensure_ascii=False)}"
        for name, vs in found.items()
    )
    assert not found, "axe-core found serious or critical violations:\n" + report
