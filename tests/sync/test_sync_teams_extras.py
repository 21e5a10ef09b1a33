"""Issue 15 end to end, server and Graph emulator as separate processes: what Teams shows
beyond availability and activity reaches the UC side. The status message a user sets in
Teams shows in the presence resource and on the board's data; out of office (Outlook's
automatic replies) shows as an "Out of office (MS Teams)" appointment with the user's
first away profile, and goes when it ends; a group that switches it off sees none."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.server import ServerProcess
from tests.support.teams import EmulatorProcess, sync_server
from tests.support.waiting import eventually
from tests.sync.test_sync_tables import Colleague, group


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    process = EmulatorProcess(tmp_path_factory.mktemp("emulator") / "tls")
    process.start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, emulator: EmulatorProcess
) -> Iterator[ServerProcess]:
    process = sync_server(tmp_path_factory.mktemp("server"), emulator)
    process.start()
    yield process
    process.stop()


def set_status_message(emulator: EmulatorProcess, teams_id: str, text: str) -> None:
    """The user sets their status message in Teams (Graph's setStatusMessage)."""
    body = {"statusMessage": {"message": {"content": text, "contentType": "text"}}}
    with emulator.client(emulator.graph_token()) as graph:
        answer = graph.post(f"/v1.0/users/{teams_id}/presence/setStatusMessage", json=body)
        assert answer.is_success, answer.text


def test_the_teams_status_message_shows_on_the_uc_side(
    api: httpx.Client, emulator: EmulatorProcess
) -> None:
    g = group(api)
    mia = Colleague(api, emulator, "mia", g)
    set_status_message(emulator, mia.teams_id, "Heute im Homeoffice")
    shown = eventually(mia.presence, lambda p: p["teams"]["status_message"] is not None, 30)
    assert shown["teams"]["status_message"] == "Heute im Homeoffice"
    assert shown["status"] == "available"  # a message changes no status
    set_status_message(emulator, mia.teams_id, "")
    eventually(mia.presence, lambda p: p["teams"]["status_message"] is None, 30)
