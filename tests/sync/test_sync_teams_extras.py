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
from tests.sync.test_sync_tables import LUNCH_PROFILE, Colleague, group


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


def out_of_office(emulator: EmulatorProcess, teams_id: str, on: bool) -> None:
    """Outlook's automatic replies switched on or off for the user."""
    with emulator.control() as control:
        path = f"/_emulator/users/{teams_id}/out-of-office"
        body = {"isOutOfOffice": True, "message": "Bis 14.12. im Urlaub"}
        answer = control.put(path, json=body) if on else control.delete(path)
        assert answer.is_success, answer.text


def oof_appointments(p: dict[str, object]) -> list[dict[str, object]]:
    appointments = p["appointments"]
    assert isinstance(appointments, list)
    return [a for a in appointments if a["subject"] == "Out of office (MS Teams)"]


def test_teams_out_of_office_shows_as_an_appointment_with_the_first_away_profile(
    api: httpx.Client, emulator: EmulatorProcess
) -> None:
    g = group(api)
    noah = Colleague(api, emulator, "noah", g)
    noah.add_profile(LUNCH_PROFILE)
    out_of_office(emulator, noah.teams_id, on=True)
    shown = eventually(noah.presence, lambda p: bool(oof_appointments(p)), 30)
    assert (shown["status"], shown["profile"]) == ("away", "Mittag")
    assert shown["text"] == "Out of office (MS Teams)"
    assert shown["teams"]["out_of_office"] is True
    german = api.get(f"/api/v1/users/{noah.id}/presence?lang=de").json()
    assert german["text"] == "Abwesend (MS Teams)"
    out_of_office(emulator, noah.teams_id, on=False)
    back = eventually(noah.presence, lambda p: not oof_appointments(p), 30)
    assert back["status"] == "available"


def test_a_group_that_switches_it_off_sees_no_out_of_office(
    api: httpx.Client, emulator: EmulatorProcess
) -> None:
    g = group(api, teams_out_of_office=False)
    ida = Colleague(api, emulator, "ida", g)
    ida.add_profile(LUNCH_PROFILE)
    out_of_office(emulator, ida.teams_id, on=True)
    # Read (the Teams column shows it), but not taken up on the UC side.
    shown = eventually(ida.presence, lambda p: p["teams"]["out_of_office"] is True, 30)
    assert oof_appointments(shown) == [] and shown["status"] == "available"
    out_of_office(emulator, ida.teams_id, on=False)
