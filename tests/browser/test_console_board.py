"""The presence board: live over the stream, filters, and 1,000 users."""

from __future__ import annotations

import csv
import io
import re
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, WebSocketRoute, expect

from presencebridge.web.pages import board
from tests.browser.conftest import Directory
from tests.browser.helpers import (
    DESKTOP,
    PHONE,
    SCREENSHOTS,
    new_context,
    screenshot,
    sign_in,
)
from tests.support.server import ADMIN_TOKEN, ServerProcess
from tests.support.teams import EmulatorProcess


def test_a_teams_call_appears_on_the_board_without_a_reload(
    browser: Browser, server: ServerProcess, emulator: EmulatorProcess, directory: Directory
) -> None:
    group = directory.group("Vertrieb")
    user, teams_id = directory.user("Carla Teams", group)
    assert teams_id is not None
    context = new_context(browser)
    page = sign_in(context, server)
    row = page.locator(f'#rows [data-user="{user}"]')
    expect(row.locator(".phone-text")).to_have_text("Idle")
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    page.evaluate("() => { window.__sameDocument = true; }")

    emulator.client_presence(teams_id, "Busy", "InACall")  # Carla's Teams client joins a call

    expect(row.locator(".phone-text")).to_have_text("On the phone (MS Teams)")
    expect(row.locator(".c-phone")).to_have_class("c-phone on")
    expect(row.locator(".teams-text")).to_have_text("Busy · In a call")
    expect(row.locator(".status-text")).to_have_text("Busy")
    expect(row.locator(".text")).to_have_text("On the phone (MS Teams)")
    assert page.evaluate("() => window.__sameDocument === true"), "the page was reloaded"

    emulator.client_presence(teams_id, "Available", "Available")
    expect(row.locator(".phone-text")).to_have_text("Idle")
    context.close()


def test_filter_by_status_and_group_and_search_by_name(
    browser: Browser, server: ServerProcess, api: httpx.Client, directory: Directory
) -> None:
    group = directory.group("Filter")
    other = directory.group("Andere")
    anna, _ = directory.user("Änne Filter", group, teams=False)
    bert, _ = directory.user("Bert Filter", group, teams=False)
    carl, _ = directory.user("Carl Filter", other, teams=False)
    call = {"user": bert, "call_id": uuid.uuid4().hex, "state": "connected"}
    assert api.post("/api/v1/telephony/events", json=call).is_success
    context = new_context(browser)
    page = sign_in(context, server)
    rows = page.locator("#rows .board-row:visible")

    page.locator("#f-group").select_option(group)
    expect(rows).to_have_count(2)
    page.locator("#f-status").select_option("phone")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-user", bert)
    page.locator("#f-status").select_option("")
    page.locator("#f-group").select_option("")
    page.locator("#q").fill("anne filter")  # accents and case do not matter
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-user", anna)
    assert "q=anne+filter" in page.url  # the filter is kept in the address

    page.reload()
    expect(page.locator("#q")).to_have_value("anne filter")
    expect(rows).to_have_count(1)
    page.locator("#q").fill("Filter")
    expect(rows).to_have_count(3)
    expect(page.locator(f'#rows [data-user="{carl}"] .c-group')).to_have_text("Andere")

    # A user created while the board is open appears, with name and group.
    dora, _ = directory.user("Dora Filter", other, teams=False)
    expect(rows).to_have_count(4)
    expect(page.locator(f'#rows [data-user="{dora}"] .name')).to_have_text("Dora Filter")
    context.close()


def test_a_deleted_user_leaves_the_open_board_without_a_reload(
    browser: Browser, server: ServerProcess, api: httpx.Client, directory: Directory
) -> None:
    group = directory.group("Weg")
    stays, _ = directory.user("Bleibt Hier", group, teams=False)
    goes, _ = directory.user("Geht Weg", group, teams=False)
    context = new_context(browser)
    page = sign_in(context, server)
    page.locator("#f-group").select_option(group)
    rows = page.locator("#rows .board-row:visible")
    expect(rows).to_have_count(2)
    page.evaluate("() => { window.__sameDocument = true; }")

    assert api.delete(f"/api/v1/users/{goes}").status_code == 204

    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-user", stays)
    expect(page.locator(f'#rows [data-user="{goes}"]')).to_have_count(0)
    assert page.evaluate("() => window.__sameDocument === true"), "the page was reloaded"
    context.close()


