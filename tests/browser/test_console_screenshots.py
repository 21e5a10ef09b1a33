"""Screenshots of the main pages in both languages and two sizes, checked for layout faults.

Saved to test-artifacts/screenshots/ (board, user page, group settings, templates, groups,
sync health; en and de; 1280×800 and 390×844).
"""

from __future__ import annotations

import uuid

import httpx
import pytest
from playwright.sync_api import Browser, expect

from tests.browser.conftest import Directory
from tests.browser.helpers import DESKTOP, PHONE, layout_problems, new_context, screenshot, sign_in
from tests.support.server import ServerProcess
from tests.support.teams import EmulatorProcess
from tests.support.waiting import eventually


@pytest.fixture(scope="module")
def office(server: ServerProcess, api: httpx.Client, emulator: EmulatorProcess) -> dict[str, str]:
    """A small office: a few colleagues in different states, one in a Teams call."""
    directory = Directory(api, emulator)
    group = directory.group("Zentrale München", create_teams_profile_template=True)
    sales = directory.group("Vertrieb Nord", mode="telephony_only")
    users = {}
    for name, where in (
        ("Anna Berger", group),
        ("Jörg Müller", group),
        ("Li Wei", group),
        ("Sophie Martin-Lefèvre", sales),
    ):
        users[name], teams_id = directory.user(name, where)
        if name == "Li Wei":
            assert teams_id is not None
            emulator.client_presence(teams_id, "Busy", "InACall")
    anna = users["Anna Berger"]
    for body in (
        {"name": "Fokus", "status": "dnd", "text": "Bitte nicht stören", "color": "#c4314b"},
        {"name": "Mittag", "status": "away", "text": "Mittagspause", "color": "#f8d22a"},
        {
            "name": "Homeoffice",
            "status": "available",
            "text": "Im Homeoffice",
            "color": "#2e8b57",
            "call_forwarding": "+49 89 1234 567",
        },
    ):
        assert api.post(f"/api/v1/users/{anna}/profiles", json=body).status_code == 201
    assert api.put(f"/api/v1/users/{anna}/profile", json={"name": "Mittag"}).is_success
    body = {
        "subject": "Kundentermin",
        "start": "2026-01-01T08:00:00Z",
        "end": "2099-01-01T09:00:00Z",
    }
    assert api.post(f"/api/v1/users/{anna}/appointments", json=body).status_code == 201
    call = {"user": users["Jörg Müller"], "call_id": uuid.uuid4().hex, "state": "connected"}
    assert api.post("/api/v1/telephony/events", json=call).is_success
    eventually(
        lambda: api.get(f"/api/v1/users/{users['Li Wei']}/presence").json()["telephony"],
        lambda t: t == "on_the_phone",
        timeout=10,
    )
    template = {"name": "MicSync", "status": "busy", "text": "Mikrofon", "color": "#d13438"}
    assert api.post(f"/api/v1/groups/{group}/templates", json=template).status_code == 201
    return {"group": group, "user": anna, "sales": sales}


PAGES = {
    "board": "/?group={group}",
    "user": "/console/users/{user}",
    "group-settings": "/console/groups/{group}",
    "templates": "/console/groups/{group}/templates",
    "groups": "/console/groups",
    "sync": "/console/sync",
    "directory": "/console/directory",
    "webhooks": "/console/webhooks",
    "service-accounts": "/console/service-accounts",
    "tokens": "/console/tokens",
}


@pytest.mark.parametrize("lang", ["en", "de"])
@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280x800", "390x844"])
def test_pages_look_right(
    browser: Browser,
    server: ServerProcess,
    office: dict[str, str],
    lang: str,
    viewport: dict[str, int],
) -> None:
    context = new_context(browser, lang, viewport)
    page = sign_in(context, server)
    faults = {}
    for name, path in PAGES.items():
        page.goto(server.url + path.format(**office))
        if name == "board":
            expect(page.locator("#live")).to_have_attribute("data-state", "live")
            expect(page.locator("#rows .board-row:visible .c-phone.on")).to_have_count(2)
        expect(page.locator("html")).to_have_attribute("lang", lang)
        size = f"{viewport['width']}x{viewport['height']}"
        screenshot(page, f"{name}-{lang}-{size}")
        problems = layout_problems(page)
        if problems:
            faults[name] = problems
    context.close()
    assert not faults, faults
