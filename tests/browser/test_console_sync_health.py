"""The sync page under Graph faults: rates per minute, throttling and server errors as one
line each with a count, the users whose writes fail or who hold their status; the user
page's last sync and why a user is not synced, in both languages."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, expect

from tests.browser.conftest import Directory
from tests.browser.helpers import PHONE, layout_problems, new_context, screenshot, sign_in
from tests.support.server import ServerProcess
from tests.support.teams import EmulatorProcess
from tests.support.waiting import eventually


@pytest.fixture
def faults(emulator: EmulatorProcess) -> Iterator[EmulatorProcess]:
    """The test injects faults; afterwards Graph answers normally again."""
    yield emulator
    emulator.post("/_emulator/faults", {"rate_429": 0, "rate_503": 0})


def call(api: httpx.Client, user: str, state: str, call_id: str) -> None:
    body = {"user": user, "call_id": call_id, "state": state}
    assert api.post("/api/v1/telephony/events", json=body).is_success


def test_throttling_server_errors_and_failing_users_show_on_the_sync_page(
    browser: Browser,
    server: ServerProcess,
    api: httpx.Client,
    directory: Directory,
    faults: EmulatorProcess,
) -> None:
    group = directory.group("Störung")
    hanna, hanna_teams = directory.user("Hanna Hand", group)
    fritz, _ = directory.user("Fritz Fehler", group)
    assert hanna_teams is not None
    # Hanna is on the phone; Teams shows it; then she sets Away by hand: held by the user.
    call(api, hanna, "connected", uuid.uuid4().hex)
    eventually(lambda: faults.shown(hanna_teams), lambda s: s == ("Busy", "InACall"), timeout=30)
    faults.preferred(hanna_teams, "Away", "Away")
    eventually(
        lambda: api.get(f"/api/v1/users/{hanna}/presence").json()["teams"]["held_by_user"],
        lambda held: held is True,
        timeout=20,
    )

    # ~30 % 429 and ~30 % 503: every request still gets through after its retries.
    settings = {"rate_429": 0.3, "rate_503": 0.3, "retry_after_seconds": 0.05, "seed": 18}
    faults.post("/_emulator/faults", settings)
    context = new_context(browser)
    page = sign_in(context, server)
    page.goto(server.url + "/console/sync")
    errors = page.locator("#errors li")
    throttled = errors.filter(has_text="429 Too Many Requests")
    server_errors = errors.filter(has_text="Graph server errors")
    expect(throttled.locator(".badge.warn").first).to_contain_text("times")  # refreshed live
    expect(server_errors.locator(".badge.warn").first).to_contain_text("times")
    total = page.locator("#rates tr.total")
    expect(total.locator(".badge.warn")).to_have_count(4)  # 429 and 5xx over 5 and 15 min
    expect(page.locator("#stat-rate")).to_contain_text("throttled (429)")
    expect(page.locator(f'#attention tr[data-user="{hanna}"]')).to_contain_text("Held by user")

    # Graph throttles every request: Fritz's write gives up after its attempts (each after
    # the 0.05 s Graph asks for) and he is listed, with the error.
    faults.post("/_emulator/faults", {"rate_429": 1.0, "retry_after_seconds": 0.05})
    call(api, fritz, "connected", uuid.uuid4().hex)
    fritz_row = page.locator(f'#attention tr[data-user="{fritz}"]')
    expect(fritz_row).to_contain_text("Writes fail")
    expect(fritz_row).to_contain_text("gave up after 8 attempts (429)")
    # Still one line per kind of trouble, however many requests it was.
    assert throttled.count() == 1 and server_errors.count() == 1
    expect(page.locator("#stat-attention .stat-value")).not_to_have_text("0")
    screenshot(page, "sync-faults-en-1280x800")
    assert not layout_problems(page)
    # The same in German on a phone: one line per storm, nothing cut off.
    phone = new_context(browser, "de", PHONE)
    german = sign_in(phone, server)
    german.goto(server.url + "/console/sync")
    expect(german.locator("#errors li").filter(has_text="Graph drosselt")).to_have_count(1)
    expect(german.locator(f'#attention tr[data-user="{fritz}"]')).to_contain_text("scheitert")
    screenshot(german, "sync-faults-de-390x844")
    assert not layout_problems(german)
    phone.close()

    page.goto(f"{server.url}/console/users/{fritz}")
    expect(page.locator("#sync-failing")).to_contain_text("(429)")
    faults.post("/_emulator/faults", {"rate_429": 0})
    page.goto(server.url + "/console/sync")
    # the retry went through: after his backoff, which grows with each refusal (up to a
    # minute), and the page's next refresh
    expect(fritz_row).to_have_count(0, timeout=120_000)
    page.goto(f"{server.url}/console/users/{fritz}")
    expect(page.locator("#sync-failing")).to_have_count(0)
    expect(page.locator("#last-sync")).not_to_contain_text("none")
    page.goto(f"{server.url}/console/users/{hanna}")
    expect(page.locator("#sync-held")).to_contain_text("set by hand")
    context.close()


@pytest.mark.parametrize(
    ("lang", "texts"),
    [
        (
            "en",
            {
                "plain": "No Teams user ID",
                "off": "The group's Teams sync mode is off.",
                "own": "The user's own Teams sync mode is off.",
                "never": "none since the server started",
            },
        ),
        (
            "de",
            {
                "plain": "Keine Teams-Benutzer-ID",
                "off": "Der Teams-Abgleichsmodus der Gruppe ist aus.",
                "own": "Der eigene Teams-Abgleichsmodus des Benutzers ist aus.",
                "never": "keiner seit dem Start des Servers",
            },
        ),
    ],
)
def test_the_user_page_says_why_a_user_is_not_synced(
    browser: Browser,
    server: ServerProcess,
    api: httpx.Client,
    directory: Directory,
    lang: str,
    texts: dict[str, str],
) -> None:
    synced = directory.group("Abgleich")
    off = directory.group("Ohne Abgleich", mode="off")
    free = directory.group("Frei", user_may_change=True)
    plain, _ = directory.user("Paul Plain", synced, teams=False)
    grouped, _ = directory.user("Gina Gruppe", off)
    chooser, _ = directory.user("Carl Chooser", free)
    body = {"teams_sync_mode": "off"}
    assert api.patch(f"/api/v1/users/{chooser}/settings", json=body).is_success
    reader, _ = directory.user("Rita Reader", synced)
    context = new_context(browser, lang)
    page = sign_in(context, server)
    for user, key in ((plain, "plain"), (grouped, "off"), (chooser, "own")):
        page.goto(f"{server.url}/console/users/{user}")
        expect(page.locator("#not-synced")).to_contain_text(texts[key])
        if key != "own":  # Carl may have been read in the moment before he turned it off
            expect(page.locator("#last-sync")).to_contain_text(texts["never"])
    page.goto(f"{server.url}/console/users/{reader}")
    expect(page.locator("#not-synced")).to_have_count(0)
    # The poller reads her within a round; the page then shows when.
    eventually(
        lambda: api.get(f"/api/v1/users/{reader}/presence").json()["teams"]["last_sync"],
        lambda at: at is not None,
        timeout=20,
    )
    page.reload()
    expect(page.locator("#last-sync")).not_to_contain_text(texts["never"])
    context.close()
