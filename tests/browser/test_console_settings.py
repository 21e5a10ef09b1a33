"""Group settings, groups, users and profile templates, administered in the console."""

from __future__ import annotations

import uuid

import httpx
from playwright.sync_api import Browser, expect

from tests.browser.conftest import Directory
from tests.browser.helpers import new_context, sign_in
from tests.support.server import ServerProcess
from tests.support.teams import EmulatorProcess
from tests.support.waiting import eventually


def test_a_mode_changed_in_the_console_takes_effect(
    browser: Browser,
    server: ServerProcess,
    api: httpx.Client,
    emulator: EmulatorProcess,
    directory: Directory,
) -> None:
    group = directory.group("Support", mode="off")
    user, teams_id = directory.user("Otto Mode", group)
    assert teams_id is not None
    context = new_context(browser)
    page = sign_in(context, server)
    page.goto(f"{server.url}/console/groups/{group}")
    page.get_by_label("Sync telephony status only").check()
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_role("status")).to_contain_text("Settings of Support saved.")
    expect(page.get_by_label("Sync telephony status only")).to_be_checked()
    settings = api.get(f"/api/v1/groups/{group}/settings").json()
    assert settings["teams_sync_mode"] == "telephony_only"
    assert api.get(f"/api/v1/users/{user}").json()["teams_sync_mode"] == "telephony_only"

    # The Teams side follows: a PBX call now shows in Teams (mode `off` would not write).
    call = {"user": user, "call_id": uuid.uuid4().hex, "state": "connected"}
    assert api.post("/api/v1/telephony/events", json=call).is_success
    eventually(lambda: emulator.shown(teams_id), lambda s: s == ("Busy", "InACall"), timeout=30)
    call["state"] = "ended"
    assert api.post("/api/v1/telephony/events", json=call).is_success
    context.close()


def test_invalid_settings_are_explained_next_to_the_field_and_nothing_is_saved(
    browser: Browser, server: ServerProcess, api: httpx.Client, directory: Directory
) -> None:
    group = directory.group("Advanced")
    context = new_context(browser)
    page = sign_in(context, server)
    page.goto(f"{server.url}/console/groups/{group}")
    page.get_by_label("Switch to the MicSync profile").check()
    page.get_by_label("Additional programs").fill("Discord; bad|name")
    page.get_by_label("Remember the Teams sign-in").check()
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.get_by_role("button", name="Save settings").click()
    assert answer.value.status == 422
    field = page.locator(".field", has=page.locator("#s-mic-list"))
    expect(field.locator(".field-error")).to_have_text(
        "Not a process name: bad|name. Separate names with commas or semicolons; "
        '* ? " < > | are not allowed.'
    )
    expect(page.locator("#s-mic-list")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#s-mic-list")).to_have_value("Discord; bad|name")  # kept as typed
    expect(page.locator("#s-remember")).to_be_checked()
    settings = api.get(f"/api/v1/groups/{group}/settings").json()
    assert settings["MicrophoneUsageSync.Enable"] == 0
    assert settings["remember_credentials"] is False

    page.get_by_label("Additional programs").fill("Discord; Slack.exe")
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_role("status").first).to_contain_text("saved")
    # Accepted, and said what counts (a warning, not a refusal).
    expect(page.locator(".flash-warn[role=status]")).to_contain_text("Slack.exe → slack")
    settings = api.get(f"/api/v1/groups/{group}/settings").json()
    assert settings["MicrophoneUsageSync.Enable"] == 1
    assert settings["MicrophoneUsageSync.ProcessWhitelist"] == "Discord,Slack.exe"
    # Enabled without the MicSync template: the console says why it does nothing.
    expect(page.get_by_role("note")).to_contain_text("MicSync is missing")
    context.close()


def test_office_networks_are_checked_and_saved_in_canonical_form(
    browser: Browser, server: ServerProcess, api: httpx.Client, directory: Directory
) -> None:
    group = directory.group("Hybrid")
    context = new_context(browser)
    page = sign_in(context, server)
    page.goto(f"{server.url}/console/groups/{group}")
    networks = page.get_by_label("Office networks (work location in Teams)")
    networks.fill("10.20.0.0/16; office-lan")
    with page.expect_response(lambda r: r.request.method == "POST") as answer:
        page.get_by_role("button", name="Save settings").click()
    assert answer.value.status == 422
    field = page.locator(".field", has=page.locator("#s-office-networks"))
    expect(field.locator(".field-error")).to_have_text(
        "Not a network in CIDR form: office-lan. Separate networks with commas or "
        "semicolons, e.g. 10.20.0.0/16; 2001:db8:5::/48."
    )
    expect(page.locator("#s-office-networks")).to_have_value("10.20.0.0/16; office-lan")
    assert (
        api.get(f"/api/v1/groups/{group}/settings").json()["teams_work_location_office_networks"]
        == ""
    )

    networks.fill("10.20.1.5/16; 2001:DB8:5::/48")
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_role("status")).to_contain_text("saved")
    canonical = "10.20.0.0/16, 2001:db8:5::/48"
    expect(page.locator("#s-office-networks")).to_have_value(canonical)
    settings = api.get(f"/api/v1/groups/{group}/settings").json()
    assert settings["teams_work_location_office_networks"] == canonical
    # This server syncs Teams with its application permission: no agent sets it.
    expect(page.get_by_role("note")).to_contain_text("only desktop agents in client-side")
    context.close()


