"""The component's decisions, stanza by stanza, with the stream replaced by a recorder:
who gets presence, what a probe, a subscription request or a withdrawal sends."""

from __future__ import annotations

import asyncio
from typing import Any

from slixmpp import Presence

from presencebridge.adapters.xmpp import (
    account_settings,
    component_settings,
)
from presencebridge.adapters.xmpp.account import XmppAccountOutlet
from presencebridge.adapters.xmpp.component import XmppComponentOutlet
from presencebridge.core.ports import OutwardUser
from presencebridge.core.publication import OUTWARD, Publication, Situation
from tests.support.ports import free_port

DOMAIN = "presence.example.com"


class Recorder:
    """Stands in for the live slixmpp stream: keeps what would have been sent."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send_presence(self, **fields: Any) -> None:
        self.sent.append(fields)

    def take(self) -> list[tuple[str, str, str | None, str | None, str | None]]:
        found = [
            (f["pfrom"], f["pto"], f.get("ptype"), f.get("pshow"), f.get("pstatus"))
            for f in self.sent
        ]
        self.sent.clear()
        return found


def outlet(**fields: Any) -> tuple[XmppComponentOutlet, Recorder]:
    table = {"name": "chat", "domain": DOMAIN, "secret": "s", **fields}
    made = XmppComponentOutlet(component_settings(table))
    recorder = Recorder()
    made.link.xmpp = recorder  # type: ignore[assignment]
    return made, recorder


def alice(situation: Situation | None, text: str = "Text", user_id: str = "alice") -> OutwardUser:
    found = None if situation is None else Publication(situation, OUTWARD[situation], text)
    return OutwardUser(user_id, "Alice", "Alice@example.com", (), found)


def stanza(sender: str, to: str, kind: str) -> Presence:
    found = Presence()
    found["from"], found["to"], found["type"] = sender, to, kind
    return found


def test_a_probe_from_the_site_is_answered_with_the_current_state() -> None:
    component, sent = outlet()
    asyncio.run(component.publish(alice(Situation.HUB_CALL, "Am Telefon (MS Teams)")))
    assert sent.take() == []  # nobody watches yet
    component._on_probe(stanza("bob@example.com", f"Alice@{DOMAIN}", "probe"))
    assert sent.take() == [
        (f"alice@{DOMAIN}", "bob@example.com", None, "dnd", "Am Telefon (MS Teams)")
    ]
    asyncio.run(component.publish(alice(Situation.AVAILABLE, "Verfügbar")))
    assert sent.take() == [(f"alice@{DOMAIN}", "bob@example.com", None, None, "Verfügbar")]
    asyncio.run(component.publish(alice(Situation.AVAILABLE, "Verfügbar")))
    assert sent.take() == []  # nothing new for XMPP: nothing sent
    asyncio.run(component.publish(alice(Situation.OFFLINE, "Offline")))
    assert sent.take() == [(f"alice@{DOMAIN}", "bob@example.com", "unavailable", None, "Offline")]
    assert component.health().counts["probes_answered"] == 1


def test_a_probe_for_a_user_not_published_yet_says_unavailable() -> None:
    component, sent = outlet()
    component._on_probe(stanza("bob@example.com/desk", f"nobody@{DOMAIN}", "probe"))
    assert sent.take() == [(f"nobody@{DOMAIN}", "bob@example.com", "unavailable", None, None)]


def test_nothing_goes_to_other_domains_whatever_they_send() -> None:
    component, sent = outlet()
    asyncio.run(component.publish(alice(Situation.DND)))
    for kind in ("probe", "subscribe", "available"):
        handler = {"probe": component._on_probe, "subscribe": component._on_subscribe,
                   "available": component._on_watcher_presence}[kind]  # fmt: skip
        handler(stanza("mallory@evil.example", f"alice@{DOMAIN}", kind))
    asyncio.run(component.publish(alice(Situation.AWAY)))
    assert sent.take() == []
    assert component.health().counts["not_allowed"] == 3
    allowed, sent = outlet(allowed_domains=["evil.example"])
    allowed._on_probe(stanza("mallory@evil.example", f"alice@{DOMAIN}", "probe"))
    assert len(sent.take()) == 1


def test_subscription_requests_are_approved_for_users_and_refused_otherwise() -> None:
    component, sent = outlet()
    asyncio.run(component.publish(alice(Situation.BUSY, "Beschäftigt")))
    component._on_subscribe(stanza("carol@example.com/phone", f"alice@{DOMAIN}", "subscribe"))
    assert sent.take() == [
        (f"alice@{DOMAIN}", "carol@example.com", "subscribed", None, None),
        (f"alice@{DOMAIN}", "carol@example.com", None, "dnd", "Beschäftigt"),
    ]
    component._on_subscribe(stanza("carol@example.com", f"ghost@{DOMAIN}", "subscribe"))
    assert sent.take() == [(f"ghost@{DOMAIN}", "carol@example.com", "unsubscribed", None, None)]
    component._on_unsubscribe(stanza("carol@example.com", f"alice@{DOMAIN}", "unsubscribe"))
    assert sent.take() == [(f"alice@{DOMAIN}", "carol@example.com", "unsubscribed", None, None)]
    asyncio.run(component.publish(alice(Situation.AWAY)))
    assert sent.take() == []  # carol is no watcher any more

    refusing, sent = outlet(approve_subscriptions=False)
    asyncio.run(refusing.publish(alice(Situation.BUSY)))
    refusing._on_subscribe(stanza("carol@example.com", f"alice@{DOMAIN}", "subscribe"))
    assert sent.take() == [(f"alice@{DOMAIN}", "carol@example.com", "unsubscribed", None, None)]


def test_a_watchers_own_presence_makes_it_known() -> None:
    """Shared rosters (`both`): the watcher's server sends it its presence."""
    component, sent = outlet()
    asyncio.run(component.publish(alice(Situation.DND, "Nicht stören")))
    component._on_watcher_presence(stanza("bob@example.com/desk", f"alice@{DOMAIN}", "available"))
    component._on_watcher_presence(stanza("bob@example.com/pad", f"alice@{DOMAIN}", "away"))
    assert sent.take() == [(f"alice@{DOMAIN}", "bob@example.com", None, "dnd", "Nicht stören")]