def test_a_thousand_users_are_patched_in_place_and_batched_per_frame(
    browser: Browser, plain_server: ServerProcess
) -> None:
    token_headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    tag = uuid.uuid4().hex[:6]
    with plain_server.client() as api:
        body = {"id": f"big-{tag}", "name": "Big office"}
        assert api.post("/api/v1/groups", json=body).status_code == 201

    def each(batch: range, make: object) -> None:
        with httpx.Client(base_url=plain_server.url, headers=token_headers, timeout=10) as client:
            for i in batch:
                response = make(client, i)  # type: ignore[operator]
                assert response.is_success, response.text

    def run(make: object) -> None:
        with ThreadPoolExecutor(8) as pool:
            list(
                pool.map(lambda b: each(b, make), [range(i, i + 125) for i in range(0, 1000, 125)])
            )

    run(
        lambda c, i: c.post(
            "/api/v1/users",
            json={"id": f"u{i:04d}-{tag}", "display_name": f"User {i:04d}", "group": f"big-{tag}"},
        )
    )
    context = new_context(browser)
    page = sign_in(context, plain_server)
    page.locator("#f-group").select_option(f"big-{tag}")
    expect(page.locator("#count")).to_have_text(re.compile(r"^1,000 of [\d,]+ users shown$"))
    page.evaluate(
        """() => {
        document.querySelectorAll('#rows .board-row').forEach((row) => { row.__original = true; });
      }"""
    )
    call = uuid.uuid4().hex
    run(
        lambda c, i: c.post(
            "/api/v1/telephony/events",
            json={"user": f"u{i:04d}-{tag}", "call_id": call, "state": "connected"},
        )
    )
    page.locator("#f-status").select_option("phone")
    expect(page.locator("#count")).to_have_text(re.compile(r"^1,000 of "), timeout=20_000)
    stats = page.evaluate("() => window.pbBoard")
    same_rows = page.evaluate(
        "() => [...document.querySelectorAll('#rows .board-row')].every((r) => r.__original)"
    )
    context.close()
    assert same_rows, "rows were rebuilt instead of patched"
    assert stats["frames"] < stats["messages"], "updates were not batched per frame"
    # How fast and how smoothly is a benchmark's question, not a test's: a busy machine
    # makes any bound here fail for reasons the product does not control.


# -- the board at 1,000+ users (issue 18) ---------------------------------------------------------

BIG = 1_050
PAGE_SIZE = 100
# People whose names the search must find however they are typed.
NAMED = [("Jürgen Müller", "juergen"), ("Jürgen Schulz", "js"), ("Anna Müllerschön", "anna-ms")]


@dataclass(frozen=True)
class BigOffice:
    group: str
    small: str  # a group of 120, for the group page's member list
    users: dict[str, str]  # user id -> display name
    small_users: set[str]


def _import(api: httpx.Client, lines: list[str]) -> None:
    text = "id,display_name,group,teams_user_id,email,extensions,numbers\n" + "\n".join(lines)
    answer = api.post(
        "/api/v1/admin/users/import",
        params={"dry_run": "false"},
        content=text.encode(),
        headers={"Content-Type": "text/csv"},
    )
    assert answer.status_code == 200, answer.text


@pytest.fixture(scope="module")
def big_office(api: httpx.Client, directory_module: Directory) -> BigOffice:
    """1,050 users in one group (made by one CSV import), and a group of 120."""
    tag = uuid.uuid4().hex[:6]
    group = directory_module.group(f"Großbüro {tag}", mode="off")
    small = directory_module.group(f"Kleinbüro {tag}", mode="off")
    users = {f"{key}-{tag}": name for name, key in NAMED}
    for i in range(BIG - len(NAMED)):
        users[f"p{i:04d}-{tag}"] = f"Person {i:04d} Beispiel"
    small_users = {f"s{i:03d}-{tag}" for i in range(120)}
    lines = [f'{uid},"{name}",{group},,,,' for uid, name in users.items()]
    lines += [f"{uid},Klein {uid},{small},,,," for uid in sorted(small_users)]
    for start in range(0, len(lines), 500):  # the request body's limit is 64 KiB
        _import(api, lines[start : start + 500])
    return BigOffice(group, small, users, small_users)


@pytest.fixture(scope="module")
def directory_module(api: httpx.Client, emulator: EmulatorProcess) -> Directory:
    return Directory(api, emulator)


