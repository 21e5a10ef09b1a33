"""The CSV upload on "Groups and users" and the directory page, in Chromium (issue 12
parts 6 and 7). The directory page runs against an Entra directory in the Graph
emulator, configured as an administrator would (`[[directory]]` in the config file)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, expect

from tests.browser.helpers import new_context, sign_in
from tests.support.server import ServerProcess
from tests.support.teams import CLIENT_ID, CLIENT_SECRET, TENANT, EmulatorProcess

CONFIG = """
[[directory]]
kind = "entra"
default_group = "dirhq"
schedule_minutes = 0
"""


def test_csv_upload_dry_run_import_and_bad_lines(
    browser: Browser, server: ServerProcess, api: httpx.Client, tmp_path: Path
) -> None:
    assert api.post("/api/v1/groups", json={"id": "csvhq", "name": "CSV HQ"}).status_code == 201
    good = tmp_path / "users.csv"
    good.write_text(
        "id;display_name;group;extensions\ncsv-anna;Anna CSV;csvhq;4101\n"
        "csv-ben;Ben CSV;csvhq;4102\n",
        encoding="utf-8-sig",
    )
    context = new_context(browser, "de")
    page = sign_in(context, server)
    page.goto(server.url + "/console/groups#csv")
    expect(page.locator("#csv-dry")).to_be_checked()  # a dry run unless unticked
    page.locator("#csv-file").set_input_files(str(good))
    page.locator("#csv button[type=submit]").click()
    result = page.locator("#csv-result")
    expect(result).to_contain_text("Würde 2 anlegen, 0 ändern, 0 unverändert lassen.")
    expect(result.locator("tbody tr")).to_have_count(2)
    assert api.get("/api/v1/users/csv-anna").status_code == 404

    page.locator("#csv-file").set_input_files(str(good))
    page.locator("#csv-dry").uncheck()
    page.locator("#csv button[type=submit]").click()
    expect(page.locator("#csv-result")).to_contain_text("2 angelegt, 0 geändert, 0 unverändert.")
    expect(page.locator(".flash-ok")).to_contain_text("CSV-Datei importiert.")
    assert api.get("/api/v1/users/csv-anna").json()["extensions"] == ["4101"]

    bad = tmp_path / "bad.csv"
    bad.write_text(
        "id,display_name,group,extensions\ncsv-carl,Carl,nowhere,\ncsv-dora,Dora,csvhq,4101\n"
    )
    page.locator("#csv-file").set_input_files(str(bad))
    page.locator("#csv-dry").uncheck()
    page.locator("#csv button[type=submit]").click()
    problems = page.locator("#csv-result .problems li")
    expect(problems).to_have_count(2)  # in the reader's language, values as in the file
    expect(problems.nth(0)).to_have_text(
        "Zeile 2: Gruppe „nowhere“ gibt es nicht; legen Sie sie zuerst an"
    )
    expect(problems.nth(1)).to_have_text("Zeile 3: Nebenstelle „4101“ gehört Benutzer „csv-anna“")
    assert api.get("/api/v1/users/csv-carl").status_code == 404

    href = page.get_by_role("link", name="CSV exportieren").get_attribute("href")
    exported = page.request.get(server.url + str(href))  # the session's cookie, as a click
    assert exported.headers["content-type"].startswith("text/csv")
    assert "csv-anna,Anna CSV,csvhq,,,4101," in exported.text()
    context.close()

    context = new_context(browser, "en")  # the same file in the English console
    page = sign_in(context, server)
    page.goto(server.url + "/console/groups#csv")
    page.locator("#csv-file").set_input_files(str(bad))
    page.locator("#csv button[type=submit]").click()
    problems = page.locator("#csv-result .problems li")
    expect(problems.nth(0)).to_have_text("Line 2: group 'nowhere' does not exist; create it first")
    expect(problems.nth(1)).to_have_text("Line 3: extension '4101' belongs to user 'csv-anna'")
    context.close()


def test_the_directory_page_without_a_directory_explains_how(
    browser: Browser, server: ServerProcess
) -> None:
    context = new_context(browser, "en")
    page = sign_in(context, server)
    page.get_by_role("link", name="Directory").click()
    expect(page.locator("h2")).to_have_text("No directory is configured")
    expect(page.locator("main")).to_contain_text("docs/directory.md")
    context.close()


@pytest.fixture
def directory_server(tmp_path: Path, emulator: EmulatorProcess) -> Iterator[ServerProcess]:
    config = tmp_path / "presencebridge.toml"
    config.write_text(CONFIG)
    process = ServerProcess(
        tmp_path / "server",
        ("--config", str(config)),
        PRESENCEBRIDGE_GRAPH_URL=f"{emulator.base_url}/v1.0",
        PRESENCEBRIDGE_AUTHORITY=emulator.base_url,
        PRESENCEBRIDGE_CA_BUNDLE=str(emulator.ca_file),
        PRESENCEBRIDGE_TENANT_ID=TENANT,
        PRESENCEBRIDGE_CLIENT_ID=CLIENT_ID,
        PRESENCEBRIDGE_CLIENT_SECRET=CLIENT_SECRET,
    )
    process.start()
    with process.client() as client:
        assert client.post("/api/v1/groups", json={"id": "dirhq", "name": "HQ"}).status_code == 201
    yield process
    process.stop()


def test_the_directory_page_previews_syncs_and_forces(
    browser: Browser, directory_server: ServerProcess, emulator: EmulatorProcess
) -> None:
    for n in range(1, 6):
        body = {"id": f"dirpage-{n}", "displayName": f"Dir User {n}",
                "userPrincipalName": f"dir{n}@contoso.com"}  # fmt: skip
        emulator.post("/_emulator/directory/users", body)
    context = new_context(browser, "en")
    page = sign_in(context, directory_server)
    page.goto(directory_server.url + "/console/directory")
    card = page.locator("#dir-entra")
    expect(card).to_contain_text("Not run yet.")
    expect(card.locator("input[name=force]")).to_have_count(0)

    card.get_by_role("button", name="Preview").click()
    expect(page.locator(".flash-ok")).to_contain_text("Preview of entra ready")
    card = page.locator("#dir-entra")
    expect(card.locator("td[data-label=Create]")).to_have_text("5")
    card.locator("details.lines summary").click()
    expect(card.locator("details.lines li")).to_have_count(5)
    with directory_server.client() as api:
        assert api.get("/api/v1/users").json() == []

    card.get_by_role("button", name="Sync now").click()
    expect(page.locator(".flash-ok")).to_contain_text("Directory entra synced.")
    with directory_server.client() as api:
        assert len(api.get("/api/v1/users").json()) == 5

    with emulator.control() as client:
        for n in (1, 2):
            client.delete(f"/_emulator/directory/users/dirpage-{n}")
    page.locator("#dir-entra").get_by_role("button", name="Sync now").click()
    expect(page.locator(".flashes .flash-error")).to_contain_text("the run stopped")
    card = page.locator("#dir-entra")
    expect(card).to_contain_text("would disable 2 of 5 users")
    card.locator("input[name=force]").check()
    card.get_by_role("button", name="Sync now").click()
    expect(page.locator(".flash-ok")).to_contain_text("Directory entra synced.")
    expect(page.locator("#dir-entra td[data-label=Disable]")).to_have_text("2")
    expect(page.locator("#dir-entra")).to_contain_text("Forced")
    context.close()
