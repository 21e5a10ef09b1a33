"""`[[pbx]] kind = "asterisk-ami"`: the devices of Asterisk's hints as call states.

A hint (`exten => 2101,hint,PJSIP/2101&Custom:2101-teams`) names the devices of an
extension. The connector reads which devices each watched extension's hint names
(`ExtensionStateList`, then each `ExtensionStatus` event's `Hint`) and follows those
devices' states (`DeviceStateList`, then `DeviceStateChange` events; both classes
`call`). It does not take the hint's own state: that includes the `Custom:` device an
`asterisk-ami` outlet sets during a Teams call, and reading it back would turn every
Teams call into a PBX call and then into nothing (the hub publishes a PBX call as
NOT_INUSE), for ever. Devices matching `ignore_devices` (default `Custom:*`) are
left out; what remains is summed up the way Asterisk sums up a hint: any device in
use, busy or on hold is a connected call, else any ringing is a ringing call, else
the extension is idle.

Device states carry no call ids, so each extension gets a synthetic one per busy
period (`<ext>-<start>-<n>`: `start` is when this connector was made, so ids never
repeat across restarts of the hub).

After every login both lists are read again (one action each whatever the number of
extensions; their items arrive in the same stream as the live events, so applying
both in order of arrival is always right), and every watched extension is then
settled: a call that ended while the link was down ends in the hub too. A change of
the watched extensions reads the lists again.
"""

from __future__ import annotations

import asyncio
import fnmatch
import itertools
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

from presencebridge import metrics
from presencebridge.adapters.asterisk.client import AmiClient, AmiError
from presencebridge.adapters.asterisk.protocol import AmiMessage
from presencebridge.adapters.asterisk.settings import KIND, AmiSourceSettings
from presencebridge.core.model import CallState
from presencebridge.core.ports import ConnectorHealth, TelephonyLines

log = logging.getLogger(__name__)

# Asterisk's device states (include/asterisk/devicestate.h, ast_devstate_str).
IN_A_CALL = frozenset({"INUSE", "BUSY", "ONHOLD", "RINGINUSE"})
RINGING = "RINGING"
KNOWN_STATES = IN_A_CALL | {RINGING, "NOT_INUSE", "UNAVAILABLE", "UNKNOWN", "INVALID"}


def call_state(device_states: Iterable[str]) -> CallState:
    """An extension's call state from its devices' states, as Asterisk sums up a hint
    (any call beats ringing, ringing beats idle)."""
    states = set(device_states)
    if states & IN_A_CALL:
        return CallState.CONNECTED
    if RINGING in states:
        return CallState.RINGING
    return CallState.ENDED


def hint_devices(hint: str) -> tuple[str, ...]:
    """The devices a hint names, lower case: `PJSIP/2101&Custom:x` (a presence part
    after a comma, `…,CustomPresence:2101`, is not a device)."""
    devices = hint.split(",", 1)[0].split("&")
    return tuple(d.strip().lower() for d in devices if d.strip())


class Malformed(ValueError):
    """An event the connector cannot read."""


@dataclass
class _Busy:
    call_id: str
    state: CallState