def _visible_ids(page: Page) -> list[str]:
    ids: list[str] = page.eval_on_selector_all(
        "#rows .board-row:not([hidden])", "rows => rows.map((r) => r.dataset.user)"
    )
    return ids


def _sorted_names(office: BigOffice) -> list[str]:
    """The board's name order: the collator's, which ignores case and accents."""
    return sorted(office.users, key=lambda u: (board.fold(office.users[u]), u))


@pytest.mark.parametrize("lang", ["en", "de"])
@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280", "390"])
def test_a_board_of_a_thousand_users_pages_sorts_finds_and_exports(
    browser: Browser,
    server: ServerProcess,
    big_office: BigOffice,
    lang: str,
    viewport: dict[str, int],
) -> None:
    office = big_office
    context = new_context(browser, lang, viewport)
    page = sign_in(context, server)
    page.goto(f"{server.url}/?group={office.group}")
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    total = "1,050" if lang == "en" else "1.050"
    expect(page.locator("#count")).to_contain_text(total)
    rows = page.locator("#rows .board-row:visible")
    expect(rows).to_have_count(PAGE_SIZE)
    pages_text = "Page 1 of 11" if lang == "en" else "Seite 1 von 11"
    expect(page.locator("#page-text")).to_have_text(pages_text)
    by_name = _sorted_names(office)
    assert _visible_ids(page) == by_name[:PAGE_SIZE]

    # Scrolled far down, the filters (and on a wide screen the column headers) stay in view.
    page.mouse.wheel(0, 4000)
    page.wait_for_function("() => window.scrollY > 2000")
    filters = page.locator("#filters").bounding_box()
    assert filters is not None and 0 <= filters["y"] <= 1, filters
    if viewport is DESKTOP:
        head = page.locator("#board-head").bounding_box()
        assert head is not None
        assert filters["y"] + filters["height"] - 1 <= head["y"] <= filters["height"] + 2, head
    # The window as it is (not the whole page): the filters and headers on top of row ~50.
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"board-1050-scrolled-{lang}-{viewport['width']}.png"))

    # Sort by name, descending: by the column header (keyboard: it is a button), or on a
    # phone, where the headers are not shown, by the sort fields.
    if viewport is DESKTOP:
        header = page.locator('#board-head [role=columnheader][data-sort="name"]')
        header.locator("button").focus()
        page.keyboard.press("Enter")
        expect(header).to_have_attribute("aria-sort", "descending")
    else:
        page.locator("#f-dir").select_option("desc")
    expect(rows.first).to_have_attribute("data-user", by_name[-1])
    assert _visible_ids(page) == list(reversed(by_name))[:PAGE_SIZE]

    # The next page shows the next hundred.
    page.locator("#next").click()
    expect(page.locator("#page-text")).to_have_text(pages_text.replace("1", "2", 1))
    expect(rows.first).to_have_attribute("data-user", list(reversed(by_name))[PAGE_SIZE])
    assert "page=2" in page.url
    page.locator("#prev").click()
    expect(rows.first).to_have_attribute("data-user", by_name[-1])

    # Sorted by group, the status, since: every column sorts (here: the status, ascending).
    if viewport is DESKTOP:
        page.locator('#board-head button[data-sort="status"]').click()
        status = page.locator('#board-head [role=columnheader][data-sort="status"]')
        expect(status).to_have_attribute("aria-sort", "ascending")
        name = page.locator('#board-head [role=columnheader][data-sort="name"]')
        expect(name).not_to_have_attribute("aria-sort", re.compile("."))
        # Everyone here is available: equal statuses keep the name order, A to Z.
        expect(rows.first).to_have_attribute("data-user", by_name[0])

    # Search: last name first with a comma, parts of names, no umlauts: all find Jürgen.
    juergen = next(u for u, n in office.users.items() if n == "Jürgen Müller")
    for query in ("Müller, Jürgen", "jürgen müll", "JURGEN MULLER"):
        page.locator("#q").fill(query)
        expect(rows).to_have_count(1)
        expect(rows.first).to_have_attribute("data-user", juergen)
    page.locator("#q").fill("Muller")  # also Anna Müllerschön, and nobody else
    expect(rows).to_have_count(2)
    assert set(_visible_ids(page)) == {juergen, next(u for u in office.users if "anna" in u)}
    expect(page.locator("#pager")).to_be_hidden()
    screenshot(page, f"board-1050-search-{lang}-{viewport['width']}")

    # The export holds what the filter shows: UTF-8 with BOM, ; in German, , in English.
    href = page.locator("#export").get_attribute("href")
    assert href is not None and "q=Muller" in href
    shown = _export(page, lang)
    assert {r[0] for r in shown[1:]} == set(_visible_ids(page))
    assert {r[1] for r in shown[1:]} == {"Jürgen Müller", "Anna Müllerschön"}
    page.locator("#q").fill("")
    expect(rows).to_have_count(PAGE_SIZE)
    href = page.locator("#export").get_attribute("href")
    assert href == f"/console/board.csv?group={office.group}"
    everyone = _export(page, lang)
    assert [r[0] for r in everyone[1:]] == by_name  # by name, every page
    assert everyone[0][:4] == (
        ["User ID", "Name", "Group", "Status"]
        if lang == "en"
        else ["Benutzer-ID", "Name", "Gruppe", "Status"]
    )
    context.close()


