"""Service accounts managed in the console (issue 18), server and Graph emulator as
separate processes, over real HTTP: add one (the page shows the device code, where to
enter it and until when), complete its sign-in at the emulator, see it active with the
users it watches; remove one (its users go to the other account), also while its
sign-in is pending; the admin API's DELETE; a server in poll mode says what to set.
"""

from __future__ import annotations

import html
import re
import time
from pathlib import Path

import httpx

from tests.api.test_console_http import csrf, signed_in
from tests.support.server import ServerProcess
from tests.support.teams import EmulatorProcess, new_teams_id
from tests.support.waiting import eventually
from tests.sync.test_sync_notify import notify_server, subscribed
from tests.sync.test_sync_tables import Colleague, group

URL = "/console/service-accounts"


def _row(page: str, name: str) -> str | None:
    found = re.search(rf'<tr id="account-{re.escape(name)}"[^>]*>(.*?)</tr>', page, re.S)
    return None if found is None else found.group(0)


def _status(console: httpx.Client, name: str) -> str | None:
    row = _row(console.get(URL).text, name)
    found = None if row is None else re.search(r'data-status="(\w+)"', row)
    return None if found is None else found.group(1)


def _add(console: httpx.Client, name: str) -> str:
    """Start the account's sign-in in the console; the code the page shows."""
    page = console.get(URL)
    answer = console.post(URL, data={"csrf_token": csrf(page), "name": name})
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == f"{URL}#account-{name}"
    shown = console.get(URL).text
    row = _row(shown, name)
    assert row is not None, shown
    assert 'data-status="pending"' in row and "sign-in pending" in row
    link = re.search(r'href="([^"]+)"[^>]*data-verification', row)
    assert link is not None and link.group(1).endswith("/devicelogin"), row
    assert "The code is valid until" in row
    code = re.search(r"data-code>([^<]+)<", row)
    assert code is not None, row
    return html.unescape(code.group(1))


def _approve(emulator: EmulatorProcess, code: str) -> str:
    account_id = new_teams_id()
    with emulator.control() as control:
        body = {"id": account_id, "upn": f"svc-{account_id[:8]}@contoso.example"}
        assert control.post("/_emulator/users", json=body).is_success
        approve = {"user_code": code, "user": account_id}
        assert control.post("/_emulator/device/approve", json=approve).is_success
    return account_id


def _remove(console: httpx.Client, name: str) -> None:
    page = console.get(URL)
    asked = console.post(URL + "/remove", data={"csrf_token": csrf(page), "name": name})
    assert asked.status_code == 200 and 'id="confirm-form"' in asked.text, asked.text
    assert f"Remove the service account “{name}”?" in asked.text
    assert _status(console, name) is not None  # asking removed nothing
    done = console.post(
        URL + "/remove", data={"csrf_token": csrf(page), "name": name, "confirm": "yes"}
    )
    assert done.status_code == 303, done.text
    assert f"Service account {name} removed." in console.get(URL).text


def test_service_accounts_are_added_signed_in_and_removed_in_the_console(
    tmp_path: Path, emulator: EmulatorProcess
) -> None:
    server = notify_server(tmp_path / "server", emulator)
    server.start()
    caches = tmp_path / "server" / "service-accounts"
    try:
        with server.client() as api, signed_in(server) as console:
            g = group(api)
            for i in range(3):
                Colleague(api, emulator, f"u{i}", g)
            assert "No service account yet." in console.get(URL).text
            # A name the account cannot have: the form again, the message at the field.
            page = console.get(URL)
            wrong = console.post(URL, data={"csrf_token": csrf(page), "name": "../x"})
            assert wrong.status_code == 422 and 'aria-invalid="true"' in wrong.text

            _approve(emulator, _add(console, "svc1"))
            eventually(lambda: _status(console, "svc1"), lambda s: s == "active", timeout=15)
            subscribed(api, 3)
            row = _row(console.get(URL).text, "svc1")
            assert row is not None and "signed in" in row and "@contoso.example" in row
            assert re.search(r'data-label="Users watched">3<', row), row

            _approve(emulator, _add(console, "svc2"))
            eventually(lambda: _status(console, "svc2"), lambda s: s == "active", timeout=15)
            assert (caches / "svc1.cache").exists() and (caches / "svc2.cache").exists()

            # Removing the account that watches everyone: the other one takes them over.
            _remove(console, "svc1")
            assert _status(console, "svc1") is None
            assert not (caches / "svc1.cache").exists()
            [subscription] = subscribed(api, 3)
            assert subscription["account"] == "svc2"
            row = _row(console.get(URL).text, "svc2")
            assert row is not None and re.search(r'data-label="Users watched">3<', row), row

            # Removed while its sign-in waits: a later approval signs nothing in.
            code = _add(console, "svc3")
            _remove(console, "svc3")
            _approve(emulator, code)
            time.sleep(3)  # longer than the device code's polling interval
            names = [a["name"] for a in api.get("/api/v1/admin/service-accounts").json()]
            assert names == ["svc2"]
            assert not (caches / "svc3.cache").exists()

            # The admin API removes too; then it is unknown.
            assert api.delete("/api/v1/admin/service-accounts/svc2").status_code == 204
            assert api.delete("/api/v1/admin/service-accounts/svc2").status_code == 404
            assert not (caches / "svc2.cache").exists()
            eventually(
                lambda: api.get("/api/v1/admin/teams-sync").json()["subscriptions"],
                lambda subs: subs == [],
                timeout=10,
            )
            # The audit log names each removal and by whom (the console's, the API's).
            log = api.get("/api/v1/admin/audit", params={"action": "service_account"}).json()
            removed = {
                (e["target"], e["actor_kind"])
                for e in log["entries"]
                if e["action"] == "service_account.removed"
            }
            assert removed == {("svc1", "session"), ("svc3", "session"), ("svc2", "admin-token")}
    finally:
        server.stop()


def test_sign_in_again_gives_a_new_code(tmp_path: Path, emulator: EmulatorProcess) -> None:
    server = notify_server(tmp_path / "server", emulator)
    server.start()
    try:
        with signed_in(server) as console:
            first = _add(console, "svc1")
            page = console.get(URL)
            assert "Sign in again: svc1" in page.text
            again = console.post(URL, data={"csrf_token": csrf(page), "name": "svc1"})
            assert again.status_code == 303
            second = _add(console, "svc1")
            assert second != first
            _approve(emulator, second)
            eventually(lambda: _status(console, "svc1"), lambda s: s == "active", timeout=15)
    finally:
        server.stop()


def test_in_poll_mode_the_page_says_what_to_set(server: ServerProcess) -> None:
    with signed_in(server) as console:
        page = console.get(URL)
        assert page.status_code == 200
        assert "PRESENCEBRIDGE_READ_MODE=notify" in page.text
        assert 'action="/console/service-accounts"' not in page.text
        refused = console.post(URL, data={"csrf_token": csrf(page), "name": "svc1"})
        assert refused.status_code == 409
    with server.client() as api:
        assert api.delete("/api/v1/admin/service-accounts/svc1").status_code == 404
