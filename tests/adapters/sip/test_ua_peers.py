"""The user agent's transactions against peers on real sockets: retransmission by RFC
3261 Timer E over UDP (none over TCP), Timer F, a retransmitted NOTIFY answered from the
cache, and digest authentication against a Kamailio that challenges (MD5, SHA-256)."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

import pytest
from sipmessage import Request, Response

from presencebridge.adapters.sip.message import parse
from presencebridge.adapters.sip.publisher import PresencePublisher
from presencebridge.adapters.sip.settings import parse_dialog, parse_presence
from presencebridge.adapters.sip.ua import TransactionError, UserAgent
from presencebridge.adapters.sip.watcher import DialogWatcher
from presencebridge.core.ports import OutletUnavailable, OutwardUser
from presencebridge.core.publication import OUTWARD, Publication, Situation
from tests.adapters.sip.fakes import RecordingLines, until
from tests.support.kamailio import Kamailio


def answer(raw: bytes, code: int) -> bytes:
    request = parse(raw)
    lines = [f"SIP/2.0 {code} Whatever"]
    for name in ("Via", "From", "To", "Call-ID", "CSeq"):
        lines += [f"{name}: {v}" for v in request.headers.getlist(name)]
    return ("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode()


class Peer(asyncio.DatagramProtocol):
    """A UDP peer that keeps arrival times and answers by a script: per arrival, the
    code to answer (None: stay silent)."""

    def __init__(self, script: list[int | None]) -> None:
        self.script = script
        self.arrivals: list[tuple[float, bytes]] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.arrivals.append((time.monotonic(), data))
        code = (
            self.script[len(self.arrivals) - 1] if len(self.arrivals) <= len(self.script) else None
        )
        if code is not None and self.transport is not None:
            self.transport.sendto(answer(data, code), addr)


async def udp_peer(script: list[int | None]) -> tuple[Peer, int]:
    loop = asyncio.get_running_loop()
    transport, peer = await loop.create_datagram_endpoint(
        lambda: Peer(script), local_addr=("127.0.0.1", 0)
    )
    return peer, int(transport.get_extra_info("sockname")[1])


async def options(ua: UserAgent, give_up: float = 32.0) -> Response:
    dialog = ua.new_dialog("sip:peer@127.0.0.1")
    return await ua.send(ua.build("OPTIONS", dialog), dialog, give_up)


def gaps(peer: Peer) -> list[float]:
    times = [t for t, _ in peer.arrivals]
    return [b - a for a, b in itertools.pairwise(times)]


def test_udp_retransmits_with_doubling_intervals_until_answered() -> None:
    async def scenario() -> None:
        peer, port = await udp_peer([None, None, None, 200])
        ua = UserAgent(("127.0.0.1", port), domain="127.0.0.1", local_host="127.0.0.1")
        await ua.start()
        try:
            response = await options(ua)
        finally:
            await ua.close()
        assert response.code == 200
        assert len(peer.arrivals) == 4
        # Timer E: T1, 2·T1, 4·T1 (lower bounds: a busy machine is only ever late).
        for gap, least in zip(gaps(peer), (0.45, 0.95, 1.95), strict=True):
            assert gap >= least, gaps(peer)
        assert len({parse(d).via[0].parameters["branch"] for _, d in peer.arrivals}) == 1

    asyncio.run(scenario())


def test_a_provisional_response_slows_retransmission_to_t2() -> None:
    async def scenario() -> None:
        peer, port = await udp_peer([100, None, 200])
        ua = UserAgent(("127.0.0.1", port), domain="127.0.0.1", local_host="127.0.0.1")
        await ua.start()
        try:
            response = await options(ua)
        finally:
            await ua.close()
        assert response.code == 200
        assert gaps(peer)[-1] >= 3.9, gaps(peer)  # T2 = 4 s after the 100

    asyncio.run(scenario())


def test_no_final_response_is_a_transaction_error_after_timer_f() -> None:
    async def scenario() -> None:
        peer, port = await udp_peer([])
        ua = UserAgent(("127.0.0.1", port), domain="127.0.0.1", local_host="127.0.0.1")
        await ua.start()
        started = time.monotonic()
        try:
            with pytest.raises(TransactionError):
                await options(ua, give_up=2.0)
        finally:
            await ua.close()
        assert time.monotonic() - started >= 2.0
        assert 2 <= len(peer.arrivals) <= 3  # 0, 0.5, 1.5 s

    asyncio.run(scenario())


def test_tcp_sends_once_and_waits() -> None:
    received: list[bytes] = []

    async def scenario() -> None:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            data = await reader.readuntil(b"\r\n\r\n")
            received.append(data)
            await asyncio.sleep(1.5)  # longer than T1: UDP would have retransmitted
            writer.write(answer(data, 200))
            await writer.drain()
            await asyncio.sleep(1)

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        ua = UserAgent(
            ("127.0.0.1", port), transport="tcp", domain="127.0.0.1", local_host="127.0.0.1"
        )
        await ua.start()
        try:
            response = await options(ua)
        finally:
            await ua.close()
            server.close()
        assert response.code == 200 and len(received) == 1
        assert b"SIP/2.0/TCP" in received[0] and b";transport=tcp>" in received[0]

    asyncio.run(scenario())


def test_a_retransmitted_request_is_answered_from_the_cache() -> None:
    handled: list[str] = []

    async def scenario() -> None:
        def on_request(request: Request) -> Response:
            handled.append(request.method)
            return ua.response(request, 200, "OK")

        ua = UserAgent(
            ("127.0.0.1", 9), domain="127.0.0.1", local_host="127.0.0.1", on_request=on_request
        )
        await ua.start()
        peer, _ = await udp_peer([])
        notify = (
            b"NOTIFY sip:presencebridge@127.0.0.1 SIP/2.0\r\n"
            b"Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKsame\r\n"
            b"From: <sip:201@x>;tag=a\r\nTo: <sip:pb@x>;tag=b\r\nCall-ID: c1\r\n"
            b"CSeq: 5 NOTIFY\r\nContent-Length: 0\r\n\r\n"
        )
        assert peer.transport is not None
        for _ in range(3):
            peer.transport.sendto(notify, ("127.0.0.1", ua.transport.port))
        await until(lambda: len(peer.arrivals) >= 3)
        answers = [d for _, d in peer.arrivals]
        await ua.close()
        assert handled == ["NOTIFY"]
        assert len(set(answers)) == 1 and answers[0].startswith(b"SIP/2.0 200 OK")

    asyncio.run(scenario())


class Pbx(asyncio.DatagramProtocol):
    """A PBX whose answers the test sets per method: a code, or None for silence."""

    def __init__(self) -> None:
        self.codes: dict[str, int | None] = {"OPTIONS": 200, "SUBSCRIBE": 200}
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        request = parse(data)
        if not isinstance(request, Request) or self.transport is None:
            return
        code = self.codes.get(request.method)
        if code is not None:
            reply = answer(data, code)
            if b";tag=" not in reply.split(b"\r\nTo:", 1)[1].split(b"\r\n", 1)[0]:
                reply = reply.replace(b"\r\nCall-ID:", b";tag=pbx\r\nCall-ID:", 1)
            self.transport.sendto(reply, addr)


def test_after_silence_refreshes_tell_a_restart_from_an_overload() -> None:
    """Answered 200: kept, nothing subscribed anew; not answered: not back yet, nothing
    done; answered 481: restarted, every line subscribed anew."""
    lines = RecordingLines(["201", "202", "203", "204"])

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        transport, pbx = await loop.create_datagram_endpoint(Pbx, local_addr=("127.0.0.1", 0))
        port = transport.get_extra_info("sockname")[1]
        table = {"name": "pbx", "server": f"127.0.0.1:{port}", "keepalive_seconds": 0.2,
                 "timeout_seconds": 1, "subscribe_rate": 100, "retry_seconds": 0.5}  # fmt: skip
        connector = DialogWatcher(parse_dialog(table), lines)
        await connector.start()

        async def silence() -> None:
            pbx.codes = {"OPTIONS": None, "SUBSCRIBE": None}
            await until(lambda: not connector.liveness.up, what="silence seen")

        try:
            await until(lambda: connector.counts["subscribed"] == 4, what="4 lines subscribed")
            # Overloaded: OPTIONS answered again, refreshes not yet.
            await silence()
            pbx.codes = {"OPTIONS": 200, "SUBSCRIBE": None}
            await until(lambda: connector.liveness.up, what="OPTIONS answered")
            await until(lambda: not connector.liveness.up, what="a refresh unanswered")
            assert connector.counts["server_restarts"] == 0
            assert connector.counts["server_silences"] == 0
            # Back, and it kept every subscription.
            pbx.codes = {"OPTIONS": 200, "SUBSCRIBE": 200}
            await until(lambda: connector.counts["server_silences"] == 1, what="kept")
            assert connector.counts["server_restarts"] == 0
            assert connector.counts["subscribed"] == 4, connector.counts
            assert connector.health().up
            # Restarted: it has forgotten them.
            await silence()
            pbx.codes = {"OPTIONS": 200, "SUBSCRIBE": 481}
            await until(lambda: connector.counts["server_restarts"] == 1, what="restart seen")
            pbx.codes = {"OPTIONS": 200, "SUBSCRIBE": 200}
            await until(lambda: connector.counts["subscribed"] >= 8, what="subscribed anew")
            await until(lambda: connector.health().up, what="every line subscribed")
            assert connector.counts["server_silences"] == 1
        finally:
            await connector.stop()
            transport.close()

    asyncio.run(scenario())


# -- digest against a real server -----------------------------------------------------------

TEAMS_CALL = Publication(Situation.HUB_CALL, OUTWARD[Situation.HUB_CALL], "In a call")


@pytest.mark.parametrize("sha256", [False, True], ids=["MD5", "SHA-256"])
def test_digest_authentication_against_kamailio(tmp_path: Any, sha256: bool) -> None:
    kamailio = Kamailio(tmp_path / "kamailio", secret="s3cret-pw", sha256=sha256)
    kamailio.start()
    lines = RecordingLines(["201"])
    user = OutwardUser("alice", "Alice", None, ("201",), TEAMS_CALL)

    async def scenario() -> None:
        common = {"server": kamailio.domain, "username": "hub"}
        outlet = PresencePublisher(parse_presence({"name": "p", **common, "secret": "s3cret-pw"}))
        wrong = PresencePublisher(parse_presence({"name": "w", **common, "secret": "wrong"}))
        connector = DialogWatcher(
            parse_dialog({"name": "d", **common, "secret": "s3cret-pw"}), lines
        )
        for part in (outlet, wrong, connector):
            await part.start()
        try:
            await outlet.publish(user)
            assert outlet.counts["published"] == 2
            assert outlet.ua.auth_algorithm == ("SHA-256" if sha256 else "MD5")
            await until(lambda: connector.health().up, what="subscribed with digest")
            with pytest.raises(OutletUnavailable, match="answered 407"):
                await wrong.publish(user)
            assert wrong.counts["failures"] == 1
        finally:
            for part in (outlet, wrong, connector):
                await part.stop()

    try:
        asyncio.run(scenario())
    finally:
        kamailio.stop(kill=True)
