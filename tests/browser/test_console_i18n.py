"""German and English: Accept-Language picks, the switch overrides, everything is translated."""

from __future__ import annotations

from playwright.sync_api import Browser, expect

from tests.browser.conftest import Directory
from tests.browser.helpers import new_context, sign_in
from tests.support.server import ServerProcess


def test_german_labels_under_de(
    browser: Browser, server: ServerProcess, directory: Directory
) -> None:
    group = directory.group("Zentrale", mode="telephony_only")
    user, _ = directory.user("Grete Deutsch", group, teams=False)
    context = new_context(browser, "de")
    page = context.new_page()
    page.goto(server.url + "/")
    expect(page.locator("html")).to_have_attribute("lang", "de")
    expect(page.get_by_label("Admin-Token")).to_be_visible()
    expect(page.get_by_role("button", name="Anmelden")).to_be_visible()
    page.close()

    page = sign_in(context, server)
    expect(page.get_by_role("heading", name="Präsenzübersicht")).to_be_visible()
    expect(page.get_by_role("columnheader", name="Telefonie")).to_be_visible()
    expect(page.get_by_label("Nach Namen suchen")).to_be_visible()
    row = page.locator(f'#rows [data-user="{user}"]')
    expect(row.locator(".status-text")).to_have_text("Verfügbar")
    expect(row.locator(".phone-text")).to_have_text("Frei")
    expect(page.locator("#live-text")).to_have_text("Live")

    page.goto(f"{server.url}/console/groups/{group}")
    expect(page.get_by_role("heading", name="Präsenzmanagement", level=2)).to_be_visible()
    expect(page.get_by_label("Kein Abgleich")).not_to_be_checked()
    expect(page.get_by_label("Abgleich des Telefoniestatus")).to_be_checked()
    expect(page.get_by_label("Abgleich von Telefonie- und Präsenzstatus")).to_be_visible()
    expect(page.get_by_label("Benutzer darf ändern")).to_be_checked()
    expect(page.get_by_label("Anmeldedaten merken")).to_be_visible()
    expect(
        page.get_by_role(
            "group", name="Erweiterte Einstellungen: Präsenzerweiterung (Microphone Sync)"
        )
    ).to_be_visible()
    expect(page.get_by_role("button", name="Einstellungen speichern")).to_be_visible()

    page.goto(f"{server.url}/console/users/{user}")
    expect(page.get_by_role("heading", name="Meine Profile")).to_be_visible()
    expect(page.locator("#profile-list")).to_contain_text("Termin")
    expect(page.locator("#profile-list")).to_contain_text("Standard")
    expect(page.locator("#a-profile")).to_contain_text("Termin (Standard)")

    # The switch wins over Accept-Language, and stays.
    page.get_by_role("button", name="English").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("heading", name="My Profiles")).to_be_visible()
    expect(page).to_have_url(f"{server.url}/console/users/{user}")
    page.goto(server.url + "/")
    expect(page.get_by_role("heading", name="Presence board")).to_be_visible()
    page.get_by_role("button", name="Deutsch").click()
    expect(page.get_by_role("heading", name="Präsenzübersicht")).to_be_visible()
    context.close()


def test_presence_texts_come_in_the_console_language(
    browser: Browser, server: ServerProcess, directory: Directory
) -> None:
    group = directory.group("Texte")
    user, _ = directory.user("Tina Text", group, teams=False)
    for lang, text in (("de", "Verfügbar"), ("en", "Available")):
        context = new_context(browser, lang)
        page = sign_in(context, server)
        expect(page.locator(f'#rows [data-user="{user}"] .text')).to_have_text(text)
        context.close()
