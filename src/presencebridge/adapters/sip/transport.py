"""SIP transports to one server (the PBX, registrar or presence server): UDP, TCP, TLS.

The connectors talk to exactly one configured server, so a transport is "a way to
that server" plus a place where requests from it arrive (its NOTIFYs):

* UDP: one socket; requests go to the server, responses go back where the request
  came from (the `rport` rule, RFC 3581, which is what NAT and multi-homed servers
  need).
* TCP: an outbound connection (opened again on the next send after it drops), and a
  listener on the Contact address, because a server opens its own connection to the
  Contact for its NOTIFYs unless it reuses ours (Kamailio does not by default).
* TLS: the outbound connection only (a listener would need a certificate); the Via
  carries `;alias` (RFC 5923) so the server sends NOTIFYs back over it.

Messages that do not parse are counted and dropped here; nothing a peer sends can
raise out of a transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from sipmessage import Request, Response

from presencebridge.adapters.sip.message import StreamFramer, parse

log = logging.getLogger(__name__)

Reply = Callable[[bytes], None]
Handler = Callable[[Request | Response, Reply], None]


@dataclass
class Counters:
    received: int = 0
    malformed: int = 0
    connections_lost: int = 0


def local_address(server: tuple[str, int]) -> str:
    """The address this host uses towards the server (no packet is sent: a UDP
    `connect` only picks the route)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect(server)
        return str(probe.getsockname()[0])


class Transport:
    """What the user agent needs of a transport."""

    name = "UDP"
    reliable = False

    def __init__(self, server: tuple[str, int], handler: Handler) -> None:
        self.server = server
        self.handler = handler
        self.host = ""
        self.port = 0
        self.counters = Counters()
        self.on_lost: Callable[[], None] | None = None
        # When the message being handled arrived, on the `time.perf_counter()` scale
        # (set before the handler runs). Over UDP it is the kernel's receive time, so
        # the time a datagram waited in the socket buffer while the event loop was busy
        # counts in what is measured from it (the hub's share of a NOTIFY).
        self.arrived = 0.0

    async def open(self, local_host: str, local_port: int) -> None:
        raise NotImplementedError

    async def send(self, data: bytes) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    def via_params(self) -> str:
        return ";rport"

    def contact_params(self) -> str:
        return ""

    def _deliver(self, data: bytes, reply: Reply, arrived: float | None = None) -> None:
        self.arrived = time.perf_counter() if arrived is None else arrived
        self.counters.received += 1
        try:
            message = parse(data)
        except ValueError as error:
            self.counters.malformed += 1
            log.info("SIP %s: dropped a malformed message: %s", self.name, error)
            return
        self.handler(message, reply)


# NOTIFYs of 10,000 lines arrive in bursts; while the event loop is busy for a moment,
# Linux's default UDP receive buffer (~208 KiB) overflows and drops them (counted as
# RcvbufErrors in /proc/net/snmp), the PBX retransmits seconds later or gives up. The
# kernel caps this at net.core.rmem_max (docs/pbx.md says how to raise it).
RECEIVE_BUFFER_BYTES = 8 * 1024 * 1024


# Linux: the kernel's receive time of the last datagram read from a socket (a struct
# timeval). The first ask turns time stamping on for the socket and finds none yet.
SIOCGSTAMP = 0x8906
_TIMEVAL = struct.Struct("@ll")


def _stamp(fd: int) -> float | None:
    """The wall-clock time the kernel received the last datagram read from `fd`."""
    if sys.platform != "linux" or fd < 0:
        return None
    import fcntl

    try:
        answer = fcntl.ioctl(fd, SIOCGSTAMP, bytes(_TIMEVAL.size))
    except OSError:
        return None
    seconds, micros = _TIMEVAL.unpack(answer)
    return float(seconds) + float(micros) / 1e6


def _large_receive_buffer(sock: socket.socket | None) -> None:
    if sock is None:
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)
    except OSError as error:
        log.warning("SIP UDP: receive buffer left at the default: %s", error)


