"""Keyboard only: Tab reaches every control of every page, with a visible focus, in order."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import Browser, expect

from tests.browser.conftest import Directory
from tests.browser.helpers import new_context, sign_in, tab_walk
from tests.support.server import ServerProcess


@pytest.fixture(scope="module")
def setup(server: ServerProcess, api: httpx.Client, emulator: object) -> dict[str, str]:
    directory = Directory(api, emulator)  # type: ignore[arg-type]
    group = directory.group("Tastatur", create_teams_profile_template=True)
    user, _ = directory.user("Karl Keyboard", group, teams=False)
    for name, status in (("Fokus", "dnd"), ("Mittag", "away")):
        body = {"name": name, "status": status, "text": name, "color": "#336699"}
        assert api.post(f"/api/v1/users/{user}/profiles", json=body).status_code == 201
    body = {"subject": "Termin", "start": "2026-01-01T08:00:00Z", "end": "2099-01-01T09:00:00Z"}
    assert api.post(f"/api/v1/users/{user}/appointments", json=body).status_code == 201
    return {"group": group, "user": user}


@pytest.mark.parametrize(
    "path",
    [
        "/?group={group}",
        "/console/users/{user}",
        "/console/groups",
        "/console/groups/{group}",
        "/console/groups/{group}/templates",
        "/console/sync",
    ],
)
def test_tab_reaches_every_control(
    browser: Browser, server: ServerProcess, setup: dict[str, str], path: str
) -> None:
    context = new_context(browser)
    page = sign_in(context, server)
    page.goto(server.url + path.format(**setup))
    if path.startswith("/?"):
        expect(page.locator("#rows .board-row:visible")).to_have_count(1)
    tab_walk(page)
    context.close()


def test_tab_reaches_every_control_of_the_login_page(
    browser: Browser, server: ServerProcess
) -> None:
    context = new_context(browser)
    page = context.new_page()
    page.goto(server.url + "/console/login")
    tab_walk(page)
    context.close()


def test_settings_can_be_changed_with_the_keyboard_alone(
    browser: Browser, server: ServerProcess, api: httpx.Client, setup: dict[str, str]
) -> None:
    context = new_context(browser)
    page = sign_in(context, server)
    page.goto(f"{server.url}/console/groups/{setup['group']}")
    page.locator("#s-mode-telephony_and_presence").focus()
    page.keyboard.press("ArrowDown")  # radio group: arrows move the choice
    expect(page.locator("#s-mode-telephony_only")).to_be_checked()
    page.keyboard.press("Tab")
    page.keyboard.press("Space")  # the next control, "users may change", is switched off
    expect(page.locator("#s-may-change")).not_to_be_checked()
    page.keyboard.press("Enter")  # submits the form
    expect(page.get_by_role("status")).to_contain_text("saved")
    settings = api.get(f"/api/v1/groups/{setup['group']}/settings").json()
    assert settings["teams_sync_mode"] == "telephony_only"
    assert settings["user_may_change"] is False

    page.goto(f"{server.url}/console/users/{setup['user']}")
    page.get_by_role("button", name="Move Fokus down").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_contain_text("Fokus moved.")
    own = [p["name"] for p in api.get(f"/api/v1/users/{setup['user']}/profiles").json()]
    assert own[:2] == ["Mittag", "Fokus"]

    page.goto(server.url + "/")
    page.keyboard.press("Tab")  # the skip link comes first …
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Enter")  # … and lands in the page
    page.keyboard.press("Tab")
    expect(page.locator("#q")).to_be_focused()
    page.keyboard.type("Karl Keyboard")  # "Karl" alone also finds Karla of another test
    expect(page.locator("#rows .board-row:visible")).to_have_count(1)
    context.close()
