"""The issue's "must show", as a newcomer does it: `presencebridge demo`, open the printed
employee link in a real browser (Debian's Chromium), sign in at the emulator's Entra ID,
choose DnD on the own page; the board and Teams (the emulator) show it; the same person
cannot open group settings; the IT administrator signs in the same way and can."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.helpers import debian_chromium
from tests.demo.test_demo import EFFECT, Demo
from tests.support.waiting import eventually

EMPLOYEE = re.compile(r"(http://127\.0\.0\.1:\d+/console/sso\?\S+)")
ADMIN_TOKEN = re.compile(r"\((?:admin token|Admin-Token): (\S+)\)")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    yield from debian_chromium()


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    started = Demo(tmp_path, "en")
    try:
        # The day's first scene begins once the server answers.
        started.wait_for(lambda lines: any(EFFECT.match(line) for line in lines), 120)
        yield started
    finally:
        if started.process.poll() is None:
            started.process.kill()
            started.process.wait(10)


def sign_in_at_the_emulator(page: Page, upn: str | None = None) -> None:
    login = page.get_by_label("Email, phone, or Skype")
    expect(login).to_be_visible()
    if upn is not None:
        login.fill(upn)
    page.get_by_role("button", name="Sign in", exact=True).click()


def teams_shows(demo: Demo, base: str, user: str) -> str:
    """What Teams (the emulator) shows for `user`, as the hub read it back from Graph."""
    token = next(m.group(1) for line in demo.stdout if (m := ADMIN_TOKEN.search(line)))
    headers = {"Authorization": f"Bearer {token}"}
    presence = httpx.get(f"{base}/api/v1/users/{user}/presence", headers=headers).json()
    return str(presence["teams"]["availability"])


def test_an_employee_signs_in_from_the_printed_link_and_chooses_dnd(
    demo: Demo, browser: Browser
) -> None:
    link = next(m.group(1) for line in demo.stdout if (m := EMPLOYEE.search(line)))
    assert "login_hint=anna.schmidt" in link
    context = browser.new_context(ignore_https_errors=True)  # the emulator's own CA
    page = context.new_page()
    page.goto(link)
    sign_in_at_the_emulator(page)  # the hint filled the name in
    expect(page.get_by_role("heading", name="Anna Schmidt", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name="My page")).to_be_visible()
    expect(page.get_by_role("link", name="Groups and users")).to_have_count(0)

    page.get_by_role("button", name="Do not disturb: switch on").click()
    expect(page.get_by_text("DnD is on (Konzentriert).")).to_be_visible()
    expect(page.locator(".now-status")).to_contain_text("Do not disturb")

    page.goto(page.url.split("/console/")[0] + "/")
    row = page.locator("[data-user='anna.schmidt']")
    expect(row).to_contain_text("Do not disturb")
    base = page.url.rstrip("/")
    eventually(lambda: teams_shows(demo, base, "anna.schmidt"), lambda s: s == "DoNotDisturb", 60)

    refused = page.goto(f"{base}/console/groups/berlin")
    assert refused is not None and refused.status == 403
    expect(page.get_by_text("Only administrators may open this page.")).to_be_visible()
    context.close()


def test_the_it_administrator_signs_in_at_the_emulator_and_may_open_group_settings(
    demo: Demo, browser: Browser
) -> None:
    link = next(m.group(1) for line in demo.stdout if (m := EMPLOYEE.search(line)))
    base = link.split("/console/")[0]
    context = browser.new_context(ignore_https_errors=True)
    page = context.new_page()
    page.goto(f"{base}/console/login")
    page.get_by_role("link", name="Sign in with Entra ID (Graph emulator)").click()
    sign_in_at_the_emulator(page, "it.admin@contoso.example")
    opened = page.goto(f"{base}/console/groups/berlin")
    assert opened is not None and opened.status == 200
    menu = page.get_by_role("navigation", name="Main menu")
    expect(menu.get_by_role("link", name="Groups and users")).to_be_visible()
    context.close()
