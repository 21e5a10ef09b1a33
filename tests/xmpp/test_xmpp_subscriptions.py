"""A colleague who has no shared roster asks for alice's telephony contact: the
component approves, sends the state, pushes changes, and says goodbye at its stop.
The outlet runs in the test's process against a real Prosody."""

from __future__ import annotations

import asyncio
from pathlib import Path

from presencebridge.adapters.xmpp import component_settings
from presencebridge.adapters.xmpp.component import XmppComponentOutlet
from presencebridge.core.ports import OutwardUser
from presencebridge.core.publication import OUTWARD, Publication, Situation
from tests.support.xmpp import COMPONENT, Account, ProsodyServer, Watcher, offline, showing
from tests.xmpp.conftest import ALICE_COMPONENT, COMPONENT_SECRET, WAIT

CAROL = Account("carol", "carol-password")


def alice(situation: Situation, text: str) -> OutwardUser:
    found = Publication(situation, OUTWARD[situation], text)
    return OutwardUser("alice", "Alice", "alice@example.com", (), found)


async def until(condition: object, what: str) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + WAIT
    while not condition():  # type: ignore[operator]
        assert loop.time() < end, what
        await asyncio.sleep(0.05)


def test_a_subscription_request_is_approved_and_followed(tmp_path: Path) -> None:
    prosody = ProsodyServer(tmp_path / "prosody", COMPONENT_SECRET, {})
    prosody.register(CAROL)
    prosody.start()

    async def scenario() -> None:
        table = {"name": "chat", "domain": COMPONENT, "port": prosody.component,
                 "secret": COMPONENT_SECRET}  # fmt: skip
        component = XmppComponentOutlet(component_settings(table))
        await component.start()
        await component.publish(alice(Situation.HUB_CALL, "On the phone (MS Teams)"))
        await until(lambda: component.link.up, "the component did not connect")
        with Watcher(CAROL, prosody.c2s) as carol:
            assert carol.roster == []
            carol.send(ALICE_COMPONENT, "subscribe")
            accept = showing("dnd", "On the phone (MS Teams)")
            await asyncio.to_thread(carol.wait, ALICE_COMPONENT, accept, WAIT)
            assert component.health().counts["subscriptions_approved"] == 1
            await component.publish(alice(Situation.AWAY, "Away"))
            await asyncio.to_thread(carol.wait, ALICE_COMPONENT, showing("away", "Away"), WAIT)
            await component.stop()
            await asyncio.to_thread(carol.wait, ALICE_COMPONENT, offline, WAIT)

    try:
        asyncio.run(scenario())
    finally:
        prosody.close()
