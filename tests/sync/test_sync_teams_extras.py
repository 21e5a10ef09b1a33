"""Issue 15 end to end, server and Graph emulator as separate processes: what Teams shows
beyond availability and activity reaches the UC side. The status message a user sets in
Teams shows in the presence resource and on the board's data; out of office (Outlook's
automatic replies) shows as an "Out of office (MS Teams)" appointment with the user's
first away profile, and goes when it ends; a group that switches it off sees none."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

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


def teams_message(emulator: EmulatorProcess, teams_id: str) -> dict[str, Any] | None:
    """The user's status message as Graph keeps it (the control API shows its expiry)."""
    with emulator.control() as control:
        found: dict[str, Any] | None = control.get(f"/_emulator/users/{teams_id}").json()[
            "statusMessage"
        ]
        return found


def writes(emulator: EmulatorProcess, teams_id: str, op: str) -> int:
    counts: dict[str, int] = emulator.stats()["users"].get(teams_id, {})
    return counts.get(op, 0)


def written_through(who: Colleague) -> None:
    """Every write the hub planned for `who` so far is done: a PBX call's session set and
    cleared after it (one user's writes go one plan at a time, in order)."""
    before = writes(who.emulator, who.teams_id, "clearPresence")
    who.pbx("flush", "connected")
    eventually(lambda: writes(who.emulator, who.teams_id, "setPresence"), lambda n: n >= 1, 30)
    who.pbx("flush", "ended")
    eventually(
        lambda: writes(who.emulator, who.teams_id, "clearPresence"), lambda n: n > before, 30
    )


def message_writes(emulator: EmulatorProcess, teams_id: str) -> int:
    counts: dict[str, int] = emulator.stats()["users"].get(teams_id, {})
    return counts.get("setStatusMessage", 0)


def test_a_uc_profile_and_an_appointment_become_the_teams_status_message(
    api: httpx.Client, emulator: EmulatorProcess
) -> None:
    g = group(api, teams_status_message="uc_to_teams")
    lea = Colleague(api, emulator, "lea", g)
    lea.add_profile(
        {"name": "Urlaub", "status": "away", "text": "Urlaub bis 14.12.", "color": "#ffcc00"}
    )
    lea.select("Urlaub")
    shown = eventually(lambda: teams_message(emulator, lea.teams_id), lambda m: m is not None, 30)
    assert shown is not None
    assert shown["message"]["content"] == "Urlaub bis 14.12."
    assert shown["expiryDateTime"] is None  # a selected profile has no known end
    # An appointment: its subject, and its end as the expiry.
    start = datetime.now(UTC) - timedelta(minutes=1)
    end = (start + timedelta(hours=2)).replace(microsecond=0)
    body = {"subject": "Zahnarzt", "start": start.isoformat(), "end": end.isoformat()}
    assert api.post(f"/api/v1/users/{lea.id}/appointments", json=body).status_code == 201
    shown = eventually(
        lambda: teams_message(emulator, lea.teams_id),
        lambda m: m is not None and m["message"]["content"] == "Zahnarzt",
        30,
    )
    assert shown is not None and shown["expiryDateTime"] is not None
    expiry = shown["expiryDateTime"]
    assert expiry["timeZone"] == "UTC"
    assert datetime.fromisoformat(expiry["dateTime"]).replace(tzinfo=UTC) == end
    # Nothing chosen any more: the hub takes its message back.
    appointment = next(a for a in lea.presence()["appointments"] if a["subject"] == "Zahnarzt")
    assert api.delete(f"/api/v1/users/{lea.id}/appointments/{appointment['id']}").is_success
    lea.select(None)
    eventually(lambda: teams_message(emulator, lea.teams_id), lambda m: m is None, 30)


def test_a_message_set_by_hand_in_teams_is_never_overwritten(
    api: httpx.Client, emulator: EmulatorProcess
) -> None:
    g = group(api, teams_status_message="uc_to_teams")
    tom = Colleague(api, emulator, "tom", g)
    set_status_message(emulator, tom.teams_id, "Bin ab 15 Uhr zurück")
    held = eventually(tom.presence, lambda p: p["teams"]["status_message_held_by_user"] is True, 30)
    assert held["teams"]["status_message"] == "Bin ab 15 Uhr zurück"
    tom.add_profile(
        {"name": "Urlaub", "status": "away", "text": "Urlaub bis 14.12.", "color": "#ffcc00"}
    )
    tom.select("Urlaub")
    # The hub has judged the change (the UC side shows it) and writes nothing over it.
    eventually(tom.presence, lambda p: p["profile"] == "Urlaub", 30)
    written_through(tom)
    message = teams_message(emulator, tom.teams_id)
    assert message is not None and message["message"]["content"] == "Bin ab 15 Uhr zurück"
    assert message_writes(emulator, tom.teams_id) == 1  # the user's own, nothing of the hub's
    # The user clears theirs: the UC text goes to Teams.
    set_status_message(emulator, tom.teams_id, "")
    eventually(
        lambda: teams_message(emulator, tom.teams_id),
        lambda m: m is not None and m["message"]["content"] == "Urlaub bis 14.12.",
        30,
    )


def test_with_the_setting_off_no_status_message_is_written(
    api: httpx.Client, emulator: EmulatorProcess
) -> None:
    g = group(api)  # teams_status_message at its default: off
    eva = Colleague(api, emulator, "eva", g)
    eva.add_profile(
        {"name": "Urlaub", "status": "away", "text": "Urlaub bis 14.12.", "color": "#ffcc00"}
    )
    eva.select("Urlaub")
    eventually(eva.presence, lambda p: p["profile"] == "Urlaub", 30)
    written_through(eva)
    assert teams_message(emulator, eva.teams_id) is None
    assert message_writes(emulator, eva.teams_id) == 0
