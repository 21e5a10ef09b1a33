"""The console over plain HTTP: session cookie, CSRF, the board's stream, languages.

The browser tests (tests/browser) drive the same pages in Chromium; these check
what a browser hides: cookie flags, status codes, restarts, the catalogues.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po
from prometheus_client import CollectorRegistry, Histogram
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from presencebridge.core import usercsv
from presencebridge.web import health, i18n, labels
from tests.support.server import ADMIN_TOKEN, ServerProcess, make_user, receive

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf(page: httpx.Response) -> str:
    found = CSRF.search(page.text)
    assert found, page.text[:500]
    return found.group(1)


@contextmanager
def signed_in(server: ServerProcess) -> Iterator[httpx.Client]:
    """An httpx client holding a console session (cookies), signed in through the form."""
    with httpx.Client(base_url=server.url, timeout=10) as client:
        token = csrf(client.get("/console/login"))
        answer = client.post("/console/login", data={"token": ADMIN_TOKEN, "csrf_token": token})
        assert answer.status_code == 303 and answer.headers["location"] == "/", answer.text
        yield client


@pytest.fixture
def console(server: ServerProcess) -> Iterator[httpx.Client]:
    with signed_in(server) as client:
        yield client


def test_sign_in_sets_a_lax_http_only_cookie_and_checks_csrf(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        first = client.get("/")
        assert first.status_code == 303 and first.headers["location"] == "/console/login"
        login = client.get("/console/login")
        cookie = login.headers["set-cookie"]
        assert cookie.startswith("pb_console=")
        assert "httponly" in cookie.lower() and "samesite=lax" in cookie.lower()
        assert "path=/" in cookie.lower()
        assert login.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in login.headers["content-security-policy"]

        no_csrf = client.post("/console/login", data={"token": ADMIN_TOKEN})
        assert no_csrf.status_code == 403 and "without its security token" in no_csrf.text
        wrong = client.post("/console/login", data={"token": "nope", "csrf_token": csrf(login)})
        assert wrong.status_code == 401
        assert client.get("/console/groups").status_code == 303  # still not signed in

        right = client.post(
            "/console/login", data={"token": ADMIN_TOKEN, "csrf_token": csrf(login)}
        )
        assert right.status_code == 303
        board = client.get("/")
        assert board.status_code == 200 and 'id="board"' in board.text
        assert ADMIN_TOKEN not in board.text  # the page never carries the admin token
        assert csrf(board) != csrf(login)  # a new CSRF token with the sign-in

        # Open redirects are not possible through `next`.
        for target in ("//evil.example/", "https://evil.example/", "/\\evil.example"):
            token = csrf(client.get("/"))  # each sign-in makes a new one
            answer = client.post(
                "/console/login", data={"token": ADMIN_TOKEN, "csrf_token": token, "next": target}
            )
            assert answer.headers["location"] == "/", target


def test_every_console_post_needs_the_token(server: ServerProcess, console: httpx.Client) -> None:
    with server.client() as api:
        make_user(api, "alice", "hq")
    token = csrf(console.get("/"))
    posts = [
        ("/console/logout", {}),
        ("/console/lang", {"lang": "de"}),
        ("/console/groups", {"id": "x", "name": "x"}),
        ("/console/users", {"id": "x", "display_name": "x", "group": "hq"}),
        ("/console/groups/hq/settings", {"teams_sync_mode": "telephony_only"}),
        ("/console/groups/hq/templates", {"name": "X", "status": "busy", "text": "x"}),
        ("/console/groups/hq/templates/active", {"name": "MS Teams", "active": "false"}),
        ("/console/users/alice/profiles", {"name": "X", "status": "busy", "text": "x"}),
        ("/console/users/alice/profiles/move", {"name": "X", "direction": "up"}),
        ("/console/users/alice/profiles/order", {"names": "X"}),
        ("/console/users/alice/profiles/delete", {"name": "X"}),
        ("/console/users/alice/profile", {"name": "Termin"}),
        ("/console/users/alice/appointments", {"subject": "x"}),
        ("/console/users/alice/appointments/a1/delete", {}),
        ("/console/users/alice/settings", {"teams_sync_mode": "off"}),
    ]
    for path, form in posts:
        refused = console.post(path, data=form)
        assert refused.status_code == 403, path
        assert "without its security token" in refused.text, path
        forged = console.post(
            path, data={**form, "csrf_token": token}, headers={"Origin": "https://evil.example"}
        )
        assert forged.status_code == 403 and "another web site" in forged.text, path
    with server.client() as api:
        assert api.get("/api/v1/groups/hq/settings").json()["teams_sync_mode"] == "off"
        assert api.get("/api/v1/users/alice/presence").json()["profile"] is None
        assert api.get("/api/v1/users/x").status_code == 404
    assert console.get("/").status_code == 200  # and still signed in


def test_the_board_stream_needs_the_session_and_this_origin(
    server: ServerProcess, console: httpx.Client
) -> None:
    with server.client() as api:
        make_user(api, "alice", "hq")
    url = f"ws://127.0.0.1:{server.port}/console/stream?lang=de"
    with connect(url, open_timeout=5) as anonymous:
        with pytest.raises(ConnectionClosed) as closed:
            anonymous.recv(timeout=5)
        assert "1008" in str(closed.value)

    cookie = f"pb_console={console.cookies['pb_console']}"
    with connect(url, additional_headers={"Cookie": cookie}, open_timeout=5) as ws:
        snapshot = receive(ws)
        assert snapshot["type"] == "snapshot"
        alice = next(p for p in snapshot["presences"] if p["user"] == "alice")
        assert alice["text"] == "Verfügbar"  # ?lang= is honoured as on the API stream

    with pytest.raises(InvalidStatus):
        connect(
            url,
            additional_headers={"Cookie": cookie, "Origin": "https://evil.example"},
            open_timeout=5,
        )

    # The API's own stream keeps working with the bearer token, and ignores the cookie.
    with server.stream() as ws:
        assert receive(ws)["type"] == "snapshot"
    api_url = f"ws://127.0.0.1:{server.port}/api/v1/presence/stream"
    with pytest.raises(InvalidStatus):
        connect(api_url, additional_headers={"Cookie": cookie}, open_timeout=5)


def test_sessions_survive_a_restart_and_end_with_a_new_admin_token(tmp_path: Path) -> None:
    first = ServerProcess(tmp_path / "data")
    first.start()
    try:
        with signed_in(first) as client:
            cookie = {"Cookie": f"pb_console={client.cookies['pb_console']}"}
    finally:
        first.stop()
    again = ServerProcess(tmp_path / "data")
    again.start()
    try:
        assert httpx.get(again.url + "/", headers=cookie, timeout=60).status_code == 200
    finally:
        again.stop()
    rotated = ServerProcess(tmp_path / "data", PRESENCEBRIDGE_ADMIN_TOKEN="another-admin-token-42")
    rotated.start()
    try:
        assert httpx.get(rotated.url + "/", headers=cookie, timeout=60).status_code == 303
    finally:
        rotated.stop()


def test_language_from_accept_language_then_the_switch(
    server: ServerProcess, console: httpx.Client
) -> None:
    german = console.get("/", headers={"Accept-Language": "de-DE,de;q=0.9,en;q=0.5"})
    assert '<html lang="de">' in german.text and "Präsenzübersicht" in german.text
    english = console.get("/", headers={"Accept-Language": "fr, en;q=0.5"})
    assert '<html lang="en">' in english.text and "Presence board" in english.text
    switched = console.post(
        "/console/lang", data={"lang": "de", "next": "/console/groups", "csrf_token": csrf(english)}
    )
    assert switched.status_code == 303 and switched.headers["location"] == "/console/groups"
    page = console.get("/console/groups", headers={"Accept-Language": "en"})
    assert '<html lang="de">' in page.text and "Gruppen und Benutzer" in page.text


def test_unknown_pages_are_pages_not_json(server: ServerProcess, console: httpx.Client) -> None:
    for path in ("/console/users/nobody", "/console/groups/nothing"):
        answer = console.get(path)
        assert answer.status_code == 404
        assert answer.headers["content-type"].startswith("text/html")


def test_the_console_does_not_import_the_api_app() -> None:
    """The console uses the API's public parts (the stream, auth, schemas, views) only:
    `api.app` imports the console to mount it, never the other way round (not even
    inside a function)."""
    imported: dict[str, str] = {}
    for path in WEB.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported.update((alias.name, path.name) for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported[node.module] = path.name
                imported.update((f"{node.module}.{a.name}", path.name) for a in node.names)
    assert "presencebridge.api.app" not in imported, imported["presencebridge.api.app"]


# -- the catalogues ------------------------------------------------------------------------------

WEB = Path(i18n.__file__).parent
PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def extracted() -> set[str]:
    method_map = [("**.py", "python"), ("templates/**.html", "jinja2")]
    options = {"templates/**.html": {"extensions": "jinja2.ext.i18n"}}
    found = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(WEB), method_map, options
    ):
        found.add(message if isinstance(message, str) else message[0])
    return found


def test_the_german_catalogue_translates_every_message() -> None:
    messages = extracted()
    assert len(messages) > 200
    with (WEB / "locale" / "de" / "LC_MESSAGES" / "messages.po").open("rb") as po:
        catalogue = read_po(po)
    missing = [m for m in messages if not (catalogue.get(m) and catalogue[m].string)]
    assert not missing, f"untranslated: {missing}"
    german = i18n.translations("de")
    assert german.gettext("Presence board") == "Präsenzübersicht"  # compiled without a build step
    wrong = [
        m
        for m in messages
        if sorted(PLACEHOLDER.findall(m)) != sorted(PLACEHOLDER.findall(german.gettext(m)))
    ]
    assert not wrong, f"placeholders differ: {wrong}"


def test_the_catalogues_hold_no_stale_messages() -> None:
    messages = extracted()
    for language in ("de", "en"):
        with (WEB / "locale" / language / "LC_MESSAGES" / "messages.po").open("rb") as po:
            catalogue = read_po(po)
        stale = [m.id for m in catalogue if m.id and m.id not in messages]
        assert not stale, f"{language}: no longer used: {stale}"
        assert not [m.id for m in catalogue if m.id and m.fuzzy], f"{language}: fuzzy entries"


def test_every_csv_import_problem_is_said_in_german_and_english() -> None:
    """The API answers each problem with a code, its values and an English text; the
    console says the same code in the reader's language."""
    assert set(labels.CSV_PROBLEMS) == set(usercsv.TEXTS)
    german, english = i18n.gettext("de"), i18n.gettext("en")
    for code, text in usercsv.TEXTS.items():
        params = {name: f"<{name}>" for name in PLACEHOLDER.findall(text)}
        api = usercsv.Problem(2, code, params).message
        assert labels.csv_problem(code, params, english) == api, code
        assert labels.csv_problem(code, params, german) != api, f"{code}: not translated"
    shown = labels.csv_problem("extension_taken", {"value": "2101", "other": "alice"}, german)
    assert shown == "Nebenstelle „2101“ gehört Benutzer „alice“"