@dataclass
class _Listing:
    """One list action under way: its ActionID and the event that says it is done."""

    action_id: str
    done: asyncio.Event


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
        self._ignored = tuple(p.lower() for p in settings.ignore_devices)
        self._start = format(int(time.time()), "x")
        self._serial = itertools.count(1)
        self._busy: dict[str, _Busy] = {}
        self._watched: frozenset[str] = frozenset()
        self._hints: dict[str, tuple[str, ...]] = {}  # extension -> devices that count
        self._by_device: dict[str, set[str]] = {}  # device -> extensions naming it
        self._devices: dict[str, str] = {}  # device -> its state
        self._listing: _Listing | None = None
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
            detail = f"logged in at {address} as {self.settings.username}, "
            detail += f"{len(self._watched)} extensions, {len(self._hints)} with a hint "
            detail += f"in context {self.settings.context}"
        elif self.client.logged_in:
            detail = f"logged in at {address}, reading hints and device states"
        else:
            detail = self.client.last_error or f"connecting to {address}"
        counts = {
            **self.counts,
            "watched": len(self._watched),
            "ringing": sum(b.state is CallState.RINGING for b in self._busy.values()),
            "on_the_phone": sum(b.state is CallState.CONNECTED for b in self._busy.values()),
            "logins": self.client.counts.logins,
            "connection_failures": self.client.counts.connection_failures,
        }
        return ConnectorHealth(self.name, self.kind, up, detail, counts)

    # -- reading everything ------------------------------------------------------------

    async def _follow_lines(self) -> None:
        """While logged in: read again when the watched extensions change (once per
        burst: a directory sync adding 1,000 users is one or two reads)."""
        while True:
            await self._reread.wait()
            await self._read_all()

    async def _read_all(self) -> None:
        """The hints, then the device states; `_event` applies the items in order with
        the live events, and `_settle_all` ends what the lists did not show. Runs
        inside the AMI session, which cancels it when the link goes down."""
        self._reread.clear()
        self._synced = False
        self._watched = frozenset(self.lines.lines())
        self._hints = {}
        self._by_device = {}
        await self._list("ExtensionStateList")
        self._devices = {}
        await self._list("DeviceStateList")
        await self._settle_all()
        self.counts["reads"] += 1
        self._synced = True

    async def _list(self, action: str) -> None:
        listing = _Listing(self.client.new_action_id(), asyncio.Event())
        self._listing = listing
        try:
            answer = await self.client.action(action, action_id=listing.action_id)
            if not answer.succeeded:
                # DeviceStateList needs res_manager_devicestate; both need write=reporting
                raise AmiError(f"{action} refused: {answer.get('Message')}")
            await listing.done.wait()
        finally:
            self._listing = None

    async def _settle_all(self) -> None:
        """Every watched extension as the lists showed it; the hub keeps no call of
        this connector that Asterisk does not have now."""
        for gone in set(self._busy) - self._watched:
            del self._busy[gone]  # no longer this node's: nothing to report
        for extension in sorted(self._watched):
            await self._update(extension)
            busy = self._busy.get(extension)
            await self.lines.settle(extension, [] if busy is None else [busy.call_id])

    # -- events ------------------------------------------------------------------------

    async def _event(self, event: AmiMessage) -> None:
        name = (event.event or "").lower()
        listing = self._listing
        ours = listing is not None and event.action_id == listing.action_id
        if ours and name in ("extensionstatelistcomplete", "devicestatelistcomplete"):
            assert listing is not None
            listing.done.set()
            return
        try:
            if name == "extensionstatus":
                await self._hint(event)
            elif name == "devicestatechange":
                await self._device(event)
            else:
                self._count("ignored")
        except Malformed as error:
            self._count("malformed")
            log.debug("asterisk-ami %s: malformed %s: %s", self.name, event.event, error)

    async def _hint(self, event: AmiMessage) -> None:
        extension, context, hint = event.get("Exten"), event.get("Context"), event.get("Hint")
        if not extension or not context or hint is None:
            raise Malformed("no Exten, Context or Hint")
        if context.lower() != self.settings.context.lower() or extension not in self._watched:
            self._count("ignored")
            return
        devices = tuple(d for d in hint_devices(hint) if not self._is_ignored(d))
        if self._hints.get(extension) != devices:
            for device in self._hints.get(extension, ()):
                self._by_device.get(device, set()).discard(extension)
            self._hints[extension] = devices
            for device in devices:
                self._by_device.setdefault(device, set()).add(extension)
        self._count("applied")
        if self._synced:
            await self._update(extension)

    async def _device(self, event: AmiMessage) -> None:
        device, state = event.get("Device"), (event.get("State") or "").upper()
        if not device or state not in KNOWN_STATES:
            raise Malformed("no Device, or an unknown State")
        device = device.lower()
        extensions = self._by_device.get(device)
        if not extensions:
            self._count("ignored")
            return
        self._devices[device] = state
        self._count("applied")
        if self._synced:
            for extension in sorted(extensions):
                await self._update(extension)

    def _is_ignored(self, device: str) -> bool:
        return any(fnmatch.fnmatchcase(device, pattern) for pattern in self._ignored)

    async def _update(self, extension: str) -> None:
        """Report the extension's call state if it changed."""
        devices = self._hints.get(extension, ())
        state = call_state(self._devices.get(d, "UNKNOWN") for d in devices)
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
