"""A burst of NOTIFYs while the hub's event loop is busy for a moment: at 10,000 lines
they arrive faster than a blocked loop reads them, and a datagram the kernel drops is a
call state the hub learns seconds later (the PBX retransmits) or never (it gives up).
The UDP transport asks for a receive buffer that holds such a burst."""

from __future__ import annotations

import asyncio
import socket
import time
from pathlib import Path

import pytest

from presencebridge.adapters.sip.transport import UdpTransport

pytestmark = pytest.mark.anyio

BURST = 3_000  # ~3 MB: fifteen times what Linux's default receive buffer holds
PADDING = "x" * 900
RMEM_MAX = Path(
    "/proc/sys/net/core/rmem_max"
)  # a NOTIFY with a dialog-info body is about this size


def notify(n: int) -> bytes:
    return (
        "OPTIONS sip:hub@127.0.0.1 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKburst{n}\r\n"
        "Max-Forwards: 70\r\nFrom: <sip:pbx@127.0.0.1>;tag=b\r\n"
        f"To: <sip:hub@127.0.0.1>\r\nCall-ID: burst-{n}\r\nCSeq: {n + 1} OPTIONS\r\n"
        f"X-Padding: {PADDING}\r\nContent-Length: 0\r\n\r\n"
    ).encode()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_a_burst_sent_while_the_loop_is_blocked_is_received_whole() -> None:
    if int(RMEM_MAX.read_text()) < 4 * 1024 * 1024:  # noqa: ASYNC240 - a tiny /proc file
        pytest.skip("net.core.rmem_max is below 4 MiB here: the kernel caps the buffer")
    received: list[int] = []
    whole = asyncio.Event()

    def count(message: object, reply: object) -> None:
        received.append(1)
        if len(received) == BURST:
            whole.set()

    transport = UdpTransport(("127.0.0.1", 9), count)
    await transport.open("127.0.0.1", 0)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender:
            # The loop is blocked (as by a long callback) while the whole burst arrives.
            for n in range(BURST):
                sender.sendto(notify(n), ("127.0.0.1", transport.port))
            time.sleep(0.2)  # noqa: ASYNC251 - the point: nothing reads meanwhile
        async with asyncio.timeout(30):
            await whole.wait()
    finally:
        await transport.close()
    assert transport.counters.malformed == 0
