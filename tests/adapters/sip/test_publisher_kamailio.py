"""The sip-presence publisher against a real Kamailio presence server: what it
PUBLISHes reaches watchers of `Event: presence` and `Event: dialog` (a BLF key), one
document per user and event (SIP-If-Match), at most two PUBLISHes per change, a 412
after the server forgot starts over, refreshes keep it, and `Expires: 0` removes it."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from presencebridge.adapters.sip.publisher import PresencePublisher
from presencebridge.adapters.sip.settings import parse_presence
from presencebridge.core.ports import OutletUnavailable, OutwardUser
from presencebridge.core.publication import OUTWARD, Publication, Situation
from tests.adapters.sip.fakes import until
from tests.support.kamailio import Kamailio
from tests.support.sipwatch import Watcher, dialog_states

TEAMS_CALL = Publication(Situation.HUB_CALL, OUTWARD[Situation.HUB_CALL], "Am Telefon (MS Teams)")
FREE = Publication(Situation.AVAILABLE, OUTWARD[Situation.AVAILABLE], "Available")
DND = Publication(Situation.DND, OUTWARD[Situation.DND], "Do not disturb")


def alice(publication: Publication | None) -> OutwardUser:
    return OutwardUser("alice", "Alice", None, ("201",), publication)


def publisher(kamailio: Kamailio, **more: Any) -> PresencePublisher:
    return PresencePublisher(parse_presence({"name": "sip", "server": kamailio.domain, **more}))


def requests(outlet: PresencePublisher) -> int:
    return outlet.counts["published"]


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_a_teams_call_lights_the_blf_key_and_shows_on_the_phone(
    kamailio: Kamailio, transport: str
) -> None:
    uri = f"sip:201@{kamailio.domain}"

    async def scenario() -> None:
        watcher = Watcher(("127.0.0.1", kamailio.port), kamailio.domain)
        outlet = publisher(kamailio, transport=transport)
        await watcher.start()
        await outlet.start()
        try:
            blf = await watcher.subscribe(uri, "dialog")
            presence = await watcher.subscribe(uri, "presence")
            await outlet.publish(alice(TEAMS_CALL))
            assert requests(outlet) == 2  # presence and dialog
            await until(lambda: "confirmed" in dialog_states(watcher.last(blf)))
            await until(lambda: b"<rpid:on-the-phone/>" in watcher.last(presence))
            assert b"Am Telefon (MS Teams)" in watcher.last(presence)

            await outlet.publish(alice(TEAMS_CALL))  # nothing new: nothing sent
            assert requests(outlet) == 2
            await outlet.publish(alice(FREE))  # both change
            assert requests(outlet) == 4
            await until(lambda: dialog_states(watcher.last(blf)) == ["terminated"])
            assert ("alice", "dialog") not in outlet.documents  # ended, forgotten
            await until(lambda: b"<rpid:activities/>" in watcher.last(presence))
            await outlet.publish(alice(DND))  # only the presence document changes
            assert requests(outlet) == 5
            await until(lambda: b"<rpid:busy/>" in watcher.last(presence))
            # One document per user and event: modified, never added to.
            assert watcher.last(presence).count(b"<tuple") == 1

            # A second Teams call: a new dialog document (Kamailio takes no change to
            # one that showed terminated), the key lights again.
            await outlet.publish(alice(TEAMS_CALL))
            await until(lambda: "confirmed" in dialog_states(watcher.last(blf)))
            await outlet.publish(alice(FREE))
            await until(lambda: "confirmed" not in dialog_states(watcher.last(blf)))
            assert requests(outlet) == 9

            await outlet.publish(alice(None))  # the user left the hub
            assert outlet.counts["removed"] == 1 and not outlet.documents
            await until(lambda: b"<rpid:busy/>" not in watcher.last(presence))
        finally:
            await outlet.stop()
            await watcher.close()

    asyncio.run(scenario())


def test_stop_removes_everything_and_412_starts_over(kamailio: Kamailio) -> None:
    uri = f"sip:201@{kamailio.domain}"

    async def scenario() -> None:
        outlet = publisher(kamailio)
        await outlet.start()
        await outlet.publish(alice(TEAMS_CALL))
        # The server forgets every document (restart): the next change is answered 412
        # for its SIP-If-Match, and the publisher starts over without it.
        await asyncio.to_thread(kamailio.restart)
        watcher = Watcher(("127.0.0.1", kamailio.port), kamailio.domain)
        await watcher.start()
        try:
            presence = await watcher.subscribe(uri, "presence")
            await outlet.publish(alice(DND))
            assert outlet.counts["restarted_after_412"] == 2  # presence and dialog
            await until(lambda: b"<rpid:busy/>" in watcher.last(presence))
            await outlet.stop()
            assert outlet.counts["removed"] == 1  # presence; the dialog had ended
            await until(lambda: b"<rpid:busy/>" not in watcher.last(presence))
        finally:
            await watcher.close()

    asyncio.run(scenario())


def test_documents_are_refreshed_before_they_expire(kamailio: Kamailio) -> None:
    uri = f"sip:201@{kamailio.domain}"

    async def scenario() -> None:
        outlet = publisher(kamailio, expires=10)
        watcher = Watcher(("127.0.0.1", kamailio.port), kamailio.domain)
        await outlet.start()
        await watcher.start()
        try:
            await outlet.publish(alice(TEAMS_CALL))
            await until(lambda: outlet.counts["refreshed"] >= 4, bound=60, what="4 refreshes")
            # Long past the first expiry, a new watcher still finds the document.
            blf = await watcher.subscribe(uri, "dialog")
            await until(lambda: "confirmed" in dialog_states(watcher.last(blf)))
        finally:
            await outlet.stop()
            await watcher.close()

    asyncio.run(scenario())


def test_an_unreachable_server_is_unavailable(kamailio: Kamailio) -> None:
    async def scenario() -> None:
        outlet = publisher(kamailio, timeout_seconds=2)
        await outlet.start()
        await asyncio.to_thread(kamailio.stop)
        try:
            with pytest.raises(OutletUnavailable):
                await outlet.publish(alice(TEAMS_CALL))
            assert not outlet.health().up
        finally:
            await outlet.stop()

    asyncio.run(scenario())


def test_documents_are_published_anew_when_the_server_is_back(kamailio: Kamailio) -> None:
    uri = f"sip:201@{kamailio.domain}"

    async def scenario() -> None:
        outlet = publisher(kamailio, keepalive_seconds=1, timeout_seconds=2)
        await outlet.start()
        try:
            await outlet.publish(alice(TEAMS_CALL))
            await asyncio.to_thread(kamailio.stop, True)  # a crash: every document gone
            await until(lambda: not outlet.health().up, what="server silence noticed")
            await asyncio.to_thread(kamailio.start)
            await until(lambda: outlet.health().up and outlet.counts["refreshed"] >= 2)
            assert outlet.counts["server_restarts"] == 1
            watcher = Watcher(("127.0.0.1", kamailio.port), kamailio.domain)
            await watcher.start()
            try:
                blf = await watcher.subscribe(uri, "dialog")
                presence = await watcher.subscribe(uri, "presence")
                await until(lambda: "confirmed" in dialog_states(watcher.last(blf)))
                await until(lambda: b"<rpid:on-the-phone/>" in watcher.last(presence))
            finally:
                await watcher.close()
        finally:
            await outlet.stop()

    asyncio.run(scenario())
