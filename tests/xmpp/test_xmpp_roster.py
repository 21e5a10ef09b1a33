"""Roster provisioning through ejabberd's admin API (`roster = "ejabberd"`): nobody adds
the telephony contacts by hand, yet bob has alice's, sees her calls, gets her state
again after a restart of the hub while he stays online, and loses the contact when
she leaves the hub. Hub and ejabberd are separate processes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.waiting import eventually
from tests.support.xmpp import COMPONENT, DOMAIN, Account, EjabberdServer, Watcher, offline, showing
from tests.xmpp.conftest import (
    ALICE_COMPONENT,
    BOB,
    COMPONENT_SECRET,
    WAIT,
    add_alice,
    connectors,
    hub_server,
    pbx,
)


def roster_table(ejabberd: EjabberdServer) -> str:
    return f"""
[[publish]]
kind = "xmpp-component"
name = "chat"
domain = "{COMPONENT}"
port = {ejabberd.component}
language = "de"
secret_env = "XMPP_COMPONENT_SECRET"
roster = "ejabberd"
roster_api = "http://127.0.0.1:{ejabberd.http}/api"
roster_host = "{DOMAIN}"
"""


def rosters(ejabberd: EjabberdServer, user: str) -> list[dict[str, Any]]:
    status, items = ejabberd.api("get_roster", {"user": user, "host": DOMAIN})
    assert status == 200, items
    return list(items)


def provisioned(chat: dict[str, Any]) -> bool:
    return bool(chat["up"]) and "roster: 2 users at localhost have 1 contacts" in chat["detail"]


def test_the_hub_provisions_rosters_and_relearns_watchers_from_them(tmp_path: Path) -> None:
    ejabberd = EjabberdServer(tmp_path / "ejabberd", COMPONENT_SECRET)
    try:
        ejabberd.start()
        for account in (BOB, Account("carol", "carol-password")):
            ejabberd.register(account)
        server = hub_server(tmp_path / "hub", roster_table(ejabberd))
        try:
            with server.client() as api:
                alice = add_alice(api)
                eventually(lambda: connectors(server)["chat"], provisioned, WAIT, step=0.1)
                [item] = rosters(ejabberd, "bob")
                assert (item["jid"], item["nick"], item["group"]) == (
                    ALICE_COMPONENT, "Alice", "Telefonie"
                )  # fmt: skip
                assert item["subscription"] == "both"
                with Watcher(BOB, ejabberd.c2s) as bob:
                    assert bob.roster == [ALICE_COMPONENT]
                    bob.wait(ALICE_COMPONENT, showing("", "Verfügbar"), WAIT)
                    pbx(api, alice, "call-1", "connected")
                    bob.wait(ALICE_COMPONENT, showing("dnd", "Am Telefon"), WAIT)

                    server.stop()  # bob stays online through the hub's restart
                    bob.wait(ALICE_COMPONENT, offline, WAIT)
                    server.start()
                    # No login of bob's, no probe: the roster run names him a watcher.
                    bob.wait(ALICE_COMPONENT, showing("dnd", "Am Telefon"), WAIT)

                    assert api.delete(f"/api/v1/users/{alice}").status_code == 204
                    bob.wait(ALICE_COMPONENT, offline, WAIT)
                    eventually(lambda: rosters(ejabberd, "bob"), lambda r: r == [], WAIT)
        finally:
            server.stop()
    finally:
        ejabberd.close()
