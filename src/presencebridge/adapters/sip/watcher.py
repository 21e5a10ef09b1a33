"""`kind = "sip-dialog"`: the PBX's call states read as a BLF phone reads them.

One subscription to `Event: dialog` (RFC 4235, RFC 6665) per extension the hub
handles, at `sip:<extension>@<domain>`:

* New subscriptions go out at `subscribe_rate` per second (10,000 extensions at the
  default 50/s take 200 s), so a start or a PBX restart never floods the PBX.
* Each is refreshed at 70–85 % of the expiry the server granted (spread, so refreshes
  do not bunch up either); a refresh answered 481, a timeout, or a NOTIFY with
  `Subscription-State: terminated` starts a new subscription.
* An OPTIONS every `keepalive_seconds` watches the server. When it answers again after
  silence, a refresh of a few subscriptions tells a restart (answered 481: every line
  is subscribed anew, paced) from a server that was only silent (overloaded, a network
  gap: it kept them; only the lines with a call in progress are read again). A dropped
  TCP connection always subscribes every line anew.
* Each new subscription's first full notification, and every full one after,
  `settle`s the extension: a call that ended while we were away does not stay "on the
  phone". Partial notifications (by `version`) only report what they list; a gap in
  the versions is a lost notification, so the subscription starts over.

NOTIFYs are answered at once and applied in order per line. Bodies that do not parse
or are too large are logged, counted and ignored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

from sipmessage import Request, Response

from presencebridge import metrics
from presencebridge.adapters.sip.bodies import (
    DIALOG_INFO_TYPE,
    DialogInfo,
    MalformedBody,
    parse_dialog_info,
)
from presencebridge.adapters.sip.message import Dialog, spread, tag
from presencebridge.adapters.sip.settings import DialogSettings
from presencebridge.adapters.sip.ua import Liveness, TransactionError, agent_for
from presencebridge.core.model import CallState
from presencebridge.core.ports import ConnectorHealth, TelephonyLines

log = logging.getLogger(__name__)

KIND = "sip-dialog"
# Subscriptions refreshed to tell a restarted server from a silent one.
SILENCE_PROBES = 3


ENDED_KEPT = 4  # per line: more calls ending within a document's lifetime are rare


@dataclass
class Line:
    extension: str
    uri: str
    dialog: Dialog | None = None
    active: bool = False
    version: int | None = None
    calls: dict[str, CallState] = field(default_factory=dict)
    # The calls last seen ending: the PBX lists an ended call in every NOTIFY until its
    # document expires, and such a NOTIFY (one for each ended call, when it expires)
    # must not cost the hub an event each time.
    ended: tuple[str, ...] = ()
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    timer: asyncio.TimerHandle | None = None
    failures: int = 0
    queued: bool = False


class DialogWatcher:
    """A `core.ports.PbxConnector` over SIP dialog-event subscriptions."""

    kind = KIND

    def __init__(self, settings: DialogSettings, lines: TelephonyLines) -> None:
        self.settings = settings
        self.name = settings.name
        self.hub = lines
        self.ua = agent_for(settings, self._on_request)
        self.lines: dict[str, Line] = {}
        self._by_call_id: dict[str, Line] = {}
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()
        self.liveness = Liveness(self.ua, settings.keepalive_seconds, f"sip:{settings.sip_domain}")
        self.stopping = False
        self._reconcile_planned = False
        self.counts: Counter[str] = Counter()

    # -- life ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        await self.ua.start()
        self.ua.transport.on_lost = self._connection_lost
        self._reconcile()
        self.hub.add_lines_listener(self._lines_changed)
        self._spawn(self._pace())
        if self.settings.keepalive_seconds > 0:
            self._spawn(
                self.liveness.run(self._server_lost, lambda: self._spawn(self._server_back()))
            )

    async def stop(self) -> None:
        self.stopping = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        active = [line for line in self.lines.values() if line.dialog is not None]
        gate = asyncio.Semaphore(64)

        async def withdraw(line: Line) -> None:
            async with gate:
                await self._unsubscribe(line)

        # Bounded: a PBX that is gone must not hold up the hub's shutdown.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*(withdraw(x) for x in active)), 5.0)
        for line in self.lines.values():
            if line.timer is not None:
                line.timer.cancel()
        await self.ua.close()

    def health(self) -> ConnectorHealth:
        total = len(self.lines)
        active = sum(1 for line in self.lines.values() if line.active)
        detail = f"{active:,} of {total:,} lines subscribed"
        if not self.liveness.up:
            detail = f"server {self.settings.server} not answering; " + detail
        counts = {
            **self.counts,
            "lines": total,
            "subscribed": active,
            "malformed_messages": self.ua.transport.counters.malformed,
        }
        up = self.liveness.up and active == total
        return ConnectorHealth(self.name, KIND, up, detail, counts)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- which lines ----------------------------------------------------------------------

    def _lines_changed(self) -> None:
        # On the next turn of the loop, once: an import of 10,000 users is one pass.
        if not self._reconcile_planned and not self.stopping:
            self._reconcile_planned = True
            self._loop.call_soon_threadsafe(self._reconcile)

    def _reconcile(self) -> None:
        """Follow `lines()`: subscribe new extensions, withdraw removed ones."""
        self._reconcile_planned = False
        if self.stopping:
            return
        wanted = set(self.hub.lines())
        for extension in sorted(wanted - self.lines.keys()):
            line = Line(extension, self.settings.target(extension=extension, user_id=extension))
            self.lines[extension] = line
            self._enqueue(line)
        for extension in self.lines.keys() - wanted:
            line = self.lines.pop(extension)
            if line.timer is not None:
                line.timer.cancel()
            if line.dialog is not None:
                self._spawn(self._unsubscribe(line))

    def _enqueue(self, line: Line, fresh: bool = False) -> None:
        if fresh:
            self._forget(line)
        if not line.queued and not self.stopping:
            line.queued = True
            self._queue.put_nowait(line.extension)

    def _forget(self, line: Line) -> None:
        """Drop the subscription dialog (the server lost it, or it ended)."""
        if line.dialog is not None:
            self._by_call_id.pop(line.dialog.call_id, None)
        line.dialog = None
        line.active = False
        line.version = None

    def _later(self, line: Line, delay: float, fresh: bool = False) -> None:
        if line.timer is not None:
            line.timer.cancel()
        loop = asyncio.get_running_loop()
        line.timer = loop.call_later(delay, self._enqueue, line, fresh)

    async def _pace(self) -> None:
        """Send queued (re)subscriptions at no more than `subscribe_rate` per second."""
        loop = asyncio.get_running_loop()
        gap = 1.0 / self.settings.subscribe_rate
        next_at = loop.time()
        while True:
            extension = await self._queue.get()
            line = self.lines.get(extension)
            if line is None:
                continue
            line.queued = False
            next_at = max(next_at + gap, loop.time())
            await asyncio.sleep(next_at - loop.time())
            self._spawn(self._subscribe(line))

    # -- subscriptions ------------------------------------------------------------------

    async def _subscribe(self, line: Line) -> None:
        refresh = line.dialog is not None and line.dialog.confirmed
        if line.dialog is None or not refresh:
            self._forget(line)
            line.dialog = self.ua.new_dialog(line.uri)
            self._by_call_id[line.dialog.call_id] = line
        dialog = line.dialog
        try:
            response = await self._send_subscribe(dialog)
        except TransactionError as error:
            self._failed(line, f"SUBSCRIBE {line.extension}: {error}")
            return
        if line.dialog is not dialog:
            return  # withdrawn or replaced while we waited
        self._answered(line, dialog, response, refresh)

    async def _send_subscribe(self, dialog: Dialog) -> Response:
        request = self.ua.build(
            "SUBSCRIBE",
            dialog,
            [
                ("Event", "dialog"),
                ("Accept", DIALOG_INFO_TYPE),
                ("Expires", str(self.settings.expires)),
            ],
        )
        return await self.ua.send(request, dialog, self.settings.timeout_seconds)

    def _answered(self, line: Line, dialog: Dialog, response: Response, refresh: bool) -> None:
        if 200 <= response.code < 300:
            dialog.confirm(response, tag(response.to_address))
            line.failures = 0
            line.active = True
            granted = response.expires if response.expires is not None else self.settings.expires
            self._later(line, max(1.0, granted * spread(0.70, 0.85)))
            self.counts["refreshed" if refresh else "subscribed"] += 1
        elif response.code == 481 and refresh:
            # The server lost the subscription (restart, expiry): start a new one now.
            self.counts["resubscribed_after_481"] += 1
            log.info("%s: %s: refresh answered 481; subscribing anew", self.name, line.extension)
            self._forget(line)
            self._enqueue(line)
        else:
            self._failed(line, f"SUBSCRIBE {line.extension} answered {response.code}")

    def _failed(self, line: Line, why: str) -> None:
        self.counts["subscribe_failures"] += 1
        line.failures += 1
        delay = min(self.settings.retry_seconds * 2 ** (line.failures - 1), 600.0)
        log.warning("%s: %s; again in %.0f s", self.name, why, delay)
        self._forget(line)
        self._later(line, delay * spread(0.8, 1.2))

    async def _unsubscribe(self, line: Line) -> None:
        dialog = line.dialog
        self._forget(line)
        if dialog is None or not dialog.confirmed:
            return
        request = self.ua.build("SUBSCRIBE", dialog, [("Event", "dialog"), ("Expires", "0")])
        with contextlib.suppress(TransactionError):
            await self.ua.send(request, dialog, give_up=4.0)

    # -- the server ---------------------------------------------------------------------

    def _server_lost(self) -> None:
        log.warning("%s: %s does not answer", self.name, self.settings.server)

    def _connection_lost(self) -> None:
        if not self.stopping:
            self._restart("connection lost")

    async def _server_back(self) -> None:
        """The server answers again after silence: did it restart, or was it only silent?

        Subscribing 10,000 lines anew costs the PBX what the start did, and a server that
        went silent from overload is the one that can least afford it. So a few
        subscriptions are refreshed first: any refresh answered 481 means the server lost
        what it held; one not answered means it is not back yet (asked again at its next
        answered OPTIONS). Kept ones need no new subscription; a refresh makes
        the server send the line's full state, which settles any call whose end was lost
        during the silence (idle lines have nothing that could be stuck)."""
        probes = [
            line
            for line in self.lines.values()
            if line.dialog is not None and line.dialog.confirmed
        ][:SILENCE_PROBES]
        kept = bool(probes)
        for line in probes:
            dialog = line.dialog
            assert dialog is not None
            try:
                response = await self._send_subscribe(dialog)
            except TransactionError:
                # No answer is no evidence of a restart (a restarted server answers 481
                # at once): it is not back yet. Its next answered OPTIONS asks again.
                log.warning(
                    "%s: %s answers OPTIONS but not a refresh yet", self.name, self.settings.server
                )
                self.liveness.up = False
                return
            if line.dialog is not dialog:
                continue  # withdrawn meanwhile: says nothing about the server
            self._answered(line, dialog, response, refresh=True)
            if not 200 <= response.code < 300:
                kept = False
                break
        if self.stopping:
            return
        if not kept:
            self._restart("answers again without our subscriptions")
            return
        self.counts["server_silences"] += 1
        busy = [line for line in self.lines.values() if line.calls]
        log.warning(
            "%s: %s answers again and kept its subscriptions; reading the %d lines with a"
            " call again",
            self.name,
            self.settings.server,
            len(busy),
        )
        for line in busy:
            self._enqueue(line)  # an in-dialog refresh: the server answers with full state

    def _restart(self, why: str) -> None:
        """The server may have lost every subscription: start them all anew (paced)."""
        log.warning("%s: %s %s; subscribing every line anew", self.name, self.settings.server, why)
        self.counts["server_restarts"] += 1
        for line in self.lines.values():
            if line.timer is not None:
                line.timer.cancel()
            self._enqueue(line, fresh=True)

    # -- NOTIFY -------------------------------------------------------------------------

    def _on_request(self, request: Request) -> Response:
        if request.method != "NOTIFY":
            return self.ua.response(request, 405, "Method Not Allowed")
        line = self._by_call_id.get(request.headers.get("Call-ID") or "")
        dialog = line.dialog if line is not None else None
        if line is None or dialog is None or tag(request.to_address) != dialog.local_tag:
            self.counts["notify_unknown"] += 1
            return self.ua.response(request, 481, "Subscription Does Not Exist")
        dialog.confirm(request, tag(request.from_address))
        self.counts["notifies"] += 1
        state = (request.headers.get("Subscription-State") or "active").lower()
        if state.split(";")[0].strip() == "terminated":
            # RFC 6665 §4.1.3: deactivated/timeout invite a new subscription at once;
            # rejected/noresource/giveup/probation only after a while.
            self.counts["terminated_by_server"] += 1
            soon = not any(r in state for r in ("rejected", "noresource", "giveup", "probation"))
            self._forget(line)
            self._later(line, spread(0.5, 2.0) if soon else self.settings.retry_seconds)
        # From its arrival (the kernel's receive time over UDP): time the NOTIFY waited
        # in the socket buffer while the loop was busy is the hub's share too.
        self._spawn(self._apply(line, request.body, self.ua.transport.arrived))
        return self.ua.response(request, 200, "OK")

    async def _apply(self, line: Line, body: bytes, received: float) -> None:
        try:
            info = parse_dialog_info(body, self.settings.max_body_bytes)
        except MalformedBody as error:
            self.counts["malformed_bodies"] += 1
            metrics.CONNECTOR_MESSAGES.labels(self.name, "malformed").inc()
            log.warning("%s: NOTIFY for %s ignored: %s", self.name, line.extension, error)
            return
        async with line.lock:
            if self.lines.get(line.extension) is not line:
                return
            await self._apply_info(line, info)
        metrics.CONNECTOR_APPLY_SECONDS.labels(self.name).observe(time.perf_counter() - received)

    async def _apply_info(self, line: Line, info: DialogInfo) -> None:
        if not info.full and (line.version is None or info.version != line.version + 1):
            if line.version is not None and info.version <= line.version:
                metrics.CONNECTOR_MESSAGES.labels(self.name, "ignored").inc()
                return  # an old one, overtaken
            # A gap: a partial notification went missing; the next full one settles.
            self.counts["version_gaps"] += 1
            self._enqueue(line, fresh=True)
            return
        line.version = info.version if info.version >= 0 else line.version
        metrics.CONNECTOR_MESSAGES.labels(self.name, "applied").inc()
        for call_id, state in info.calls.items():
            if line.calls.get(call_id) is state or (
                state is CallState.ENDED and call_id in line.ended
            ):
                continue
            await self.hub.report(line.extension, call_id, state)
            if state is CallState.ENDED:
                line.ended = (*line.ended[-(ENDED_KEPT - 1) :], call_id)
        if info.full:
            active = [c for c, s in info.calls.items() if s is not CallState.ENDED]
            await self.hub.settle(line.extension, active)
            line.calls = {c: info.calls[c] for c in active}
        else:
            line.calls.update(info.calls)
            for call_id in [c for c, s in line.calls.items() if s is CallState.ENDED]:
                del line.calls[call_id]