def _export(page: Page, lang: str) -> list[list[str]]:
    """Clicks "Export CSV" and reads the file the browser saved."""
    with page.expect_download() as download:
        page.locator("#export").click()
    assert download.value.suggested_filename == "board.csv"
    path = download.value.path()
    body = path.read_bytes()
    assert body.startswith(b"\xef\xbb\xbf"), body[:20]
    text = body[3:].decode("utf-8")
    delimiter = ";" if lang == "de" else ","
    assert text.splitlines()[0].count(delimiter) == 8
    return list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))


# -- statuses: a shape each, a colour each, and the text ------------------------------------------


def _contrast(colour: str) -> float:
    """WCAG contrast of `#rrggbb` against white."""
    channels = [int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    luminance = 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    return 1.05 / (luminance + 0.05)


@pytest.mark.parametrize("lang", ["en", "de"])
def test_busy_and_do_not_disturb_differ_in_shape_and_colour_and_say_so_in_text(
    browser: Browser, server: ServerProcess, api: httpx.Client, directory: Directory, lang: str
) -> None:
    group = directory.group("Formen", mode="off")
    people = {}
    for status in ("available", "busy", "dnd", "away", "offline"):
        user, _ = directory.user(f"Form {status}", group, teams=False)
        profile = {"name": f"P {status}", "status": status, "text": status, "color": "#c4314b"}
        assert api.post(f"/api/v1/users/{user}/profiles", json=profile).status_code == 201
        assert api.put(f"/api/v1/users/{user}/profile", json={"name": f"P {status}"}).is_success
        people[status] = user
    context = new_context(browser, lang)
    page = sign_in(context, server)
    page.goto(f"{server.url}/?group={group}")
    words = {
        "en": {"busy": "Busy", "dnd": "Do not disturb"},
        "de": {"busy": "Beschäftigt", "dnd": "Nicht stören"},
    }[lang]
    shapes = {}
    for status, user in people.items():
        cell = page.locator(f'#rows [data-user="{user}"] .c-status')
        expect(cell).to_have_attribute("data-status", status)
        icon = cell.locator("svg.status-icon")
        expect(icon).to_have_attribute("aria-hidden", "true")  # the text says it
        href = icon.locator("use").get_attribute("href")
        assert href == f"#st-{status}"
        shapes[status] = page.eval_on_selector(
            href,
            """(symbol) => ({
                shapes: [...symbol.children].map((c) => c.tagName).join(","),
                geometry: [...symbol.children].map((c) => c.getAttribute("d") || "").join("|"),
                fill: symbol.querySelector("circle").getAttribute("fill"),
                stroke: symbol.querySelector("circle").getAttribute("stroke"),
            })""",
        )
        if status in words:
            expect(cell.locator(".status-text")).to_have_text(words[status])
    # Five statuses, five shapes and five colours: the profile's own colour (the same
    # red for all five here) does not decide the dot.
    assert len({(s["shapes"], s["geometry"]) for s in shapes.values()}) == 5, shapes
    assert shapes["busy"]["shapes"] == "circle"  # a solid dot
    assert shapes["dnd"]["shapes"] == "circle,rect"  # a dot with a bar
    colours = {s: v["stroke"] if v["fill"] == "#fff" else v["fill"] for s, v in shapes.items()}
    assert len(set(colours.values())) == 5, colours
    assert all(_contrast(c) >= 3 for c in colours.values()), colours
    screenshot(page, f"board-statuses-{lang}-1280")
    context.close()


# -- stale: Graph fails, or the stream is down ----------------------------------------------------


@pytest.fixture
def graph_fails(emulator: EmulatorProcess) -> Iterator[Any]:
    def fail(on: bool) -> None:
        emulator.post("/_emulator/faults", {"rate_503": 1.0 if on else 0.0, "rate_429": 0.0})

    yield fail
    fail(False)


@pytest.mark.parametrize("lang", ["en", "de"])
def test_the_board_is_marked_stale_while_teams_cannot_be_read(
    browser: Browser,
    server: ServerProcess,
    emulator: EmulatorProcess,
    directory: Directory,
    graph_fails: Any,
    lang: str,
) -> None:
    group = directory.group("Ausfall")
    user, teams_id = directory.user("Grete Ausfall", group)
    assert teams_id is not None
    emulator.client_presence(teams_id, "Busy", "InACall")
    context = new_context(browser, lang)
    page = sign_in(context, server)
    page.goto(f"{server.url}/?group={group}")
    row = page.locator(f'#rows [data-user="{user}"]')
    expect(row.locator(".phone-text")).to_contain_text("MS Teams")
    banner = page.locator("#stale")
    expect(banner).to_be_hidden()
    expect(page.locator("#board")).not_to_have_class(re.compile("teams-stale"))

    graph_fails(True)
    words = "Microsoft Teams cannot be read" if lang == "en" else "Teams kann gerade nicht"
    expect(banner).to_be_visible(timeout=60_000)
    expect(banner).to_contain_text(words)
    expect(page.locator("#board")).to_have_class(re.compile("teams-stale"))
    expect(row).to_have_class(re.compile("synced"))
    assert float(row.evaluate("(r) => getComputedStyle(r).opacity")) < 1
    screenshot(page, f"board-stale-teams-{lang}-1280")

    graph_fails(False)
    expect(banner).to_be_hidden(timeout=90_000)
    expect(page.locator("#board")).not_to_have_class(re.compile("teams-stale"))
    assert float(row.evaluate("(r) => getComputedStyle(r).opacity")) == 1
    context.close()


def test_the_board_is_marked_stale_while_its_stream_is_down(
    browser: Browser, server: ServerProcess, directory: Directory
) -> None:
    group = directory.group("Leitung")
    user, _ = directory.user("Lena Leitung", group, teams=False)
    context = new_context(browser, "de")
    down = {"now": False}
    sockets: list[WebSocketRoute] = []

    def stream(ws: WebSocketRoute) -> None:
        if down["now"]:
            ws.close()
            return
        ws.connect_to_server()
        sockets.append(ws)

    context.route_web_socket(re.compile(r"/console/stream"), stream)
    page = sign_in(context, server)
    page.goto(f"{server.url}/?group={group}")
    row = page.locator(f'#rows [data-user="{user}"]')
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    expect(page.locator("#stale")).to_be_hidden()

    down["now"] = True
    sockets[-1].close()
    expect(page.locator("#stale")).to_be_visible()
    expect(page.locator("#stale")).to_contain_text("Live-Verbindung ist unterbrochen")
    expect(page.locator("#board")).to_have_class(re.compile("stream-stale"))
    assert float(row.evaluate("(r) => getComputedStyle(r).opacity")) < 1
    screenshot(page, "board-stale-stream-de-1280")

    down["now"] = False
    expect(page.locator("#live")).to_have_attribute("data-state", "live")
    expect(page.locator("#stale")).to_be_hidden()
    expect(page.locator("#board")).not_to_have_class(re.compile("stream-stale"))
    context.close()


# -- status since ------------------------------------------------------------------------------


def test_the_board_says_how_long_someone_has_had_their_status(
    browser: Browser, server: ServerProcess, api: httpx.Client, directory: Directory
) -> None:
    group = directory.group("Dauer", mode="off")
    user, _ = directory.user("Dora Dauer", group, teams=False)
    profile = {"name": "Weg", "status": "away", "text": "Weg", "color": "#986f0b"}
    assert api.post(f"/api/v1/users/{user}/profiles", json=profile).status_code == 201
    assert api.put(f"/api/v1/users/{user}/profile", json={"name": "Weg"}).is_success
    for lang, fresh, later in (
        ("en", "for less than a minute", "for 12 min"),
        ("de", "seit unter 1 Min.", "seit 12 Min."),
    ):
        context = new_context(browser, lang)
        page = sign_in(context, server)
        page.goto(f"{server.url}/?group={group}")
        since = page.locator(f'#rows [data-user="{user}"] .since')
        if lang == "en":
            expect(since).to_have_text(fresh)
            # The hub's clock moves on 12 minutes; a new page counts against it.
            assert api.post("/api/v1/admin/clock", json={"advance_seconds": 12 * 60}).is_success
            page.reload()
        expect(since).to_have_text(later)
        context.close()


# -- the group page lists every member -----------------------------------------------------------


@pytest.mark.parametrize("lang", ["en", "de"])
@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["1280", "390"])
def test_the_group_page_lists_every_member_page_by_page(
    browser: Browser,
    server: ServerProcess,
    big_office: BigOffice,
    lang: str,
    viewport: dict[str, int],
) -> None:
    context = new_context(browser, lang, viewport)
    page = sign_in(context, server)
    page.goto(f"{server.url}/console/groups/{big_office.small}")
    seen: list[str] = []
    sizes = []
    next_link = page.locator("#members a[rel=next]")
    while True:
        ids = page.eval_on_selector_all(
            "#members tbody tr", "rows => rows.map((r) => r.dataset.user)"
        )
        sizes.append(len(ids))
        seen.extend(ids)
        if len(sizes) == 1:
            screenshot(page, f"group-members-{lang}-{viewport['width']}")
        if next_link.count() == 0:
            break
        next_link.click()
        expect(page).to_have_url(re.compile(rf"members={len(sizes) + 1}"))
    assert sizes == [50, 50, 20]
    assert sorted(seen) == sorted(big_office.small_users)  # every member, each once
    words = "Members 101–120 of 120" if lang == "en" else "Mitglieder 101–120 von 120"
    expect(page.locator("#members-range")).to_contain_text(words)
    page.locator("#members a[rel=prev]").click()
    expect(page).to_have_url(re.compile(r"members=2"))
    context.close()


