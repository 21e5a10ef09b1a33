"""The profile's call forwarding and DnD applied at a real Asterisk 22 (issue 17 parts
1 and 2), through an `asterisk-ami` outlet with `apply_profile = true`; the dialplan
honouring FreePBX's AstDB keys is the one docs/pbx-asterisk.md gives for a plain
Asterisk (tests/support/asterisk.PLAIN_ASTERISK_DIALPLAN).

* During a Teams call (Graph emulator) with an `MS Teams` profile forwarding to
  2199, a SIPp call to the user's extension reaches the phone 2199; after the Teams
  call it reaches the user's own phone again, and `CF/<ext>` is as before.
* A forwarding the user sets during the call (as a feature code would: `database
  put CF <ext> 2198`) is kept after the call, and the history says so; the next
  Teams call gives back exactly that forwarding when it ends.
* A DnD profile sets `DND/<ext>`, the BLF device `Custom:DND<ext>` shows BUSY, and a
  call gets busy; both go when the profile does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.connectors.asterisk_server import add_user, asterisk_server, connector
from tests.support.asterisk import AsteriskProcess, dial, phone
from tests.support.server import ServerProcess
from tests.support.teams import EmulatorProcess, new_teams_id
from tests.support.waiting import eventually

# Bounds only: every wait ends as soon as its condition holds.
WAIT = 60.0
TEAMS_PROFILE = {
    "name": "MS Teams", "status": "busy", "text": "In Teams", "color": "#5558af",
    "call_forwarding": "2199",
}  # fmt: skip


@pytest.fixture(scope="module")
def hub(
    tmp_path_factory: pytest.TempPathFactory, asterisk: AsteriskProcess, emulator: EmulatorProcess
) -> Iterator[ServerProcess]:
    process = asterisk_server(
        tmp_path_factory.mktemp("hub"), asterisk, emulator=emulator, pbx=False, apply_profile=True
    )
    eventually(lambda: connector(process, "asterisk-blf"), lambda c: c["up"], WAIT)
    yield process
    process.stop()


def answered_by(asterisk: AsteriskProcess, extension: str, log_dir: Path) -> str:
    """Calls `extension` from 2199 with the phones of `extension` and 2199 ready, and
    says which of them answered; every channel is gone again afterwards."""
    phones = [phone(asterisk, e, log_dir) for e in (extension, "2199")]
    caller = dial(asterisk, extension, log_dir)
    try:
        [channel] = eventually(asterisk.dialled, lambda found: len(found) == 1, WAIT)
        return channel.removeprefix("PJSIP/").split("-", 1)[0]
    finally:
        asterisk.hang_up_all()
        eventually(asterisk.channels, lambda n: n == 0, WAIT)
        for process in (*phones, caller):
            process.stop()


def teams_call(emulator: EmulatorProcess, teams_id: str) -> Callable[[bool], None]:
    def set_call(on: bool) -> None:
        if on:
            emulator.client_presence(teams_id, "Busy", "InACall")
        else:
            emulator.client_presence(teams_id, "Available", "Available")

    return set_call


def test_a_teams_call_forwards_at_the_pbx_and_gives_back_what_the_user_had(
    hub: ServerProcess, asterisk: AsteriskProcess, emulator: EmulatorProcess, tmp_path: Path
) -> None:
    teams_id = new_teams_id()
    emulator.add_user(teams_id)
    in_call = teams_call(emulator, teams_id)
    with hub.client() as api:
        add_user(api, "cara", "2101", teams_id)
        assert api.post("/api/v1/users/cara/profiles", json=TEAMS_PROFILE).status_code == 201
    assert asterisk.db("CF", "2101") is None
    assert answered_by(asterisk, "2101", tmp_path) == "2101"

    in_call(True)
    eventually(lambda: asterisk.db("CF", "2101"), lambda v: v == "2199", WAIT)
    assert answered_by(asterisk, "2101", tmp_path) == "2199"
    in_call(False)
    eventually(lambda: asterisk.db("CF", "2101"), lambda v: v is None, WAIT)
    assert asterisk.db("presencebridge", "CF/2101") is None  # nothing left remembered
    assert answered_by(asterisk, "2101", tmp_path) == "2101"

    # The user forwards to 2198 by feature code during the next Teams call: kept.
    in_call(True)
    eventually(lambda: asterisk.db("CF", "2101"), lambda v: v == "2199", WAIT)
    asterisk.cli("database put CF 2101 2198")
    in_call(False)
    with hub.client() as api:
        eventually(
            lambda: api.get("/api/v1/users/cara/history").json(),
            lambda h: any("2198; kept" in (e["change"] or "") for e in h),
            WAIT,
        )
    assert asterisk.db("CF", "2101") == "2198"
    assert asterisk.db("presencebridge", "CF/2101") is None

    # Now 2198 is the user's own forwarding: a Teams call replaces it and gives it back.
    in_call(True)
    eventually(lambda: asterisk.db("CF", "2101"), lambda v: v == "2199", WAIT)
    in_call(False)
    eventually(lambda: asterisk.db("CF", "2101"), lambda v: v == "2198", WAIT)
    eventually(lambda: asterisk.db("presencebridge", "CF/2101"), lambda v: v is None, WAIT)
    outlet = connector(hub, "asterisk-blf")
    assert outlet["counts"]["kept_user_change"] == 1, outlet
    assert outlet["counts"]["refused"] == 0, outlet


def busy_for_caller(asterisk: AsteriskProcess, extension: str, log_dir: Path) -> bool:
    """The caller's call to `extension` fails (the dialplan's Busy(): SIPp expects a
    200 and ends with an error) without any phone being dialled."""
    ringing = phone(asterisk, extension, log_dir)
    caller = dial(asterisk, extension, log_dir)
    try:
        process = caller.process
        assert process is not None
        code = eventually(process.poll, _ended, WAIT)
        return code != 0 and "486 Busy" in caller.log_path.read_text(errors="replace")
    finally:
        asterisk.hang_up_all()
        ringing.stop()
        caller.stop()


def _ended(code: int | None) -> bool:
    return code is not None


def test_a_dnd_profile_sets_dnd_at_the_pbx_and_the_blf_shows_it(
    hub: ServerProcess, asterisk: AsteriskProcess, tmp_path: Path
) -> None:
    with hub.client() as api:
        add_user(api, "dora", "2103")
        profile = {"name": "Fokus", "status": "dnd", "text": "Fokus", "color": "#aa0000"}
        assert api.post("/api/v1/users/dora/profiles", json=profile).status_code == 201
        assert api.put("/api/v1/users/dora/profile", json={"name": "Fokus"}).is_success
        eventually(lambda: asterisk.db("DND", "2103"), lambda v: v == "YES", WAIT)
        # The device is set right after the key: wait for it, then the hint follows.
        eventually(lambda: asterisk.device_state("Custom:DND2103"), lambda s: s == "BUSY", WAIT)
        assert asterisk.hint("2103") == "Busy"
        assert asterisk.db("CF", "2103") is None  # the profile has no forwarding
        assert busy_for_caller(asterisk, "2103", tmp_path)

        assert api.put("/api/v1/users/dora/profile", json={"name": None}).is_success
        eventually(lambda: asterisk.db("DND", "2103"), lambda v: v is None, WAIT)
        eventually(
            lambda: asterisk.device_state("Custom:DND2103"), lambda s: s == "NOT_INUSE", WAIT
        )
        eventually(lambda: asterisk.hint("2103"), lambda s: s == "Idle", WAIT)


def test_the_users_own_forwarding_survives_a_hub_restart_mid_call(
    hub: ServerProcess, asterisk: AsteriskProcess, emulator: EmulatorProcess
) -> None:
    """The memory is in AstDB: a hub killed during the Teams call, and started again
    after it ended, still gives back the forwarding the user had before."""
    teams_id = new_teams_id()
    emulator.add_user(teams_id)
    in_call = teams_call(emulator, teams_id)
    asterisk.cli("database put CF 2102 2150")  # the user's own, set before
    with hub.client() as api:
        add_user(api, "erik", "2102", teams_id)
        assert api.post("/api/v1/users/erik/profiles", json=TEAMS_PROFILE).status_code == 201
    in_call(True)
    eventually(lambda: asterisk.db("CF", "2102"), lambda v: v == "2199", WAIT)

    hub.kill9()
    in_call(False)
    hub.start()
    eventually(lambda: asterisk.db("CF", "2102"), lambda v: v == "2150", WAIT)
    eventually(lambda: asterisk.db("presencebridge", "CF/2102"), lambda v: v is None, WAIT)
    assert connector(hub, "asterisk-blf")["counts"]["kept_user_change"] == 0
