"""When a NOTIFY arrived: over UDP the kernel's receive time, so what the hub measures
from it (`presencebridge_connector_apply_seconds`) includes the time the datagram
waited in the socket buffer while the event loop was busy, not only the time after it
was read."""

from __future__ import annotations

import asyncio
import socket
import sys
import time

import pytest

from presencebridge.adapters.sip.transport import UdpTransport

pytestmark = pytest.mark.anyio

OPTIONS = (
    b"OPTIONS sip:hub@127.0.0.1 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKarrival\r\n"
    b"Max-Forwards: 70\r\nFrom: <sip:pbx@127.0.0.1>;tag=a\r\n"
    b"To: <sip:hub@127.0.0.1>\r\nCall-ID: arrival\r\nCSeq: 1 OPTIONS\r\n"
    b"Content-Length: 0\r\n\r\n"
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.skipif(sys.platform != "linux", reason="the kernel's receive time: Linux")
async def test_a_datagram_that_waited_for_a_busy_loop_counts_from_its_arrival() -> None:
    handled: list[tuple[float, float]] = []
    done = asyncio.Event()

    def handle(message: object, reply: object) -> None:
        handled.append((transport.arrived, time.perf_counter()))
        done.set()

    transport = UdpTransport(("127.0.0.1", 9), handle)
    await transport.open("127.0.0.1", 0)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            # The kernel turns its receive time stamps on a while after the transport
            # asks (a deferred switch; on a busy machine it can take a few datagrams):
            # until then a datagram counts from its read. Tried until it is on.
            for _ in range(20):
                done.clear()
                sender.sendto(OPTIONS, ("127.0.0.1", transport.port))
                time.sleep(0.3)  # noqa: ASYNC251 - the point: the loop is busy, nothing reads
                async with asyncio.timeout(30):
                    await done.wait()
                arrived, read = handled[-1]
                if read - arrived >= 0.25:
                    break
    finally:
        await transport.close()
    waits = [read - arrived for arrived, read in handled]
    assert max(waits) >= 0.25, waits  # the wait in the socket buffer is counted
    assert max(waits) < 5.0, waits  # and not more than it waited


async def test_a_message_read_at_once_arrived_when_it_was_read() -> None:
    handled: list[tuple[float, float]] = []
    done = asyncio.Event()

    def handle(message: object, reply: object) -> None:
        handled.append((transport.arrived, time.perf_counter()))
        done.set()

    transport = UdpTransport(("127.0.0.1", 9), handle)
    await transport.open("127.0.0.1", 0)
    before = time.perf_counter()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            sender.sendto(OPTIONS, ("127.0.0.1", transport.port))
        async with asyncio.timeout(30):
            await done.wait()
    finally:
        await transport.close()
    arrived, read = handled[0]
    assert before - 0.05 <= arrived <= read
