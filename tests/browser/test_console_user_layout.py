"""The user page's appointments and their date and time inputs, on a desktop and a phone,
in German and in an en-US browser (whose time fields carry AM/PM): nothing cut off."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import Browser, expect

from tests.browser.conftest import Directory
from tests.browser.helpers import DESKTOP, PHONE, layout_problems, new_context, screenshot, sign_in
from tests.support.server import ServerProcess
from tests.support.teams import EmulatorProcess
from tests.support.waiting import eventually

# Each date/time input as wide as its fields need (its intrinsic width), against its width.
_CUT_INPUTS = """() => {
  const cut = [];
  const selector = 'input[type=datetime-local], input[type=date], input[type=time]';
  for (const input of document.querySelectorAll(selector)) {
    const probe = input.cloneNode();
    probe.removeAttribute('id');
    probe.style.width = 'auto';
    probe.style.minWidth = '0';
    probe.style.maxWidth = 'none';
    probe.style.position = 'absolute';
    probe.style.visibility = 'hidden';
    input.parentElement.appendChild(probe);
    const needed = probe.getBoundingClientRect().width;
    probe.remove();
    const has = input.getBoundingClientRect().width;
    if (has + 0.5 < needed) cut.push(input.id + ': ' + has.toFixed(1) + ' < ' + needed.toFixed(1));
  }
  return cut;
}"""

# Every delete button of the appointments table whole, inside its card.
_CUT_BUTTONS = """() => {
  const card = document.getElementById('appointments').getBoundingClientRect();
  const cut = [];
  for (const button of document.querySelectorAll('#appointments tbody button')) {
    const r = button.getBoundingClientRect();
    const outside = r.right > card.right + 0.5 || r.left < card.left - 0.5;
    if (outside || button.scrollWidth > button.clientWidth + 1)
      cut.push(button.textContent.trim() + ' ' + r.left.toFixed(0) + '-' + r.right.toFixed(0) +
        ' outside ' + card.left.toFixed(0) + '-' + card.right.toFixed(0));
  }
  return cut;
}"""


@pytest.fixture(scope="module")
def busy_user(server: ServerProcess, api: httpx.Client, emulator: EmulatorProcess) -> str:
    """A user with a Teams call appointment and long-named manual ones."""
    directory = Directory(api, emulator)
    group = directory.group("Vertrieb Süd", create_teams_profile_template=True)
    user, teams_id = directory.user("Maximiliane Oberhuber-Schönfeld", group)
    assert teams_id is not None
    profile = {
        "name": "Kundengespräch vor Ort",
        "status": "busy",
        "text": "Beim Kunden",
        "color": "#a4262c",
    }
    assert api.post(f"/api/v1/users/{user}/profiles", json=profile).status_code == 201
    for subject, start, end, name in (
        ("Quartalsgespräch Vertriebsleitung", "2026-01-01T08:00:00Z", "2099-12-31T21:00Z", None),
        ("Kundentermin", "2026-01-01T08:00:00Z", "2099-01-01T09:00Z", "Kundengespräch vor Ort"),
    ):
        body = {"subject": subject, "start": start, "end": end, "profile": name}
        assert api.post(f"/api/v1/users/{user}/appointments", json=body).status_code == 201
    emulator.client_presence(teams_id, "Busy", "InACall")
    eventually(
        lambda: [a["origin"] for a in api.get(f"/api/v1/users/{user}/appointments").json()],
        lambda origins: "teams" in origins,
        timeout=20,
    )
    return user


@pytest.mark.parametrize(
    ("lang", "locale"), [("de", "de-DE"), ("en", "en-US")], ids=["de-DE", "en-US"]
)
@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280x800", "390x844"])
def test_appointments_and_date_inputs_fit(
    browser: Browser,
    server: ServerProcess,
    busy_user: str,
    lang: str,
    locale: str,
    viewport: dict[str, int],
) -> None:
    context = new_context(browser, lang, viewport, locale=locale)
    page = sign_in(context, server)
    page.goto(f"{server.url}/console/users/{busy_user}")
    expect(page.locator("#appointments tbody tr")).to_have_count(3)
    size = f"{viewport['width']}x{viewport['height']}"
    screenshot(page, f"user-appointments-{locale}-{size}")
    problems = {
        "inputs": page.evaluate(_CUT_INPUTS),
        "buttons": page.evaluate(_CUT_BUTTONS),
        "layout": layout_problems(page),
    }
    context.close()
    assert not any(problems.values()), problems


def test_the_probe_sees_a_cut_date_input(
    browser: Browser, server: ServerProcess, busy_user: str
) -> None:
    """The check above can fail: a date input squeezed narrower than its fields is found."""
    context = new_context(browser, "en", DESKTOP, locale="en-US")
    page = sign_in(context, server)
    page.goto(f"{server.url}/console/users/{busy_user}")
    squeeze = "(el) => { el.style.minWidth = '0'; el.style.width = '9rem'; }"
    page.locator("#a-start").evaluate(squeeze)
    assert page.evaluate(_CUT_INPUTS)[0].startswith("a-start:")
    page.locator("#appointments tbody button").first.evaluate(
        "(el) => { el.style.width = '60rem'; }"
    )
    assert page.evaluate(_CUT_BUTTONS)
    context.close()
