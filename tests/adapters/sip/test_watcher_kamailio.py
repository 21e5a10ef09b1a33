"""The sip-dialog watcher against a real Kamailio: calls relayed through it (SIPp)
reach the lines as ringing → connected → ended; its faults (restart mid-call, a lost
subscription answered 481, malformed and oversized NOTIFYs) leave the lines agreeing
with the PBX."""

from __future__ import annotations

import asyncio
import socket
import time
from functools import partial
from typing import Any

import pytest

from presencebridge.adapters.sip.bodies import dialog_info
from presencebridge.adapters.sip.settings import parse_dialog
from presencebridge.adapters.sip.ua import UserAgent
from presencebridge.adapters.sip.watcher import DialogWatcher
from presencebridge.core.model import CallState
from tests.adapters.sip.fakes import RecordingLines, until
from tests.support.kamailio import Kamailio, Sipp

RING, TALK, END = CallState.RINGING, CallState.CONNECTED, CallState.ENDED


def watcher(kamailio: Kamailio, lines: RecordingLines, **more: Any) -> DialogWatcher:
    table = {"name": "pbx", "server": kamailio.domain, "keepalive_seconds": 1, **more}
    return DialogWatcher(parse_dialog(table), lines)


def all_subscribed(connector: DialogWatcher) -> bool:
    return connector.health().up


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_a_call_through_kamailio_rings_connects_and_ends(
    kamailio: Kamailio, sipp: Sipp, transport: str
) -> None:
    lines = RecordingLines(["201", "202", "203"])

    async def scenario() -> None:
        connector = watcher(kamailio, lines, transport=transport)
        await connector.start()
        try:
            await until(lambda: all_subscribed(connector), what="3 lines subscribed")
            assert connector.health().detail == "3 of 3 lines subscribed"
            sipp.call("201", "202", talk_ms=1500)
            await until(lambda: lines.on_the_phone("202"), what="callee on the phone")
            await until(lambda: END in lines.states("202"), bound=60, what="callee idle")
            await asyncio.to_thread(sipp.wait)
            await until(lambda: not lines.on_the_phone("201"), what="caller idle")
        finally:
            await connector.stop()

    asyncio.run(scenario())
    assert lines.states("202") == [RING, TALK, END], lines.events
    assert TALK in lines.states("201") and lines.states("201")[-1] is END, lines.events
    assert "203" not in {e[0] for e in lines.events}


def test_lines_follow_the_hub(kamailio: Kamailio, sipp: Sipp) -> None:
    lines = RecordingLines(["201"])

    async def scenario() -> None:
        connector = watcher(kamailio, lines, subscribe_rate=20)
        await connector.start()
        try:
            await until(lambda: all_subscribed(connector))
            lines.set_lines(["202", "203", "204"])
            await until(lambda: connector.health().detail == "3 of 3 lines subscribed")
            assert sorted(connector.lines) == ["202", "203", "204"]
        finally:
            await connector.stop()

    asyncio.run(scenario())


def test_restart_mid_call_leaves_no_one_on_the_phone(kamailio: Kamailio, sipp: Sipp) -> None:
    lines = RecordingLines(["201", "202"])

    async def scenario() -> None:
        connector = watcher(kamailio, lines)
        await connector.start()
        try:
            await until(lambda: all_subscribed(connector))
            sipp.call("201", "202", talk_ms=60_000)
            await until(lambda: TALK in lines.states("202"), what="callee talking")
            # The PBX goes away mid-call, the phones with it; it comes back empty.
            await asyncio.to_thread(kamailio.stop, True)
            sipp.kill()
            await until(lambda: not connector.health().up, what="watcher notices")
            await asyncio.to_thread(kamailio.start)
            await until(lambda: not lines.on_the_phone("202"), what="callee idle again")
            await until(lambda: all_subscribed(connector), what="resubscribed")
            assert not lines.on_the_phone("201")
            assert connector.counts["server_restarts"] == 1
            assert connector.counts["server_silences"] == 0
        finally:
            await connector.stop()

    asyncio.run(scenario())


def test_a_silent_server_keeps_its_subscriptions(kamailio: Kamailio, sipp: Sipp) -> None:
    """An overloaded PBX that stops answering for a while has not forgotten anything:
    no line is subscribed anew; the one with a call is read again and ends idle."""
    lines = RecordingLines(["201", "202", "203"])

    async def scenario() -> None:
        connector = watcher(kamailio, lines)
        await connector.start()
        try:
            await until(lambda: all_subscribed(connector))
            sipp.call("201", "202", talk_ms=30_000)
            await until(lambda: TALK in lines.states("202"), what="callee talking")
            subscribed = connector.counts["subscribed"]
            refreshed = connector.counts["refreshed"]
            await asyncio.to_thread(kamailio.pause)
            try:
                await until(lambda: not connector.liveness.up, bound=60, what="silence seen")
            finally:
                await asyncio.to_thread(kamailio.resume)
            await until(lambda: connector.counts["server_silences"] == 1, bound=60)
            # Three probes, then the two lines with the call read again by refresh.
            await until(lambda: connector.counts["refreshed"] >= refreshed + 3, bound=60)
            assert connector.counts["server_restarts"] == 0
            assert connector.counts["subscribed"] == subscribed, connector.counts
            assert all_subscribed(connector)
            await asyncio.to_thread(sipp.wait)
            await until(lambda: not lines.on_the_phone("202"), bound=60, what="callee idle")
            await until(lambda: not lines.on_the_phone("201"), bound=60, what="caller idle")
        finally:
            await connector.stop()

    asyncio.run(scenario())
    assert lines.states("202")[-1] is END, lines.events