def test_create_group_and_user_then_templates(
    browser: Browser, server: ServerProcess, api: httpx.Client
) -> None:
    tag = uuid.uuid4().hex[:6]
    context = new_context(browser)
    page = sign_in(context, server)
    page.get_by_role("navigation", name="Main menu").get_by_role(
        "link", name="Groups and users"
    ).click()

    page.get_by_label("Group ID").fill(f"bad id {tag}")
    page.locator("#g-name").fill("Hamburg")
    page.get_by_role("button", name="Create group").click()
    expect(page.locator("#g-id-error")).to_contain_text("Letters, digits")
    page.get_by_label("Group ID").fill(f"hamburg-{tag}")
    page.get_by_label("Teams sync mode").select_option("telephony_and_presence")
    page.get_by_role("button", name="Create group").click()
    expect(page.get_by_role("status")).to_contain_text("Group Hamburg created.")
    assert api.get(f"/api/v1/groups/hamburg-{tag}").json()["name"] == "Hamburg"

    # create_teams_profile_template makes the MS Teams template.
    page.get_by_label("Create the central profile template MS Teams").check()
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_role("status")).to_contain_text("Settings of Hamburg saved.")
    page.get_by_role("link", name="Profile templates").click()
    expect(page.locator("tbody th", has_text="MS Teams")).to_be_visible()
    expect(page.locator("tbody tr", has_text="MS Teams")).to_contain_text("On the phone (MS Teams)")

    page.get_by_role("button", name="Create the MicSync template").click()
    expect(page.get_by_role("status")).to_contain_text("Template MicSync added.")
    page.get_by_role("button", name="Deactivate MicSync").click()
    expect(page.get_by_role("status")).to_contain_text("Template MicSync deactivated.")
    templates = {t["name"]: t for t in api.get(f"/api/v1/groups/hamburg-{tag}/templates").json()}
    assert templates["MicSync"]["active"] is False and templates["MicSync"]["status"] == "busy"
    assert templates["MS Teams"]["active"] is True

    page.get_by_role("link", name="Edit MS Teams").click()
    page.get_by_label("Call forwarding (optional)").fill("voicemail")
    page.get_by_role("button", name="Save template").click()
    expect(page.get_by_role("status")).to_contain_text("Template MS Teams replaced.")
    template = next(
        t
        for t in api.get(f"/api/v1/groups/hamburg-{tag}/templates?lang=de").json()
        if t["name"] == "MS Teams"
    )
    assert template["call_forwarding"] == "voicemail"
    assert template["text"] == "Am Telefon (MS Teams)"  # the built-in text stays bilingual

    page.get_by_label("Name").fill("Kantine")
    page.get_by_label("Status").select_option("away")
    page.get_by_label("Presence text").fill("In der Kantine")
    page.get_by_role("button", name="Save template").click()
    expect(page.locator("tbody th", has_text="Kantine")).to_be_visible()

    page.get_by_role("navigation", name="Main menu").get_by_role(
        "link", name="Groups and users"
    ).click()
    page.get_by_label("User ID", exact=True).fill(f"hanna-{tag}")
    page.get_by_label("Display name").fill("Hanna Hamburg")
    page.locator("#u-group").select_option(f"hamburg-{tag}")
    page.get_by_role("button", name="Create user").click()
    expect(page.get_by_role("heading", name="Hanna Hamburg")).to_be_visible()
    profiles = [p["name"] for p in api.get(f"/api/v1/users/hanna-{tag}/profiles").json()]
    assert profiles == ["MS Teams", "Kantine", "Termin"]  # the inactive MicSync is not listed

    page.goto(f"{server.url}/console/groups")
    page.get_by_label("User ID", exact=True).fill(f"hanna-{tag}")
    page.get_by_label("Display name").fill("Hanna again")
    page.get_by_role("button", name="Create user").click()
    expect(page.locator("#u-id-error")).to_have_text("A user with this ID exists already.")
    context.close()


def test_sync_health_shows_budget_mode_and_latency(
    browser: Browser, server: ServerProcess, directory: Directory
) -> None:
    group = directory.group("Health")
    directory.user("Hugo Health", group)
    context = new_context(browser)
    page = sign_in(context, server)
    page.get_by_role("link", name="Sync health").click()
    expect(page.get_by_role("heading", name="Sync health", level=1)).to_be_visible()
    expect(page.locator(".stat", has_text="Read mode")).to_contain_text("Polling")
    expect(page.locator(".stat", has_text="Graph budget in use")).to_contain_text("/ 1,455")
    # The sparkline appears once the sampler has a point, the histograms once Graph answered.
    expect(page.locator("svg.spark polyline")).to_have_count(1, timeout=15_000)
    expect(page.locator("svg.bars").first).to_be_visible()
    expect(page.get_by_role("heading", name="Subscriptions")).to_be_visible()
    expect(page.get_by_role("heading", name="Recent errors and warnings")).to_be_visible()
    context.close()


def test_sync_health_explains_teams_sync_off(browser: Browser, plain_server: ServerProcess) -> None:
    context = new_context(browser, "de")
    page = sign_in(context, plain_server)
    page.goto(plain_server.url + "/console/sync")
    expect(page.get_by_role("heading", name="Teams-Abgleich aus")).to_be_visible()
    expect(page.locator("#sync-live")).to_contain_text("PRESENCEBRIDGE_CLIENT_SECRET")
    context.close()
