"""The audit log in Chromium (issue 18), in German and English: a group setting changed
in the console is found on /console/audit, said in the reader's language, with the
time in local form, the group linked, and the filter narrowing the list."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser, expect

from tests.browser.conftest import Directory
from tests.browser.helpers import layout_problems, new_context, screenshot, sign_in
from tests.support.server import ServerProcess

WORDS = {
    "de": {
        "title": "Änderungsprotokoll",
        "what": "Gruppeneinstellungen geändert",
        "who": "administrator (Anmeldung an der Konsole)",
        "filter": "Filtern",
        "none": "Kein Eintrag passt zu den Filtern.",
    },
    "en": {
        "title": "Audit log",
        "what": "Group settings changed",
        "who": "administrator (console sign-in)",
        "filter": "Filter",
        "none": "No entry matches the filters.",
    },
}
# The time as the reader's language writes it ("04.12.2026, 14:03:09", "Dec 4, 2026, …").
DATES = {
    "de": re.compile(r"\d{2}\.\d{2}\.\d{4}, \d{2}:\d{2}:\d{2}"),
    "en": re.compile(r"[A-Z][a-z]{2} \d{1,2}, \d{4}, \d{1,2}:\d{2}:\d{2}"),
}


@pytest.mark.parametrize("lang", ["de", "en"])
def test_a_changed_group_setting_is_found_on_the_audit_page(
    browser: Browser, server: ServerProcess, directory: Directory, lang: str
) -> None:
    words = WORDS[lang]
    group = directory.group("Audit " + lang, mode="off")
    context = new_context(browser, lang)
    page = sign_in(context, server)
    page.goto(f"{server.url}/console/groups/{group}")
    page.locator("#s-mode-telephony_only").check()
    page.locator("form.settings-form button[type=submit]").click()
    expect(page.locator("#s-mode-telephony_only")).to_be_checked()

    page.get_by_role("navigation").get_by_role("link", name=words["title"]).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(words["title"])
    page.locator("#a-target").fill(group)
    page.locator("#a-action").select_option(label=words["what"])
    page.get_by_role("button", name=words["filter"]).click()
    rows = page.locator("#audit-table tbody tr")
    expect(rows).to_have_count(1)
    row = rows.first
    expect(row).to_contain_text(words["what"])
    expect(row).to_contain_text(words["who"])
    expect(row).to_contain_text("teams_sync_mode: off → telephony_only")
    expect(row.locator("time")).to_have_text(DATES[lang])
    expect(row.get_by_role("link", name=group)).to_have_attribute(
        "href", f"/console/groups/{group}"
    )
    # The page fits a desktop and a phone: nothing wider than its card, nothing overlaps.
    for width, height in ((1280, 800), (390, 844)):
        page.set_viewport_size({"width": width, "height": height})
        assert layout_problems(page) == [], (width, layout_problems(page))
        screenshot(page, f"audit-{lang}-{width}")
    page.set_viewport_size({"width": 1280, "height": 800})

    page.locator("#a-actor").fill("nobody-did-this")
    page.get_by_role("button", name=words["filter"]).click()
    expect(page.locator(".empty")).to_have_text(words["none"])
    context.close()