@pytest.mark.parametrize("lang", ["en", "de"])
def test_the_users_export_opens_in_excel_and_imports_again_unchanged(
    browser: Browser, server: ServerProcess, api: httpx.Client, big_office: BigOffice, lang: str
) -> None:
    """users.csv (administrators): every field, UTF-8 with BOM, ; in German; the import
    takes the file back as it is and finds nothing to change."""
    context = new_context(browser, lang)
    page = sign_in(context, server)
    page.goto(f"{server.url}/console/groups")
    with page.expect_download() as download:
        page.locator('a[href="/console/users.csv"]').click()
    body = download.value.path().read_bytes()
    context.close()
    assert body.startswith(b"\xef\xbb\xbf")
    delimiter = ";" if lang == "de" else ","
    lines = list(csv.reader(io.StringIO(body[3:].decode("utf-8"), newline=""), delimiter=delimiter))
    assert lines[0] == [
        "id", "display_name", "group", "teams_user_id", "email", "extensions", "numbers",
    ]  # fmt: skip
    exported = {line[0]: line[1] for line in lines[1:]}
    assert {u: exported[u] for u in big_office.users} == big_office.users  # umlauts intact
    # The file as saved, cut to its first 400 users (the request body's limit is 64 KiB).
    first = b"\r\n".join(body.split(b"\r\n")[:401]) + b"\r\n"
    answer = api.post(
        "/api/v1/admin/users/import",
        params={"dry_run": "true"},
        content=first,
        headers={"Content-Type": "text/csv"},
    )
    assert answer.status_code == 200, answer.text
    plan = answer.json()
    assert (plan["create"], plan["update"]) == (0, 0), plan
    assert plan["unchanged"] == 400


def test_the_board_export_keeps_excel_from_running_names_as_formulas(
    browser: Browser, server: ServerProcess, api: httpx.Client, directory: Directory
) -> None:
    group = directory.group("Formeln", mode="off")
    user = f"formel-{uuid.uuid4().hex[:6]}"
    body = {"id": user, "display_name": "=HYPERLINK(1) Formel", "group": group}
    assert api.post("/api/v1/users", json=body).status_code == 201
    context = new_context(browser)
    page = sign_in(context, server)
    page.goto(f"{server.url}/?group={group}")
    expect(page.locator(f'#rows [data-user="{user}"] .name')).to_have_text("=HYPERLINK(1) Formel")
    rows = _export(page, "en")
    context.close()
    assert [r[:2] for r in rows[1:]] == [[user, "'=HYPERLINK(1) Formel"]]
