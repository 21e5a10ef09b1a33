"""The Asterisk Manager Interface's wire format: framing, parsing, encoding.

AMI is line based: a message is `Key: Value` lines ended by CR LF, and a blank line
ends the message. The server first sends one banner line (`Asterisk Call Manager/…`)
without a blank line after it. Responses carry `Response:` and the `ActionID` of the
action they answer; events carry `Event:` (those of a list action carry its ActionID
too).

The parser is fed whatever arrived and never raises: a line without a colon, a line
or a message over the size bound, or bytes that are not UTF-8 make the message
*malformed*; it is dropped and counted, and parsing continues after the next blank
line. Encoding refuses CR and LF in keys and values, so nothing a user or directory
supplies (an extension, a device name) can add a header or a second action.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

# Bounds on what the server may send; an AMI message is a few hundred bytes, a
# ChanVariable-heavy event a few kilobytes.
MAX_LINE = 8 * 1024
MAX_FIELDS = 512

BANNER_PREFIX = "Asterisk Call Manager"


@dataclass(frozen=True, slots=True)
class AmiMessage:
    """One message: its fields in order; names compare case-insensitively, as Asterisk
    does. A name given twice (ChanVariable) keeps its first value in `get`."""

    fields: tuple[tuple[str, str], ...]
    _index: dict[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index: dict[str, str] = {}
        for key, value in self.fields:
            index.setdefault(key.lower(), value)
        object.__setattr__(self, "_index", index)

    def get(self, key: str, default: str | None = None) -> str | None:
        return self._index.get(key.lower(), default)

    def __getitem__(self, key: str) -> str:
        return self._index[key.lower()]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._index

    @property
    def event(self) -> str | None:
        return self.get("Event")

    @property
    def response(self) -> str | None:
        return self.get("Response")

    @property
    def action_id(self) -> str | None:
        return self.get("ActionID")

    @property
    def succeeded(self) -> bool:
        return (self.response or "").lower() == "success"


class AmiParser:
    """Bytes in, messages out, in order; counts what it had to drop."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._fields: list[tuple[str, str]] = []
        self._broken = False  # the message under way is malformed: skip to its end
        self.banner: str | None = None
        self.malformed = 0

    def feed(self, data: bytes) -> list[AmiMessage]:
        self._buffer += data
        found: list[AmiMessage] = []
        for line in self._lines():
            message = self._line(line)
            if message is not None:
                found.append(message)
        if len(self._buffer) > MAX_LINE:
            # A line that never ends: drop it, and the message it belongs to.
            self._buffer.clear()
            self._break()
        return found

    def _lines(self) -> Iterator[bytes]:
        start = 0
        while (end := self._buffer.find(b"\n", start)) >= 0:
            yield bytes(self._buffer[start:end]).removesuffix(b"\r")
            start = end + 1
        del self._buffer[:start]

    def _line(self, raw: bytes) -> AmiMessage | None:
        if not raw.strip():
            return self._end()
        if self._broken:
            return None
        if len(raw) > MAX_LINE or len(self._fields) >= MAX_FIELDS:
            self._break()
            return None
        try:
            line = raw.decode()
        except UnicodeDecodeError:
            self._break()
            return None
        if self.banner is None and not self._fields and line.startswith(BANNER_PREFIX):
            self.banner = line.strip()
            return None
        key, colon, value = line.partition(":")
        if not colon or not key.strip():
            self._break()
            return None
        self._fields.append((key.strip(), value.strip()))
        return None

    def _break(self) -> None:
        if not self._broken:
            self.malformed += 1
        self._broken = True
        self._fields = []

    def _end(self) -> AmiMessage | None:
        fields, broken = self._fields, self._broken
        self._fields, self._broken = [], False
        if broken or not fields:
            return None  # already counted, or blank lines between messages
        message = AmiMessage(tuple(fields))
        if message.event is None and message.response is None:
            self.malformed += 1  # neither an event nor a response: nothing can use it
            return None
        return message


def encode_action(action: str, action_id: str, fields: Mapping[str, str]) -> bytes:
    """One action on the wire. Raises ValueError for CR/LF or a colon in a name, and
    for CR/LF in a value (each would let the text add headers or a second action)."""
    lines = [("Action", action), ("ActionID", action_id), *fields.items()]
    out = []
    for key, value in lines:
        if not key or any(c in key for c in "\r\n:") or any(c in value for c in "\r\n"):
            raise ValueError(f"AMI field {key!r} has a line break or is not a valid name")
        out.append(f"{key}: {value}\r\n")
    out.append("\r\n")
    return "".join(out).encode()