class UdpTransport(Transport, asyncio.DatagramProtocol):
    def __init__(self, server: tuple[str, int], handler: Handler) -> None:
        super().__init__(server, handler)
        self._socket: asyncio.DatagramTransport | None = None
        self._fd = -1

    async def open(self, local_host: str, local_port: int) -> None:
        loop = asyncio.get_running_loop()
        bind = local_host or "0.0.0.0"
        self._socket, _ = await loop.create_datagram_endpoint(
            lambda: self, local_addr=(bind, local_port)
        )
        sock = self._socket.get_extra_info("socket")
        _large_receive_buffer(sock)
        if sock is not None:
            self._fd = sock.fileno()
            _stamp(self._fd)  # time stamping on, from the first datagram
        self.port = int(self._socket.get_extra_info("sockname")[1])
        self.host = local_host if local_host not in ("", "0.0.0.0") else local_address(self.server)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if not data.strip():
            return  # keep-alive
        self._deliver(data, lambda answer: self._sendto(answer, addr), self._arrival())

    def _arrival(self) -> float:
        """When the datagram just read arrived (`time.perf_counter()` scale): now, less
        how long it waited in the socket buffer, as far as the kernel tells."""
        now = time.perf_counter()
        stamped = _stamp(self._fd)
        if stamped is None:
            return now
        waited = time.time() - stamped
        return now - waited if 0.0 <= waited < 60.0 else now

    def error_received(self, exc: Exception) -> None:
        # ICMP "port unreachable": the server is down; the transaction timers notice.
        log.debug("SIP UDP: %s", exc)

    def _sendto(self, data: bytes, addr: tuple[str, int]) -> None:
        if self._socket is not None and not self._socket.is_closing():
            self._socket.sendto(data, addr)

    async def send(self, data: bytes) -> None:
        if self._socket is None or self._socket.is_closing():
            raise OSError("UDP socket closed")
        self._socket.sendto(data, self.server)

    async def close(self) -> None:
        if self._socket is not None:
            self._socket.close()


class StreamTransport(Transport):
    """TCP, or TLS when given an SSL context."""

    reliable = True

    def __init__(
        self, server: tuple[str, int], handler: Handler, tls: ssl.SSLContext | None = None
    ) -> None:
        super().__init__(server, handler)
        self.tls = tls
        self.name = "TLS" if tls is not None else "TCP"
        self._writer: asyncio.StreamWriter | None = None
        self._connecting = asyncio.Lock()
        self._listener: asyncio.Server | None = None
        self._readers: set[asyncio.Task[None]] = set()

    async def open(self, local_host: str, local_port: int) -> None:
        bind = local_host or "0.0.0.0"
        self.host = local_host if local_host not in ("", "0.0.0.0") else local_address(self.server)
        if self.tls is None:
            self._listener = await asyncio.start_server(self._accepted, bind, local_port)
            self.port = int(self._listener.sockets[0].getsockname()[1])
        else:
            self.port = local_port or 5061

    def via_params(self) -> str:
        return ";rport;alias"

    def contact_params(self) -> str:
        return ";transport=tls" if self.tls is not None else ";transport=tcp"

    async def _accepted(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._read(reader, writer)

    async def _connect(self) -> asyncio.StreamWriter:
        async with self._connecting:
            if self._writer is not None and not self._writer.is_closing():
                return self._writer
            host, port = self.server
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, ssl=self.tls), timeout=10
            )
            self._writer = writer
            task = asyncio.create_task(self._read(reader, writer, outbound=True))
            self._readers.add(task)
            task.add_done_callback(self._readers.discard)
            return writer

    async def _read(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, outbound: bool = False
    ) -> None:
        framer = StreamFramer()
        try:
            while data := await reader.read(65_536):
                for raw in framer.feed(data):
                    self._deliver(raw, writer.write)
        except ValueError as error:
            self.counters.malformed += 1
            log.info("SIP %s: stream closed after a framing error: %s", self.name, error)
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            if outbound:
                self.counters.connections_lost += 1
                if self._writer is writer:
                    self._writer = None
                if self.on_lost is not None:
                    self.on_lost()

    async def send(self, data: bytes) -> None:
        try:
            writer = await self._connect()
            writer.write(data)
            await writer.drain()
        except (OSError, TimeoutError, ssl.SSLError) as error:
            where = f"{self.server[0]}:{self.server[1]}"
            raise OSError(f"SIP {self.name} to {where}: {error}") from None

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
        if self._writer is not None:
            self._writer.close()
        for task in list(self._readers):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.gather(*self._readers, return_exceptions=True)