def test_sync_health_shows_subscriptions_expiry_and_errors_in_notify_mode() -> None:
    """Notify mode needs signed-in service accounts; the page is rendered from its parts here."""
    registry = CollectorRegistry()
    latency = Histogram("lag_seconds", "test", ["operation"], registry=registry)
    for seconds in (0.004, 0.02, 0.02, 0.3, 12):
        latency.labels("read").observe(seconds)
    buckets, count, total = health.histogram(latency)
    assert count == 5 and [b.count for b in buckets if b.count] == [1, 2, 1, 1]
    samples = [health.BudgetSample(1000.0 + 2 * i, i * 40, 1455, 873) for i in range(30)]
    now = datetime(2026, 5, 4, 12, 0, tzinfo=UTC)
    html = (
        i18n.environment("de")
        .get_template("_sync_live.html")
        .render(
            enabled=True,
            read_mode="notify",
            synced_users=1300,
            budget={"limit": 1455, "window": 30, "read_limit": 873, "used": 1160, "spent_total": 9},
            spark=health.sparkline(samples),
            poll={"rounds": 3, "last_round_seconds": 0.2, "interval_seconds": 60},
            histograms=[
                {
                    "id": "graph",
                    "title": "Graph",
                    "bars": health.bar_chart(buckets, i18n.Formats("de", UTC).number),
                    "count": count,
                    "mean": total / count,
                },
            ],
            requests=[("getPresencesByUserId", "200", 12), ("setPresence", "429", 2)],
            rates={
                "windows": (5, 15),
                "rows": [
                    {
                        "operation": "Alle Vorgänge",
                        "cells": [
                            {
                                "requests": 12.5,
                                "throttled": 3.75,
                                "server_errors": 0.0,
                                "network_errors": 0.0,
                                "failed_share": 0.3,
                            },
                            None,
                        ],
                    }
                ],
                "covered_minutes": 5,
                "throttled_share": 0.3,
                "error_share": 0.0,
                "per_minute": 12.5,
            },
            attention={"rows": [], "more": 0, "failing": 0, "held": 0, "not_synced": []},
            subscriptions=[
                {
                    "id": "5f1c8a9e-aaaa",
                    "account": "svc1",
                    "users": 650,
                    "expires_at": now + timedelta(minutes=4),
                    "left": 240.0,
                },
                {
                    "id": "77aa0b1c-bbbb",
                    "account": "svc2",
                    "users": 650,
                    "expires_at": now - timedelta(minutes=1),
                    "left": -60.0,
                },
            ],
            accounts=[
                {"name": "svc1", "status": "signed_in", "username": "svc1@contoso", "detail": None}
            ],
            errors=[{"at": now, "source": "subscriptions", "message": "renewing failed: 503"}],
            groups=[],
            fmt=i18n.Formats("de", i18n.zone("Europe/Berlin")),
            label=lambda kind, value: value,
            q=quote,
        )
    )
    assert "Abonnements" in html and "svc1" in html and "svc2" in html
    assert "in 4 Min." in html and "abgelaufen" in html  # expiry, in the reader's language
    assert "renewing failed: 503" in html and "14:00:00" in html  # the error, at Berlin time
    assert '<span class="badge warn">429</span>' in html
    assert "<polyline" in html and 'class="limit"' in html  # the read share fits the scale
    assert "&gt; 10 s" in html  # the histogram's last bucket
    assert "≤ 2,5 s" in html  # a decimal comma in German
    assert "12,5" in html and "30 % gedrosselt (429)" in html  # the rates per minute
