"""A Teams call and a PBX call, seen by a colleague's XMPP client (issue 13).

Hub, Graph emulator and XMPP server (Prosody, ejabberd) are separate processes; the
hub knows the XMPP server only through its `[[publish]]` tables, and bob's client
(slixmpp) sees alice both ways: as the telephony contact `alice@presence.localhost`
(xmpp-component) and as the hub's resource on her own account (xmpp-account).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.teams import EmulatorProcess, new_teams_id
from tests.support.xmpp import Watcher, showing
from tests.xmpp.conftest import (
    ALICE_ACCOUNT,
    ALICE_COMPONENT,
    BOB,
    WAIT,
    add_alice,
    all_up,
    hub_server,
    pbx,
    publish_tables,
    xmpp_server,
)

BOTH = (ALICE_COMPONENT, ALICE_ACCOUNT)


@pytest.mark.parametrize("kind", ["prosody", "ejabberd"])
def test_a_teams_call_and_a_pbx_call_show_as_dnd_in_xmpp(
    tmp_path: Path, emulator: EmulatorProcess, kind: str
) -> None:
    xmpp = xmpp_server(kind, tmp_path / kind)
    try:
        server = hub_server(tmp_path / "hub", publish_tables(xmpp), emulator)
        try:
            with server.client() as api:
                teams_id = new_teams_id()
                emulator.add_user(teams_id)
                emulator.client_presence(teams_id, "Available", "Available")
                alice = add_alice(api, teams_id)
                health = all_up(server)
                assert set(health) == {"chat", "accounts"}
                # bob logs in once the outlets are up: his server probes alice's
                # telephony contact, and the component answers.
                with Watcher(BOB, xmpp.c2s) as bob:
                    for jid in BOTH:
                        bob.wait(jid, showing("", "Verfügbar"), WAIT)

                    emulator.client_presence(teams_id, "Busy", "InACall")
                    for jid in BOTH:
                        bob.wait(jid, showing("dnd", "Am Telefon (MS Teams)"), WAIT)

                    emulator.client_presence(teams_id, "Available", "Available")
                    for jid in BOTH:
                        bob.wait(jid, showing("", "Verfügbar"), WAIT)

                    pbx(api, alice, "call-1", "connected")
                    for jid in BOTH:
                        bob.wait(jid, showing("dnd", "Am Telefon"), WAIT)
                    pbx(api, alice, "call-1", "ended")
                    for jid in BOTH:
                        bob.wait(jid, showing("", "Verfügbar"), WAIT)
                chat = all_up(server)["chat"]
                assert chat["counts"]["probes_answered"] >= 1
                assert chat["counts"]["published"] >= 5
                assert "connected to 127.0.0.1" in chat["detail"]
        finally:
            server.stop()
    finally:
        xmpp.close()
