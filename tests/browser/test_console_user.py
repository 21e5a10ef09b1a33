"""The user page: My Profiles in order, appointments with their origin, recent changes."""

from __future__ import annotations

import httpx
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import Directory
from tests.browser.helpers import layout_problems, new_context, sign_in, tab_walk
from tests.support.server import ServerProcess
from tests.support.teams import EmulatorProcess
from tests.support.waiting import eventually


def own_order(api: httpx.Client, user: str) -> list[str]:
    return [
        p["name"] for p in api.get(f"/api/v1/users/{user}/profiles").json() if p["source"] == "own"
    ]


def add_profile(page: Page, name: str, status: str, text: str) -> None:
    page.get_by_label("Name", exact=True).fill(name)
    page.locator("#p-status").select_option(status)
    page.locator("#p-text").fill(text)
    page.get_by_role("button", name="Add profile").click()
    expect(page.get_by_role("status")).to_contain_text(f"Profile {name} added.")


def test_profiles_in_order_select_and_reorder(
    browser: Browser, server: ServerProcess, api: httpx.Client, directory: Directory
) -> None:
    group = directory.group("Profiles", create_teams_profile_template=True)
    user, _ = directory.user("Paula Profile", group, teams=False)
    context = new_context(browser)
    page = sign_in(context, server)
    # Found as an administrator finds one of many: the board skips drawing rows out of
    # view (content-visibility), and other tests' users may push this one down there.
    page.locator("#q").fill("Paula Profile")
    page.locator(f'#rows [data-user="{user}"] a.name').click()
    expect(page.get_by_role("heading", name="Paula Profile", level=1)).to_be_visible()

    add_profile(page, "Fokus", "dnd", "Bitte nicht stören")
    add_profile(page, "Mittag", "away", "Mittagspause")
    add_profile(page, "Homeoffice", "available", "Im Homeoffice")
    names = page.locator("#profile-list .profile-name")
    expect(names).to_have_count(5)  # three own, the MS Teams template, the built-in Termin
    assert own_order(api, user) == ["Fokus", "Mittag", "Homeoffice"]

    page.get_by_role("button", name="Move Homeoffice up").click()
    expect(page.get_by_role("status")).to_contain_text("Homeoffice moved.")
    assert own_order(api, user) == ["Fokus", "Homeoffice", "Mittag"]
    page.get_by_role("button", name="Move Fokus down").click()
    expect(page.get_by_role("status")).to_contain_text("Fokus moved.")
    assert own_order(api, user) == ["Homeoffice", "Fokus", "Mittag"]
    expect(page.get_by_role("button", name="Move Homeoffice up")).to_be_disabled()
    expect(page.get_by_role("button", name="Move Mittag down")).to_be_disabled()

    # Dragging does the same (PUT /profiles/order semantics).
    page.locator('#profile-list li[data-name="Mittag"]').drag_to(
        page.locator('#profile-list li[data-name="Homeoffice"]')
    )
    expect(page.get_by_role("status")).to_contain_text("Order saved.")
    assert own_order(api, user) == ["Mittag", "Homeoffice", "Fokus"]

    page.get_by_role("button", name="Select Fokus").click()
    expect(page.get_by_role("status")).to_contain_text("Fokus selected.")
    presence = api.get(f"/api/v1/users/{user}/presence").json()
    assert (presence["profile"], presence["status"]) == ("Fokus", "dnd")
    expect(page.locator(".now-status")).to_contain_text("Do not disturb")
    page.get_by_role("button", name="Clear the profile choice").click()
    expect(page.get_by_role("status")).to_contain_text("Profile choice cleared.")
    assert api.get(f"/api/v1/users/{user}/presence").json()["status"] == "available"

    page.get_by_role("button", name="Delete Mittag").click()
    # A second step, by keyboard: Cancel keeps it, the Delete button deletes.
    expect(page.get_by_role("heading", name="Delete profile?")).to_be_visible()
    expect(page.locator("#confirm-text")).to_contain_text("“Mittag”")
    tab_walk(page)  # every control reached by Tab, each with a visible focus ring
    assert layout_problems(page) == []
    page.get_by_role("link", name="Cancel").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="My Profiles")).to_be_visible()
    assert own_order(api, user) == ["Mittag", "Homeoffice", "Fokus"]
    page.get_by_role("button", name="Delete Mittag").click()
    page.get_by_role("button", name="Delete").focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_contain_text("Profile Mittag deleted.")
    assert own_order(api, user) == ["Homeoffice", "Fokus"]
    context.close()


