"""axe-core over every console page in both languages: no serious or critical violation.

axe-core comes from npm (tests/support/axe, `npm ci` through the Makefile) and is
injected into each page as it is shown; the context bypasses the console's
Content-Security-Policy for that one script.
"""

from __future__ import annotations

import json

import httpx
import pytest
from playwright.sync_api import Browser, expect

from tests.browser.conftest import Directory
from tests.browser.helpers import axe_violations, new_context, sign_in
from tests.support.server import ServerProcess
from tests.support.teams import EmulatorProcess


@pytest.fixture(scope="module")
def office(server: ServerProcess, api: httpx.Client, emulator: EmulatorProcess) -> dict[str, str]:
    """A group with central templates, a user with profiles and an appointment."""
    directory = Directory(api, emulator)
    group = directory.group("Barrierefrei", create_teams_profile_template=True)
    user, _ = directory.user("Ada Axe", group)
    template = {"name": "Pause", "status": "away", "text": "Pause", "color": "#f8d22a"}
    assert api.post(f"/api/v1/groups/{group}/templates", json=template).status_code == 201
    profile = {"name": "Fokus", "status": "dnd", "text": "Bitte nicht stören", "color": "#c4314b"}
    assert api.post(f"/api/v1/users/{user}/profiles", json=profile).status_code == 201
    body = {"subject": "Kundentermin", "start": "2026-01-01T08:00:00Z", "end": "2099-01-01T09:00Z"}
    assert api.post(f"/api/v1/users/{user}/appointments", json=body).status_code == 201
    return {"group": group, "user": user}


PAGES = {
    "board": "/?group={group}",
    "user": "/console/users/{user}",
    "groups": "/console/groups",
    "group": "/console/groups/{group}",
    "templates": "/console/groups/{group}/templates",
    "sync": "/console/sync",
    "directory": "/console/directory",
    "webhooks": "/console/webhooks",
    "no-own-page": "/console/me",
    "unknown-user": "/console/users/nobody-here",
}


def _report(found: dict[str, list[dict[str, object]]]) -> str:
    lines = []
    for name, violations in found.items():
        ids = ", ".join(str(v["id"]) for v in violations)
        lines.append(f"{name}: {ids}")
        lines.extend(f"    {json.dumps(v, ensure_ascii=False)}" for v in violations)
    return "\n".join(lines)


@pytest.mark.parametrize("lang", ["en", "de"])
def test_no_serious_violations_on_any_page(
    browser: Browser, server: ServerProcess, office: dict[str, str], lang: str
) -> None:
    context = new_context(browser, lang, bypass_csp=True)
    page = context.new_page()
    page.goto(server.url + "/console/login")
    expect(page.locator("html")).to_have_attribute("lang", lang)
    found = {}
    if violations := axe_violations(page):
        found["login"] = violations
    page.close()
    page = sign_in(context, server)
    for name, path in PAGES.items():
        page.goto(server.url + path.format(**office))
        expect(page.locator("html")).to_have_attribute("lang", lang)
        if name == "board":
            expect(page.locator("#live")).to_have_attribute("data-state", "live")
            expect(page.locator(f'#rows [data-user="{office["user"]}"]')).to_be_visible()
        if violations := axe_violations(page):
            found[name] = violations
    context.close()
    assert not found, "axe-core found serious or critical violations:\n" + _report(found)


def test_a_failed_save_focuses_the_first_invalid_field(
    browser: Browser, server: ServerProcess, directory: Directory
) -> None:
    """Keyboard users land where the problem is: the first field marked invalid."""
    group = directory.group("Fokus")
    user, _ = directory.user("Fritz Fokus", group, teams=False)
    context = new_context(browser)
    page = sign_in(context, server)
    page.goto(f"{server.url}/console/users/{user}")
    page.locator("#a-subject").fill("Planung")
    page.locator("#a-end").fill("2020-01-01T08:00")  # before the start
    page.locator("#a-end").press("Enter")
    expect(page.locator("#a-end")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#a-end")).to_be_focused()
    context.close()
