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
    assert api.post(f"/api/v1/users/{user}/agent-tokens").status_code == 201  # /console/tokens
    token = {"name": "Nachtlauf"}
    assert api.post(f"/api/v1/users/{user}/personal-tokens", json=token).status_code == 201
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
    "service-accounts": "/console/service-accounts",
    "tokens": "/console/tokens",
    "audit": "/console/audit",
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


# The contrast of a dot's edge against its card: its ring (an inset box-shadow) laid over
# its fill, against the card's background (WCAG relative luminance).
_EDGE_CONTRAST = """(el) => {
  const rgba = (text) => (text.match(/[\\d.]+/g) || []).map(Number);
  const style = getComputedStyle(el);
  const fill = rgba(style.backgroundColor);
  const ring = rgba(style.boxShadow.match(/rgba?\\([^)]*\\)/)[0]);
  const alpha = ring.length > 3 ? ring[3] : 1;
  const edge = [0, 1, 2].map((i) => ring[i] * alpha + fill[i] * (1 - alpha));
  const card = rgba(getComputedStyle(el.closest('.card')).backgroundColor);
  const lum = (c) => c.map((v) => v / 255)
    .map((v) => (v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4))
    .reduce((sum, v, i) => sum + v * [0.2126, 0.7152, 0.0722][i], 0);
  const [a, b] = [lum(edge), lum(card)].sort((x, y) => y - x);
  return (a + 0.05) / (b + 0.05);
}"""


def test_status_dots_stand_out_from_the_card(
    browser: Browser, server: ServerProcess, api: httpx.Client, directory: Directory
) -> None:
    """Non-text contrast: a yellow Away (1.47:1 as a fill) still has an edge of 3:1."""
    group = directory.group("Kontrast")
    user, _ = directory.user("Karla Kontrast", group, teams=False)
    for name, status, color in (("Pause", "away", "#fcd116"), ("Weiß", "available", "#ffffff")):
        body = {"name": name, "status": status, "text": name, "color": color}
        assert api.post(f"/api/v1/users/{user}/profiles", json=body).status_code == 201
    assert api.put(f"/api/v1/users/{user}/profile", json={"name": "Pause"}).is_success
    context = new_context(browser)
    page = sign_in(context, server)
    page.goto(f"{server.url}/console/users/{user}")
    dots = [page.locator(".presence-now .dot"), *page.locator("#profile-list .swatch").all()]
    assert len(dots) >= 3
    contrasts = [round(float(dot.evaluate(_EDGE_CONTRAST)), 2) for dot in dots]
    context.close()
    assert min(contrasts) >= 3.0, contrasts
