"""`[[pbx]] kind = "asterisk-ami"`: Asterisk's hint states as the hub's call states.

A hint (`exten => 2101,hint,PJSIP/2101`) is Asterisk's own summary of an extension's
devices, and AMI reports each change of it as an `ExtensionStatus` event (class
`call`). That is read rather than `DeviceStateChange`, which names devices, not
extensions: mapping devices to extensions would repeat what the hint already does.

Hint states carry no call ids, so each extension gets a synthetic one per busy
period (`<ext>-<start>-<n>`: `start` is when this connector was made, so ids never
repeat across restarts of the hub). Ringing starts a period, InUse/Busy/OnHold make
it connected, Idle/NotInUse/Unavailable (or a removed hint) end it.

After every login the state of all hints is read with `ExtensionStateList` (one
action whatever the number of extensions, its items arriving in the same stream as
the live events, so applying both in order of arrival is always right), and every
watched extension is then settled: a call that ended while the link was down ends in
the hub too. A change of the watched extensions reads the list again.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from dataclasses import dataclass

from presencebridge import metrics
from presencebridge.adapters.asterisk.client import AmiClient, AmiError
from presencebridge.adapters.asterisk.protocol import AmiMessage
from presencebridge.adapters.asterisk.settings import KIND, AmiSourceSettings
from presencebridge.core.model import CallState
from presencebridge.core.ports import ConnectorHealth, TelephonyLines

log = logging.getLogger(__name__)

# ExtensionStatus `Status` is a bit set (include/asterisk/pbx.h, enum ast_extension_states).
_INUSE, _BUSY, _UNAVAILABLE, _RINGING, _ONHOLD = 1, 2, 4, 8, 16
# `StatusText` for a server that sends no numeric status.
_BY_TEXT = {
    "idle": CallState.ENDED,
    "notinuse": CallState.ENDED,
    "unavailable": CallState.ENDED,
    "removed": CallState.ENDED,
    "deleted": CallState.ENDED,
    "ringing": CallState.RINGING,
    "inuse": CallState.CONNECTED,
    "busy": CallState.CONNECTED,
    "onhold": CallState.CONNECTED,
    "hold": CallState.CONNECTED,
    "inuse&ringing": CallState.CONNECTED,
    "inuse&hold": CallState.CONNECTED,
}


class Malformed(ValueError):
    """An ExtensionStatus the connector cannot read."""


def hint_state(event: AmiMessage) -> CallState | None:
    """The call state an ExtensionStatus (or ExtensionState response) stands for; None:
    Asterisk does not know (`Unknown`). Raises `Malformed`."""
    status = event.get("Status")
    if status is not None and status.lstrip("-").isdigit():
        value = int(status)
        if value < 0:  # the hint was removed or deleted
            return CallState.ENDED
        if value & (_INUSE | _BUSY | _ONHOLD):  # a second call ringing is still a call
            return CallState.CONNECTED
        if value & _RINGING:
            return CallState.RINGING
        return CallState.ENDED  # 0 idle, 4 unavailable
    text = (event.get("StatusText") or "").replace(" ", "").lower()
    if text == "unknown":
        return None
    if text not in _BY_TEXT:
        raise Malformed(f"status {status!r} / {text!r}")
    return _BY_TEXT[text]


@dataclass
class _Busy:
    call_id: str
    state: CallState


class AmiPbxSource:
    """`core.ports.PbxConnector` over one AMI connection."""

    kind = KIND

    def __init__(self, settings: AmiSourceSettings, lines: TelephonyLines) -> None:
        self.settings = settings
        self.name = settings.name
        self.lines = lines
        self.client = AmiClient(
            settings,
            events="call",
            on_login=self._read_all,
            on_event=self._event,
            while_up=self._follow_lines,
            on_malformed=lambda: self._count("malformed"),
        )
        self._start = format(int(time.time()), "x")
        self._serial = itertools.count(1)
        self._busy: dict[str, _Busy] = {}
        self._watched: frozenset[str] = frozenset()
        self._listing: str | None = None  # ActionID of the ExtensionStateList under way
        self._listed: set[str] = set()
        self._listed_done: asyncio.Event = asyncio.Event()
        self._synced = False
        self._reread = asyncio.Event()
        self.counts = {"applied": 0, "ignored": 0, "malformed": 0, "reads": 0}
        lines.add_lines_listener(self._reread.set)

    async def start(self) -> None:
        self._watched = frozenset(self.lines.lines())
        self.client.start()

    async def stop(self) -> None:
        await self.client.stop()

    def health(self) -> ConnectorHealth:
        address = self.settings.address
        up = self.client.logged_in and self._synced
        if up:
            detail = f"logged in at {address} as {self.settings.username}"
            detail += f", {len(self._watched)} extensions in context {self.settings.context}"
        elif self.client.logged_in:
            detail = f"logged in at {address}, reading the hints"
        else:
            detail = self.client.last_error or f"connecting to {address}"
        counts = {
            **self.counts,
            "watched": len(self._watched),
            "on_the_phone": sum(b.state is CallState.CONNECTED for b in self._busy.values()),
            "logins": self.client.counts.logins,
            "connection_failures": self.client.counts.connection_failures,
        }
        return ConnectorHealth(self.name, self.kind, up, detail, counts)

    # -- reading every hint ------------------------------------------------------------

    async def _follow_lines(self) -> None:
        """While logged in: re-read the hints when the watched extensions change (once
        per burst: a directory sync adding 1,000 users is one read)."""
        while True:
            await self._reread.wait()
            await self._read_all()

    async def _read_all(self) -> None:
        """One `ExtensionStateList`; `_event` applies its items and settles at its end.
        Runs inside the AMI session, which cancels it when the link goes down."""
        self._reread.clear()
        self._synced = False
        self._watched = frozenset(self.lines.lines())
        self._listed_done.clear()
        action_id = self.client.new_action_id()
        self._listing = action_id
        self._listed = set()
        answer = await self.client.action("ExtensionStateList", action_id=action_id)
        if not answer.succeeded:
            self._listing = None
            raise AmiError(f"ExtensionStateList refused: {answer.get('Message')}")
        await self._listed_done.wait()
        self.counts["reads"] += 1
        self._synced = True

    async def _listed_all(self) -> None:
        """The list is complete: what it did not show is idle, and the hub keeps no
        call of this connector that Asterisk does not have now."""
        self._listing = None
        for extension in sorted(self._watched - self._listed):
            await self._apply(extension, CallState.ENDED)
        for gone in set(self._busy) - self._watched:
            del self._busy[gone]  # no longer this node's: nothing to report
        for extension in sorted(self._watched):
            busy = self._busy.get(extension)
            await self.lines.settle(extension, [] if busy is None else [busy.call_id])
        self._listed_done.set()

    # -- events ------------------------------------------------------------------------

    async def _event(self, event: AmiMessage) -> None:
        name = (event.event or "").lower()
        listing = self._listing is not None and event.action_id == self._listing
        if name == "extensionstatelistcomplete" and listing:
            await self._listed_all()
        elif name == "extensionstatus":
            await self._status(event, listing)
        else:
            self._count("ignored")

    async def _status(self, event: AmiMessage, listing: bool) -> None:
        extension, context = event.get("Exten"), event.get("Context")
        try:
            if not extension or not context:
                raise Malformed("no Exten or Context")
            state = hint_state(event)
        except Malformed as error:
            self._count("malformed")
            log.debug("asterisk-ami %s: malformed ExtensionStatus: %s", self.name, error)
            return
        if context.lower() != self.settings.context.lower() or extension not in self._watched:
            self._count("ignored")
            return
        if listing:
            self._listed.add(extension)
        if state is None:
            self._count("ignored")
            return
        self._count("applied")
        await self._apply(extension, state)

    async def _apply(self, extension: str, state: CallState) -> None:
        busy = self._busy.get(extension)
        if state is CallState.ENDED:
            if busy is not None:
                del self._busy[extension]
                await self.lines.report(extension, busy.call_id, CallState.ENDED)
            return
        if busy is not None and busy.state is CallState.CONNECTED and state is CallState.RINGING:
            # The call ended and another rings: a new busy period, not a step back.
            del self._busy[extension]
            await self.lines.report(extension, busy.call_id, CallState.ENDED)
            busy = None
        if busy is None:
            busy = self._busy[extension] = _Busy(self._new_call_id(extension), state)
        elif busy.state is state:
            return
        busy.state = state
        await self.lines.report(extension, busy.call_id, state)

    def _new_call_id(self, extension: str) -> str:
        return f"{extension}-{self._start}-{next(self._serial)}"

    def _count(self, result: str) -> None:
        self.counts[result] += 1
        metrics.CONNECTOR_MESSAGES.labels(self.name, result).inc()