def test_a_lost_subscription_answered_481_is_made_anew(kamailio: Kamailio, sipp: Sipp) -> None:
    lines = RecordingLines(["201"])

    async def scenario() -> None:
        # No keep-alive: only the refresh can find out that the server forgot us.
        connector = watcher(kamailio, lines, keepalive_seconds=0, expires=10)
        await connector.start()
        try:
            await until(lambda: all_subscribed(connector))
            await asyncio.to_thread(kamailio.restart)
            await until(
                lambda: connector.counts["resubscribed_after_481"] >= 1,
                bound=60,
                what="a refresh answered 481",
            )
            await until(lambda: all_subscribed(connector))
            sipp.call("202", "201", talk_ms=500)
            await until(lambda: TALK in lines.states("201"), bound=60, what="call seen")
            await until(lambda: not lines.on_the_phone("201"), bound=60)
        finally:
            await connector.stop()

    asyncio.run(scenario())


def notify(connector: DialogWatcher, extension: str, body: bytes, cseq: int) -> bytes:
    """A NOTIFY in the line's subscription dialog, as the PBX would send it."""
    dialog = connector.lines[extension].dialog
    assert dialog is not None and dialog.remote_tag is not None
    port = connector.ua.transport.port
    head = (
        f"NOTIFY sip:presencebridge@127.0.0.1:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKfault{cseq}\r\n"
        f"From: <{dialog.remote_uri}>;tag={dialog.remote_tag}\r\n"
        f"To: <{dialog.local_uri}>;tag={dialog.local_tag}\r\n"
        f"Call-ID: {dialog.call_id}\r\nCSeq: {cseq} NOTIFY\r\nEvent: dialog\r\n"
        "Subscription-State: active;expires=300\r\n"
        "Content-Type: application/dialog-info+xml\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def to_watcher(connector: DialogWatcher, *datagrams: bytes) -> None:
    """Datagrams straight to the watcher's socket, as from the PBX."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for raw in datagrams:
            sock.sendto(raw, ("127.0.0.1", connector.ua.transport.port))


def test_malformed_and_oversized_notifies_are_counted_and_ignored(
    kamailio: Kamailio, sipp: Sipp
) -> None:
    lines = RecordingLines(["201", "202"])
    bad = [
        b"<dialog-info xmlns='urn:ietf:params:xml:ns:dialog-info'",
        b"<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'aaaa'>]><x>&a;</x>",
        b"<dialog-info xmlns='urn:ietf:params:xml:ns:dialog-info' version='x' state='full'/>",
        b"<dialog-info xmlns='urn:ietf:params:xml:ns:dialog-info' version='9' state='full'>"
        + b"<dialog id='a'><state>confirmed</state></dialog>" * 300
        + b"</dialog-info>",
    ]

    async def scenario() -> None:
        connector = watcher(kamailio, lines, max_body_bytes=4096)
        await connector.start()
        try:
            await until(lambda: all_subscribed(connector))
            notifies = [notify(connector, "201", b, n) for n, b in enumerate(bad, start=100)]
            to_watcher(connector, *notifies, b"GARBAGE\r\n\r\n")
            await until(lambda: connector.counts["malformed_bodies"] >= 4, what="malformed counted")
            await until(lambda: connector.ua.transport.counters.malformed >= 1)
            assert not lines.events
            # Still watching: a real call afterwards is seen.
            sipp.call("202", "201", talk_ms=500)
            await until(lambda: TALK in lines.states("201"), bound=60)
            await until(lambda: not lines.on_the_phone("201"), bound=60)
            assert connector.health().up
        finally:
            await connector.stop()

    asyncio.run(scenario())


def more_than(connector: DialogWatcher, count: int) -> bool:
    return connector.counts["notifies"] > count


def test_an_ended_call_listed_again_is_not_reported_again(kamailio: Kamailio) -> None:
    """The PBX lists an ended call in every NOTIFY until its document expires (five
    minutes with pua_dialoginfo): an agent with many short calls would otherwise cost
    the hub an event per ended call and NOTIFY. Each call's end is reported once."""
    lines = RecordingLines(["301"])
    steps = [
        {"a": "confirmed"},
        {"a": "terminated"},
        {"a": "terminated", "b": "confirmed"},
        {"a": "terminated", "b": "terminated"},
        {"b": "terminated"},  # a's document expired
        {"b": "terminated", "c": "early"},
    ]

    def body(version: int, calls: dict[str, str]) -> bytes:
        dialogs = "".join(
            f"<dialog id='{c}' call-id='{c}' direction='recipient'><state>{s}</state></dialog>"
            for c, s in calls.items()
        )
        return (
            "<?xml version='1.0'?><dialog-info xmlns='urn:ietf:params:xml:ns:dialog-info' "
            f"version='{version}' state='full' entity='sip:301@{kamailio.domain}'>"
            f"{dialogs}</dialog-info>"
        ).encode()

    async def scenario() -> None:
        connector = watcher(kamailio, lines, keepalive_seconds=0)
        await connector.start()
        try:
            await until(lambda: all_subscribed(connector))
            for number, calls in enumerate(steps, start=200):
                counted = connector.counts["notifies"]
                to_watcher(connector, notify(connector, "301", body(number, calls), number))
                # one at a time, as the PBX sends them (each answered before the next)
                await until(partial(more_than, connector, counted))
            await until(lambda: RING in lines.states("301")[3:], what="the third call rings")
        finally:
            await connector.stop()

    asyncio.run(scenario())
    assert [(call, state) for _, call, state in lines.events] == [
        ("a", TALK), ("a", END), ("b", TALK), ("b", END), ("c", RING),
    ]  # fmt: skip


def test_a_thousand_lines_subscribed_paced_and_notifications_at_200_per_second(
    kamailio: Kamailio,
) -> None:
    """A small form of the issue's benchmark: 1,000 lines subscribed at the configured
    rate (not faster), then dialog NOTIFYs for 400 of them at 200/s (PUBLISHed to
    Kamailio by a generator): every one reaches the lines, none is lost."""
    extensions = [str(5000 + i) for i in range(1000)]
    lines = RecordingLines(extensions)
    reported: dict[str, float] = {}
    record = lines.report

    async def report(extension: str, call_id: str, state: CallState) -> None:
        reported.setdefault(extension, time.monotonic())
        await record(extension, call_id, state)

    lines.report = report  # type: ignore[method-assign]

    async def scenario() -> dict[str, float]:
        connector = watcher(kamailio, lines, subscribe_rate=400, keepalive_seconds=0)
        generator = UserAgent(("127.0.0.1", kamailio.port), domain=kamailio.domain)
        started = time.monotonic()
        await connector.start()
        await generator.start()
        try:
            await until(lambda: all_subscribed(connector), bound=120, what="1,000 subscribed")
            assert time.monotonic() - started >= 999 / 400 * 0.95  # paced, not at once
            sent: dict[str, float] = {}
            for extension in extensions[::5][:200] + extensions[1::5][:200]:
                sent[extension] = time.monotonic()
                body = dialog_info(f"sip:{extension}@{kamailio.domain}", 1, "pbx-1", "confirmed")
                dialog = generator.new_dialog(f"sip:{extension}@{kamailio.domain}")
                request = generator.build(
                    "PUBLISH", dialog, [("Event", "dialog"), ("Expires", "60")], body,
                    "application/dialog-info+xml",
                )  # fmt: skip
                asyncio.create_task(generator.send(request, dialog))  # noqa: RUF006
                await asyncio.sleep(1 / 200)
            await until(lambda: len(reported) >= len(sent), bound=60, what="all reported")
            assert connector.health().up and connector.counts["subscribed"] == 1000
            return {e: reported[e] - sent[e] for e in sent}
        finally:
            await generator.close()
            await connector.stop()

    latencies = sorted(asyncio.run(scenario()).values())
    p99 = latencies[int(len(latencies) * 0.99) - 1]
    print(f"PUBLISH -> Kamailio -> NOTIFY -> report: p50 {latencies[len(latencies) // 2]:.3f} s,"
          f" p99 {p99:.3f} s")  # fmt: skip
    assert p99 < 5.0  # a bound for a busy machine, not the figure


def test_a_subscription_the_server_ends_is_made_anew(kamailio: Kamailio, sipp: Sipp) -> None:
    lines = RecordingLines(["201", "202"])

    async def scenario() -> None:
        connector = watcher(kamailio, lines)
        await connector.start()
        try:
            await until(lambda: all_subscribed(connector))
            old = connector.lines["201"].dialog
            assert old is not None
            raw = notify(connector, "201", b"", 200).replace(
                b"Subscription-State: active;expires=300",
                b"Subscription-State: terminated;reason=deactivated",
            )
            to_watcher(connector, raw)
            await until(lambda: connector.counts["terminated_by_server"] == 1)
            await until(
                lambda: (
                    connector.lines["201"].dialog not in (None, old) and all_subscribed(connector)
                ),
                what="a new subscription",
            )
            sipp.call("202", "201", talk_ms=500)
            await until(lambda: TALK in lines.states("201"), bound=60, what="call seen")
        finally:
            await connector.stop()

    asyncio.run(scenario())