def test_profile_name_conflict_is_shown_next_to_the_field(
    browser: Browser, server: ServerProcess, directory: Directory
) -> None:
    group = directory.group("Conflict")
    user, _ = directory.user("Conny Conflict", group, teams=False)
    context = new_context(browser)
    page = sign_in(context, server)
    page.goto(f"{server.url}/console/users/{user}")
    add_profile(page, "Fokus", "dnd", "Ruhe")
    page.get_by_label("Name", exact=True).fill("Fokus")
    page.locator("#p-text").fill("again")
    page.get_by_role("button", name="Add profile").click()
    expect(page.locator("#p-name-error")).to_contain_text("exists already")
    page.locator("#p-name").fill("")
    page.locator("#p-text").fill("x")
    page.locator("#p-color").evaluate("(el) => el.closest('form').noValidate = true")
    page.get_by_role("button", name="Add profile").click()
    expect(page.locator("#p-name-error")).to_have_text("Required.")
    context.close()


def test_appointments_with_origin_and_history_with_source(
    browser: Browser,
    server: ServerProcess,
    api: httpx.Client,
    emulator: EmulatorProcess,
    directory: Directory,
) -> None:
    group = directory.group("Termine")
    user, teams_id = directory.user("Theo Termin", group)
    assert teams_id is not None
    context = new_context(browser)
    page = sign_in(context, server)
    page.goto(f"{server.url}/console/users/{user}")
    expect(page.locator("#appointments")).to_contain_text("No appointments.")

    page.get_by_label("Subject").fill("Kundentermin")
    page.get_by_role("button", name="Add appointment").click()  # start now, end in an hour
    expect(page.get_by_role("status")).to_contain_text("Appointment Kundentermin added.")
    row = page.locator("#appointments tbody tr", has_text="Kundentermin")
    expect(row).to_contain_text("Manual")
    expect(row).to_contain_text("active")
    assert api.get(f"/api/v1/users/{user}/presence").json()["text"] == "Kundentermin"

    # An appointment the Teams sync creates shows its origin.
    emulator.client_presence(teams_id, "Busy", "InACall")
    eventually(
        lambda: [a["origin"] for a in api.get(f"/api/v1/users/{user}/appointments").json()],
        lambda origins: "teams" in origins,
        timeout=10,
    )
    page.reload()
    teams_row = page.locator("#appointments tbody tr", has_text="On the phone (MS Teams)")
    expect(teams_row.locator(".badge.origin-teams")).to_have_text("MS Teams")

    teams_row.get_by_role("button", name="Delete appointment On the phone (MS Teams)").click()
    expect(page.get_by_role("heading", name="Delete appointment?")).to_be_visible()
    expect(page.locator("#confirm-note")).to_contain_text("MS Teams made this appointment")
    page.get_by_role("link", name="Cancel").click()
    row.get_by_role("button", name="Delete appointment Kundentermin").click()
    expect(page.locator("#confirm-text")).to_contain_text("“Kundentermin”")
    expect(page.locator("#confirm-note")).to_have_count(0)
    page.get_by_role("button", name="Delete").click()
    expect(page.get_by_role("status")).to_contain_text("Appointment deleted.")
    expect(page.locator("#appointments tbody tr", has_text="Kundentermin")).to_have_count(0)

    history = page.locator("#history tbody")
    expect(history).to_contain_text("Appointment")  # the source of the change
    expect(history).to_contain_text("MS Teams")
    emulator.client_presence(teams_id, "Available", "Available")

    page.get_by_label("Start").fill("2020-01-01T10:00")
    page.get_by_label("End").fill("2020-01-01T11:00")
    page.get_by_label("Subject").fill("Vergangen")
    page.get_by_role("button", name="Add appointment").click()
    expect(page.locator("#a-end-error")).to_contain_text("would be over already")
    context.close()
