"""A directory source's rules edited in the console, in German, in Chromium (issue 12
part 5): a wrong rule is marked with the input kept, a preview shows what a run would do
with the rules as entered (nothing saved), "Speichern" makes the next sync use them,
and a reset brings back the configuration file's. Its own Graph emulator: the
package's is shared, and other tests count the people in its directory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.helpers import (
    DESKTOP,
    PHONE,
    layout_problems,
    new_context,
    screenshot,
    sign_in,
    tab_walk,
)
from tests.support.server import ServerProcess
from tests.support.teams import EmulatorProcess
from tests.sync.directory import directory_server, users

CONFIG = """
[[directory]]
kind = "entra"
default_group = "hq"
schedule_minutes = 0
"""


@pytest.fixture
def rules_server(tmp_path: Path) -> Iterator[tuple[ServerProcess, EmulatorProcess]]:
    """Three people in Entra ID, Bea in the directory group Vertrieb; the groups hq and
    sales in the hub; the file's rules put everyone in hq."""
    emulator = EmulatorProcess(tmp_path / "emulator" / "tls")
    emulator.start()
    emulator.post("/_emulator/directory/groups", {"id": "g-vertrieb", "displayName": "Vertrieb"})
    for n, name in enumerate(("Anna", "Bea", "Carl"), 1):
        body: dict[str, Any] = {"id": f"0000000{n}-cccc", "displayName": name,
                                "userPrincipalName": f"{name.lower()}@contoso.com"}  # fmt: skip
        if name == "Bea":
            body["groups"] = ["g-vertrieb"]
        emulator.post("/_emulator/directory/users", body)
    server = directory_server(tmp_path, emulator, CONFIG)
    yield server, emulator
    server.stop()
    emulator.stop()


def rules_source(server: ServerProcess) -> str:
    with server.client() as api:
        [entra] = api.get("/api/v1/admin/directory").json()["sources"]
        return str(entra["rules_source"])


def refused_without_a_condition(page: Page) -> None:
    """A group but no condition: refused, the rule marked, the choice kept."""
    page.locator("#rule-0-outcome").select_option("sales")
    page.get_by_role("button", name="Vorschau").click()
    expect(page.locator("#form-error")).to_have_text(
        "Keine Vorschau: Bitte korrigieren Sie die markierten Felder."
    )
    expect(page.locator("fieldset#rule-0")).to_have_class("rule invalid")
    expect(page.locator("#rule-0-error")).to_have_text(
        "Geben Sie eine Bedingung an: eine Verzeichnisgruppe, eine OU oder ein Attribut."
    )
    expect(page.locator("#rule-0-outcome")).to_have_value("sales")
    expect(page.locator("#preview")).to_have_count(0)


def previewed(page: Page, server: ServerProcess) -> None:
    """The rule completed and previewed: what a run would do, nothing saved or made."""
    page.locator("#rule-0-member_of").fill("Vertrieb")
    page.get_by_role("button", name="Vorschau").click()
    preview = page.locator("#preview")
    expect(preview).to_contain_text("Es wurde nichts geändert")
    expect(preview.locator("td[data-label=Anlegen]")).to_have_text("3")
    preview.locator("details.lines summary").click()
    expect(preview.locator("details.lines li")).to_contain_text(
        ["create anna@contoso.com (Anna, group hq)", "create bea@contoso.com (Bea, group sales)"]
    )
    expect(page.locator("#rule-0-member_of")).to_have_value("Vertrieb")  # still as entered
    assert users(server) == {} and rules_source(server) == "config"
    screenshot(page, "directory-rules-preview-de-1280x800")


def test_a_rule_edited_in_german_is_checked_previewed_and_saved(
    browser: Browser, rules_server: tuple[ServerProcess, EmulatorProcess]
) -> None:
    server, _emulator = rules_server
    context = new_context(browser, "de")
    page = sign_in(context, server)
    page.goto(server.url + "/console/directory")
    card = page.locator("#dir-entra")
    expect(card).to_contain_text("Regeln: aus der Konfigurationsdatei.")
    card.get_by_role("link", name="Regeln bearbeiten").click()
    expect(page.locator("h1")).to_have_text("Regeln von entra")
    expect(page.locator("#default_group")).to_have_value("hq")
    refused_without_a_condition(page)
    previewed(page, server)

    page.get_by_role("button", name="Speichern").click()
    expect(page.locator(".flash-ok")).to_contain_text(
        "Regeln von entra gespeichert: Der nächste Lauf verwendet sie."
    )
    expect(page.locator("#origin")).to_contain_text("Gespeichert am")
    expect(page.locator("#origin")).to_contain_text(", in der Konsole. Sie ersetzen die Regeln")
    expect(page.locator("#rule-0-member_of")).to_have_value("Vertrieb")
    assert rules_source(server) == "console"

    page.get_by_role("link", name="Verzeichnis").first.click()
    expect(page.locator("#dir-entra")).to_contain_text("Regeln: gespeichert in der Konsole (")
    page.locator("#dir-entra").get_by_role("button", name="Jetzt abgleichen").click()
    expect(page.locator(".flash-ok")).to_contain_text("Verzeichnis entra abgeglichen.")
    found = users(server)
    assert {u: found[u]["group"] for u in found} == {
        "anna@contoso.com": "hq",
        "bea@contoso.com": "sales",
        "carl@contoso.com": "hq",
    }

    page.goto(server.url + "/console/directory/entra/rules")
    page.get_by_role("button", name="Auf die Konfigurationsdatei zurücksetzen").click()
    expect(page.locator(".flash-ok")).to_contain_text(
        "Es gelten wieder die der Konfigurationsdatei"
    )
    expect(page.locator("#rule-0-member_of")).to_have_value("")
    assert rules_source(server) == "config"
    context.close()


def test_the_rules_page_fits_a_phone_and_the_keyboard_reaches_every_control(
    browser: Browser, rules_server: tuple[ServerProcess, EmulatorProcess]
) -> None:
    server, _emulator = rules_server
    with server.client() as api:
        body = {"rules": [{"ou": "OU=Vertrieb,OU=Mitarbeiter,DC=corp,DC=example",
                           "group": "sales"}], "default_group": "hq"}  # fmt: skip
        assert api.put("/api/v1/admin/directory/entra/rules", json=body).status_code == 200
    context = new_context(browser, "de")
    page = sign_in(context, server)  # the board of a hub without users is hidden on a phone
    page.set_viewport_size(PHONE)  # type: ignore[arg-type]
    page.goto(server.url + "/console/directory/entra/rules")
    expect(page.locator("#rule-0-ou")).to_have_value(
        "OU=Vertrieb,OU=Mitarbeiter,DC=corp,DC=example"
    )
    screenshot(page, "directory-rules-de-390x844")
    assert layout_problems(page) == []
    page.set_viewport_size(DESKTOP)  # type: ignore[arg-type]
    tab_walk(page)
    context.close()
