"""Service accounts in the console, in Chromium (issue 18), in German and English, on a
desktop and a phone: add an account, complete its device-code sign-in at the Graph
emulator's sign-in page, see it signed in, remove it after the confirmation."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, expect

from tests.browser.helpers import (
    DESKTOP,
    PHONE,
    axe_violations,
    layout_problems,
    new_context,
    screenshot,
    sign_in,
)
from tests.support.server import ServerProcess
from tests.support.teams import EmulatorProcess, new_teams_id
from tests.sync.test_sync_notify import notify_server

WORDS = {
    "en": {
        "add": "Add and sign in",
        "pending": "sign-in pending",
        "active": "signed in",
        "remove": "Remove",
        "removed": "removed",
    },
    "de": {
        "add": "Hinzufügen und anmelden",
        "pending": "Anmeldung ausstehend",
        "active": "angemeldet",
        "remove": "Entfernen",
        "removed": "entfernt",
    },
}


@pytest.fixture(scope="module")
def notify(
    tmp_path_factory: pytest.TempPathFactory, emulator: EmulatorProcess
) -> Iterator[ServerProcess]:
    """A server in read mode notify, beside the package's poll-mode one."""
    process = notify_server(tmp_path_factory.mktemp("notify") / "server", emulator)
    process.start()
    yield process
    process.stop()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280", "390"])
@pytest.mark.parametrize("lang", ["en", "de"])
def test_add_sign_in_at_the_emulator_and_remove_a_service_account(
    browser: Browser,
    notify: ServerProcess,
    emulator: EmulatorProcess,
    lang: str,
    viewport: dict[str, int],
) -> None:
    words = WORDS[lang]
    name = f"svc-{lang}-{viewport['width']}-{uuid.uuid4().hex[:4]}"
    account_id = new_teams_id()
    upn = f"{name}@contoso.example"
    with emulator.control() as control:
        assert control.post("/_emulator/users", json={"id": account_id, "upn": upn}).is_success

    context = new_context(browser, lang, bypass_csp=True)  # axe-core
    page = sign_in(context, notify)  # the board of a hub without users is hidden on a phone
    page.set_viewport_size(viewport)  # type: ignore[arg-type]
    page.goto(notify.url + "/console/service-accounts")
    expect(page.locator("html")).to_have_attribute("lang", lang)
    page.locator("#account-name").fill(name)
    page.get_by_role("button", name=words["add"]).click()
    row = page.locator(f'tr[data-account="{name}"]')
    expect(row).to_have_attribute("data-status", "pending")
    expect(row).to_contain_text(words["pending"])
    code = row.locator("[data-code]").inner_text().strip()
    link = row.locator("[data-verification]").get_attribute("href")
    assert link is not None and link.endswith("/devicelogin")
    assert layout_problems(page) == []
    screenshot(page, f"service-accounts-pending-{lang}-{viewport['width']}")
    assert axe_violations(page) == []  # the form and the device code (the list page is
    # checked without notify mode in test_console_accessibility.py)

    # The emulator's sign-in page, as the service account user (its own certificate).
    sign_in_page = browser.new_context(ignore_https_errors=True).new_page()
    sign_in_page.goto(link)
    sign_in_page.locator('input[name="user_code"]').fill(code)
    sign_in_page.locator('input[name="user"]').fill(upn)
    sign_in_page.get_by_role("button", name="Sign in").click()
    expect(sign_in_page.locator("#out")).to_have_text("Signed in. You may close this page.")
    sign_in_page.context.close()

    # Reloading shows the status (no JavaScript needed).
    for _ in range(30):
        page.reload()
        if row.get_attribute("data-status") == "active":
            break
        page.wait_for_timeout(500)
    expect(row).to_have_attribute("data-status", "active")
    expect(row).to_contain_text(words["active"])
    expect(row).to_contain_text(upn)
    assert layout_problems(page) == []

    label = f"{words['remove']} {name}" if lang == "en" else f"{name} {words['remove'].lower()}"
    row.get_by_role("button", name=label).click()
    expect(page.locator("#confirm-text")).to_contain_text(name)
    assert layout_problems(page) == []
    page.locator("#confirm-button").click()
    expect(page.locator(".flash")).to_contain_text(words["removed"])
    expect(page.locator(f'tr[data-account="{name}"]')).to_have_count(0)
    context.close()
