"""Dead letters (issue 17 part 4): a receiver answering 400 will never take that request,
so the change is a dead letter at once, visible in the API and the console; "send again"
delivers it (same idempotency key), "discard" removes it; the user's next change is not
held up by it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.test_console_http import signed_in
from tests.support.server import ServerProcess
from tests.webhooks.hooks import (
    Receiver,
    hook_server,
    make_users,
    profiles_of,
    select,
    wait_for,
    webhook_table,
    webhooks,
)

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[Receiver]:
    process = Receiver(tmp_path / "receiver")
    process.start()
    yield process
    process.stop()


def dead_letters(server: ServerProcess) -> dict[str, dict[str, Any]]:
    """The dead letters of webhook `all` by the profile their change carried."""
    letters = webhooks(server)["all"]["dead_letters"]
    return {(d["body"]["presence"] or {}).get("profile") or "none": d for d in letters}


def test_a_refused_change_is_a_dead_letter_sent_again_or_discarded(
    tmp_path: Path, receiver: Receiver
) -> None:
    receiver.answer(400)
    server = hook_server(tmp_path, webhook_table("all", receiver.url("/all")))
    try:
        make_users(server, {"alice": "hq"}, 2)
        select(server, "alice", "p0")
        # The creation and p0: each refused once, dead at once (no retry of a 400).
        letters = wait_for(
            lambda: len(dead_letters(server)) == 2 and dead_letters(server), "two dead letters"
        )
        assert {d["attempts"] for d in letters.values()} == {1}
        assert letters["p0"]["last_error"] == "HTTP 400"
        assert webhooks(server)["all"]["pending"] == 0
        assert len(receiver.received("/all")) == 2

        receiver.answer(200)
        select(server, "alice", "p1")  # not held up by the dead letters before it
        wait_for(lambda: profiles_of(receiver.taken("/all"), "alice") == ["p1"], "p1 delivered")

        send_again_in_the_console(server, letters["p0"]["id"])
        with server.client() as api:
            discarded = api.delete(f"/api/v1/admin/webhooks/all/dead/{letters['none']['id']}")
            assert discarded.status_code == 204
            assert "none" not in dead_letters(server)

        with server.client() as api:
            path = f"/api/v1/admin/webhooks/all/dead/{letters['p0']['id']}/retry"
            assert api.post(path).status_code == 404  # no longer a dead letter
        wait_for(
            lambda: profiles_of(receiver.taken("/all"), "alice") == ["p1", "p0"], "p0 sent again"
        )
        again = [r for r in receiver.received("/all") if r.profile == "p0"]
        assert [r.status for r in again] == [400, 200]
        assert again[0].key == again[1].key == letters["p0"]["idempotency_key"]
        hooks = webhooks(server)["all"]
        assert hooks["dead"] == 0 and hooks["dead_letters"] == []
        with server.client() as api:
            gone = api.delete(f"/api/v1/admin/webhooks/all/dead/{letters['p0']['id']}")
            assert gone.status_code == 404
    finally:
        server.stop()


def send_again_in_the_console(server: ServerProcess, entry_id: int) -> None:
    """The page lists the dead letters (English and German); "Send again" queues one."""
    with signed_in(server) as console:
        page = console.get("/console/webhooks")
        assert page.status_code == 200
        assert "HTTP 400" in page.text and "alice" in page.text and "Send again" in page.text
        sync = console.get("/console/sync")  # the connector list links to the page
        assert 'href="/console/webhooks"' in sync.text and "webhook" in sync.text
        german = console.get("/console/webhooks", headers={"Accept-Language": "de"})
        assert "Erneut senden" in german.text and "Verwerfen" in german.text
        token = CSRF.search(page.text)
        assert token is not None
        form = {
            "csrf_token": token.group(1),
            "webhook": "all",
            "id": str(entry_id),
            "action": "retry",
        }
        assert console.post("/console/webhooks/dead", data=form).status_code == 303
        assert "p0" not in dead_letters(server)
        missing = {**form, "id": "999999"}
        assert console.post("/console/webhooks/dead", data=missing).status_code == 404
        missing = {**form, "action": "discard"}
        assert console.post("/console/webhooks/dead", data=missing).status_code == 404

    assert httpx.get(server.url + "/console/webhooks").status_code in (303, 307)
