"""`asterisk-ami` end to end (issue 13): a real Asterisk 22, SIPp phones calling
through it, the Graph emulator and the server as separate processes, joined only by
configuration.

* A SIPp call to extension 2101 shows ringing -> on the phone -> idle in the hub for
  the user with that extension (read from the presence stream).
* A Teams call of the user with extension 2102 lights the hint `2102,hint,
  PJSIP/2102&Custom:2102-teams` (`core show hint` gives InUse), and it goes back to
  Idle when the call ends; do-not-disturb shows as Busy; the hub never takes its own
  Custom: state for a PBX call.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.connectors.asterisk_server import add_user, asterisk_server, connector, telephony
from tests.support.asterisk import AsteriskProcess, call
from tests.support.server import ServerProcess, receive_until
from tests.support.teams import EmulatorProcess, new_teams_id
from tests.support.waiting import eventually

# Bounds only: every wait ends as soon as its condition holds.
WAIT = 60.0


@pytest.fixture(scope="module")
def hub(
    tmp_path_factory: pytest.TempPathFactory, asterisk: AsteriskProcess, emulator: EmulatorProcess
) -> Iterator[ServerProcess]:
    process = asterisk_server(tmp_path_factory.mktemp("hub"), asterisk, emulator=emulator)
    yield process
    process.stop()


def test_a_sipp_call_through_asterisk_rings_connects_and_ends_in_the_hub(
    hub: ServerProcess, asterisk: AsteriskProcess, tmp_path: Path
) -> None:
    with hub.client() as api:
        add_user(api, "anna", "2101")
    eventually(lambda: connector(hub, "asterisk"), lambda c: c["up"], WAIT)
    with hub.stream() as ws:
        phone, caller = call(asterisk, "2101", tmp_path)
        try:
            receive_until(ws, "anna", lambda m: m["telephony"] == "ringing", WAIT)
            shown = receive_until(ws, "anna", lambda m: m["telephony"] == "on_the_phone", WAIT)
            assert shown["telephony_source"] == "pbx"
            assert asterisk.hint("2101") == "InUse"
            asterisk.hang_up_all()
            receive_until(ws, "anna", lambda m: m["telephony"] == "idle", WAIT)
        finally:
            phone.stop()
            caller.stop()
    health = connector(hub, "asterisk")
    assert health["up"], health
    assert health["counts"]["applied"] > 0
    assert health["counts"]["malformed"] == 0
    assert "127.0.0.1" in health["detail"]


def test_a_teams_call_lights_the_blf_hint_and_never_comes_back_as_a_pbx_call(
    hub: ServerProcess, asterisk: AsteriskProcess, emulator: EmulatorProcess
) -> None:
    teams_id = new_teams_id()
    emulator.add_user(teams_id)
    with hub.client() as api:
        add_user(api, "ben", "2102", teams_id)
    eventually(lambda: connector(hub, "asterisk-blf"), lambda c: c["up"], WAIT)
    assert asterisk.hint("2102") == "Idle"

    emulator.client_presence(teams_id, "Busy", "InACall")
    eventually(lambda: asterisk.hint("2102"), lambda s: s == "InUse", WAIT)
    assert asterisk.extension_state("2102") == "InUse"
    with hub.client() as api:
        shown = api.get("/api/v1/users/ben/presence").json()
    assert (shown["telephony"], shown["telephony_source"]) == ("on_the_phone", "teams")
    # The hint is InUse through the outlet's Custom: device only; the PBX connector
    # leaves that device out, so nothing was reported as a PBX call on 2102.
    assert connector(hub, "asterisk")["counts"]["on_the_phone"] == 0

    emulator.client_presence(teams_id, "Available", "Available")
    eventually(lambda: asterisk.hint("2102"), lambda s: s == "Idle", WAIT)
    assert asterisk.extension_state("2102") == "Idle"
    eventually(lambda: telephony(hub, "ben"), lambda t: t == "idle", WAIT)

    # Do-not-disturb shows as Busy on the key, and goes again.
    with hub.client() as api:
        profile = {"name": "Fokus", "status": "dnd", "text": "Fokus", "color": "#aa0000"}
        assert api.post("/api/v1/users/ben/profiles", json=profile).status_code == 201
        assert api.put("/api/v1/users/ben/profile", json={"name": "Fokus"}).is_success
        eventually(lambda: asterisk.hint("2102"), lambda s: s == "Busy", WAIT)
        assert api.put("/api/v1/users/ben/profile", json={"name": None}).is_success
        eventually(lambda: asterisk.hint("2102"), lambda s: s == "Idle", WAIT)
    outlet = connector(hub, "asterisk-blf")
    assert outlet["up"] and outlet["counts"]["written"] >= 4, outlet
    assert connector(hub, "asterisk")["counts"]["on_the_phone"] == 0
