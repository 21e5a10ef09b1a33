"""The account outlet beside the user's own client, through a real Prosody: the hub's
resource has its own presence at priority -1, the user's client keeps its own, and
when the user leaves the hub only the hub's resource goes offline."""

from __future__ import annotations

import asyncio
from pathlib import Path

from presencebridge.adapters.xmpp import account_settings
from presencebridge.adapters.xmpp.account import XmppAccountOutlet
from presencebridge.core.ports import OutwardUser
from presencebridge.core.publication import OUTWARD, Publication, Situation
from tests.support.xmpp import DOMAIN, ProsodyServer, Watcher, offline, showing
from tests.xmpp.conftest import ALICE, ALICE_ACCOUNT, BOB, COMPONENT_SECRET, WAIT


def alice(situation: Situation | None, text: str = "") -> OutwardUser:
    found = None if situation is None else Publication(situation, OUTWARD[situation], text)
    return OutwardUser("alice", "Alice", "alice@example.com", (), found)


def test_the_hubs_resource_sits_beside_the_users_own_client(tmp_path: Path) -> None:
    prosody = ProsodyServer(tmp_path / "prosody", COMPONENT_SECRET,
                            {BOB.jid: "Bob", ALICE.jid: "Alice"})  # fmt: skip
    for account in (BOB, ALICE):
        prosody.register(account)
    prosody.start()
    table = {"name": "accounts", "address": "email-local", "domain": DOMAIN,
             "port": prosody.c2s, "tls": "none", "secret": ALICE.password}  # fmt: skip

    async def scenario() -> None:
        accounts = XmppAccountOutlet(account_settings(table))
        await accounts.start()
        with Watcher(BOB, prosody.c2s) as bob, Watcher(ALICE, prosody.c2s, "laptop"):
            own = f"{ALICE.jid}/laptop"
            await asyncio.to_thread(bob.wait, own, showing(""), WAIT)
            await accounts.publish(alice(Situation.HUB_CALL, "On the phone (MS Teams)"))
            accept = showing("dnd", "On the phone (MS Teams)")
            seen = await asyncio.to_thread(bob.wait, ALICE_ACCOUNT, accept, WAIT)
            assert seen.priority == -1
            assert accounts.health().up
            await accounts.publish(alice(None))  # alice leaves the hub
            await asyncio.to_thread(bob.wait, ALICE_ACCOUNT, offline, WAIT)
            assert showing("")(bob.of(own))  # her own client is untouched
            await accounts.stop()

    try:
        asyncio.run(scenario())
    finally:
        prosody.close()