def test_a_withdrawn_user_goes_offline_and_is_forgotten() -> None:
    component, sent = outlet()
    asyncio.run(component.publish(alice(Situation.DND)))
    component._on_probe(stanza("bob@example.com", f"alice@{DOMAIN}", "probe"))
    sent.take()
    asyncio.run(component.publish(alice(None)))
    assert sent.take() == [(f"alice@{DOMAIN}", "bob@example.com", "unavailable", None, None)]
    assert component.health().detail.endswith("0 users, 0 watchers")


def test_two_users_on_one_address_show_only_the_first() -> None:
    component, sent = outlet()
    asyncio.run(component.publish(alice(Situation.DND, user_id="alice")))
    asyncio.run(component.publish(alice(Situation.AWAY, user_id="alice-2")))
    component._on_probe(stanza("bob@example.com", f"alice@{DOMAIN}", "probe"))
    assert [s[3] for s in sent.take()] == ["dnd"]
    assert component.health().counts["address_taken"] == 1


def test_a_new_session_and_the_stop_tell_every_known_watcher() -> None:
    component, sent = outlet()
    asyncio.run(component.publish(alice(Situation.DND)))
    component._on_probe(stanza("bob@example.com", f"alice@{DOMAIN}", "probe"))
    sent.take()
    component._on_up(sent)  # type: ignore[arg-type]
    assert [(s[1], s[3]) for s in sent.take()] == [("bob@example.com", "dnd")]
    component._goodbye(sent)  # type: ignore[arg-type]
    assert [(s[1], s[2]) for s in sent.take()] == [("bob@example.com", "unavailable")]


def test_the_account_outlet_serves_at_most_max_accounts() -> None:
    async def scenario() -> None:
        # Nobody listens on the port: the streams keep trying, which is all this needs.
        table = {"name": "acc", "secret": "s", "port": free_port(), "max_accounts": 1}
        accounts = XmppAccountOutlet(account_settings(table))
        await accounts.start()
        await accounts.publish(alice(Situation.DND, user_id="alice"))
        second = OutwardUser("bob", "Bob", "bob@example.com", (), alice(Situation.DND).publication)
        await accounts.publish(second)
        health = accounts.health()
        assert not health.up
        assert health.counts["accounts"] == 1
        assert health.counts["over_cap"] == 1
        assert "1 not served: max_accounts is 1" in health.detail
        await accounts.publish(alice(None, user_id="alice"))  # alice leaves: room for bob
        await accounts.publish(second)
        assert accounts.health().counts["over_cap"] == 0
        await accounts.stop()
        assert accounts.health().counts["accounts"] == 0

    asyncio.run(scenario())
