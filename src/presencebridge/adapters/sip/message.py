"""SIP messages on the wire: framing, parsing and building (RFC 3261 §7, §18.3).

Header grammar (addresses, Via, CSeq, digest challenges) is `sipmessage`'s: a small,
typed, pure-Python parser with no dependencies of its own (docs/pbx.md "Design").
What it leaves to its caller is done here: folded header lines are unfolded, the
body is cut at Content-Length (a UDP datagram may carry padding; a stream carries
the next message), messages over `MAX_MESSAGE` are refused, and a byte stream
(TCP, TLS) is split into messages by `StreamFramer`. Every failure is a `ValueError`,
so a caller needs one `except` to drop a bad message.
"""

from __future__ import annotations

import random
import re
import secrets
from dataclasses import dataclass, field

from sipmessage import Address, Message, Request, Response

# The largest message taken from a peer, header and body (a UDP datagram is at most
# 65,507 bytes anyway; on a stream this bounds what one peer can make us buffer).
MAX_MESSAGE = 65_536
MAX_HEADER = 16_384
_CONTENT_LENGTH = re.compile(rb"^(?:content-length|l)[ \t]*:[ \t]*(\d+)[ \t]*\r?$", re.I | re.M)
_FOLD = re.compile(rb"\r\n[ \t]+")
MAGIC = "z9hG4bK"  # RFC 3261 §8.1.1.7: branch ids of compliant UAs start with it


def token(size: int = 10) -> str:
    """A random tag, branch or Call-ID part (unguessable: a NOTIFY or response
    forged by an off-path host must not match one of ours)."""
    return secrets.token_hex(size)


def spread(low: float, high: float) -> float:
    """A factor for timers (refreshes, retries) so that 10,000 of them do not fire
    together."""
    return random.uniform(low, high)  # noqa: S311 - load spreading, not security


def parse(data: bytes) -> Request | Response:
    """One message from a datagram or from `StreamFramer`; `ValueError` if bad."""
    if len(data) > MAX_MESSAGE:
        raise ValueError(f"message of {len(data)} bytes is over {MAX_MESSAGE}")
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        raise ValueError("no end of headers")
    head = _FOLD.sub(b" ", head)
    found = _CONTENT_LENGTH.search(head)
    if found is not None:
        length = int(found.group(1))
        if length > len(body):
            raise ValueError("body shorter than Content-Length")
        body = body[:length]
    message = Message.parse(head + b"\r\n\r\n" + body)
    # Parse the headers every transaction and dialog needs, so a bad one fails here and
    # not in the middle of handling the message.
    message.cseq  # noqa: B018
    message.from_address  # noqa: B018
    message.to_address  # noqa: B018
    if not message.via:
        raise ValueError("no Via")
    if not message.headers.get("Call-ID"):
        raise ValueError("no Call-ID")
    return message


class StreamFramer:
    """Splits a TCP/TLS byte stream into messages (RFC 3261 §18.3: Content-Length is
    mandatory on streams). Keep-alive CRLFs (RFC 5626) between messages are skipped."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        found: list[bytes] = []
        while True:
            while self._buffer[:2] == b"\r\n":
                del self._buffer[:2]
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > MAX_HEADER:
                    raise ValueError("header section too long")
                return found
            match = _CONTENT_LENGTH.search(bytes(self._buffer[:end]))
            if match is None:
                raise ValueError("no Content-Length on a stream")
            total = end + 4 + int(match.group(1))
            if total > MAX_MESSAGE:
                raise ValueError("message too long")
            if len(self._buffer) < total:
                return found
            found.append(bytes(self._buffer[:total]))
            del self._buffer[:total]


def encode(message: Request | Response) -> bytes:
    """The message with a Content-Length matching its body."""
    message.headers.set("Content-Length", str(len(message.body)))
    return bytes(message)


def tag(address: Address) -> str | None:
    return address.parameters.get("tag")


@dataclass
class Dialog:
    """A dialog as its UAC keeps it (RFC 3261 §12.1.2): ids, our CSeq, the peer's
    target and the route set every in-dialog request follows."""

    call_id: str
    local_uri: str
    local_tag: str
    remote_uri: str
    remote_tag: str | None = None
    remote_target: str | None = None
    route_set: list[str] = field(default_factory=list)
    local_seq: int = 0
    confirmed: bool = False

    def next_seq(self) -> int:
        self.local_seq += 1
        return self.local_seq

    def confirm(self, message: Request | Response, remote_tag: str | None) -> None:
        """Fill in the peer's side from the first response (2xx to our SUBSCRIBE: its
        Record-Route reversed) or the first request (a NOTIFY that beat the 2xx,
        RFC 6665 §4.1.2.4: Record-Route as is)."""
        if self.confirmed:
            return
        self.remote_tag = remote_tag
        routes = [str(r) for r in message.record_route]
        self.route_set = list(reversed(routes)) if isinstance(message, Response) else routes
        contacts = message.contact
        if contacts:
            self.remote_target = str(contacts[0].uri)
        self.confirmed = True
