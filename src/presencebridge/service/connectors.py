"""The hub's side of the PBX and presence connectors (issue 13).

`TelephonyFeed` is what a PBX connector (`[[pbx]]`) reports into: extensions and
call states in, the hub's telephony events out, under call ids kept apart per
connector and extension. `PresenceFeed` takes every presence change of the users this
node handles to each presence outlet (`[[publish]]`): one pending entry per user and
outlet, so a burst of changes is one publication of the newest state, and an outlet
that fails is retried with whatever is newest then.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

from presencebridge import metrics
from presencebridge.core import rules
from presencebridge.core.errors import Rejected
from presencebridge.core.model import CallState, StatusMessageSync
from presencebridge.core.ports import (
    ConnectorHealth,
    OutletUnavailable,
    OutwardUser,
    PbxConnector,
    PresenceOutlet,
)
from presencebridge.core.publication import publication
from presencebridge.service.bus import Listener
from presencebridge.service.hub import Hub, NotOwner
from presencebridge.service.webhooks import Webhooks

log = logging.getLogger(__name__)


def call_key(connector: str, extension: str, call_id: str) -> str:
    """The hub's call id for a PBX connector's call: short and fixed in length whatever
    the PBX's id (a SIP Call-ID with tags can be hundreds of characters)."""
    digest = hashlib.blake2b(call_id.encode(), digest_size=8).hexdigest()
    return f"{connector}:{extension}:{digest}"


class TelephonyFeed:
    """`core.ports.TelephonyLines` over the hub, for one PBX connector."""

    def __init__(self, hub: Hub, connector: str) -> None:
        self.hub = hub
        self.connector = connector
        self.source = f"pbx:{connector}"  # in the users' history
        self.unknown_lines = 0  # reports for extensions no user has

    def lines(self) -> Sequence[str]:
        return self.hub.lines()

    def add_lines_listener(self, listener: Callable[[], None]) -> None:
        self.hub.add_lines_listener(listener)

    def _user(self, extension: str) -> str | None:
        try:
            user_id = self.hub.resolve(extension=extension)
        except Rejected:
            self.unknown_lines += 1
            return None
        return user_id if self.hub.owns(user_id) else None

    async def report(self, extension: str, call_id: str, state: CallState) -> None:
        user_id = self._user(extension)
        if user_id is not None:
            key = call_key(self.connector, extension, call_id)
            await self._handle(user_id, rules.TelephonyEvent(key, state))

    async def settle(self, extension: str, active: Collection[str]) -> None:
        user_id = self._user(extension)
        if user_id is None:
            return
        prefix = f"{self.connector}:{extension}:"
        keep = {call_key(self.connector, extension, c) for c in active}
        calls = self.hub.user(user_id).state.calls
        for call in calls:
            if (
                call.call_id.startswith(prefix)
                and call.call_id not in keep
                and call.state is not CallState.ENDED
            ):
                await self._handle(user_id, rules.TelephonyEvent(call.call_id, CallState.ENDED))

    async def _handle(self, user_id: str, event: rules.TelephonyEvent) -> None:
        try:
            await self.hub.handle(user_id, event, self.source)
        except NotOwner:
            pass  # handed to another node a moment ago; its connector watches the line now
        except Rejected as refusal:
            log.warning("%s: %s refused for %s: %s", self.source, event.state, user_id, refusal)


class HistoryNotes:
    """`core.ports.UserNotes` into the users' history, as `source` (the connector)."""

    def __init__(self, hub: Hub, source: str) -> None:
        self.hub = hub
        self.source = source

    async def note(self, user_id: str, change: str) -> None:
        try:
            await self.hub.note(user_id, self.source, change)
        except Rejected as refusal:  # the store refused: the PBX has it right all the same
            log.warning("%s: history note for %s refused: %s", self.source, user_id, refusal)


@dataclass
class _Outbox:
    """What one outlet still has to publish: user ids, newest state read at send time."""

    outlet: PresenceOutlet
    pending: dict[str, None] = field(default_factory=dict)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    sent: dict[str, OutwardUser] = field(default_factory=dict)  # to withdraw a deleted user
    published: int = 0
    failed: int = 0

    def add(self, user_ids: Collection[str]) -> None:
        self.pending.update(dict.fromkeys(user_ids))
        if user_ids:
            self.wake.set()


class PresenceFeed:
    """Every presence change of this node's users, coalesced, to each outlet."""

    # An outlet's system that refused is asked again after this long.
    RETRY_SECONDS = 5.0
    # Publications in flight per outlet: a burst of 10,000 changes must not become
    # 10,000 requests at once at the presence server.
    CONCURRENCY = 32

    def __init__(self, hub: Hub, outlets: Sequence[PresenceOutlet]) -> None:
        self.hub = hub
        self.outboxes = [_Outbox(o) for o in outlets]
        self._tasks: list[asyncio.Task[None]] = []
        hub.add_takeover_listener(self._taken_over)

    async def start(self) -> None:
        listener = self.hub.bus.listen()
        everyone = [u for u in self.hub.user_ids() if self.hub.owns(u)]
        for outbox in self.outboxes:
            await outbox.outlet.start()
            outbox.add(everyone)
            self._tasks.append(
                asyncio.create_task(self._drain(outbox), name=f"outlet-{outbox.outlet.name}")
            )
        self._tasks.append(asyncio.create_task(self._follow(listener), name="presence-feed"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        for outbox in self.outboxes:
            with contextlib.suppress(Exception):
                await outbox.outlet.stop()

    def health(self) -> list[ConnectorHealth]:
        found = []
        for outbox in self.outboxes:
            own = outbox.outlet.health()
            counts = {
                **own.counts,
                "pending": len(outbox.pending),
                "published": outbox.published,
                "failed": outbox.failed,
            }
            found.append(ConnectorHealth(own.name, own.kind, own.up, own.detail, counts))
        return found

    def _taken_over(self, user_ids: Sequence[str]) -> None:
        for outbox in self.outboxes:
            outbox.add(user_ids)

    async def _follow(self, listener: Listener) -> None:
        try:
            while True:
                change = await listener.next()
                if change.presence is None or self.hub.owns(change.user_id):
                    for outbox in self.outboxes:
                        outbox.add((change.user_id,))
        finally:
            self.hub.bus.leave(listener)

    def _outward(self, outbox: _Outbox, user_id: str) -> OutwardUser | None:
        if not self.hub.has_user(user_id):
            gone = outbox.sent.pop(user_id, None)
            return None if gone is None else _withdrawn(gone)
        if not self.hub.owns(user_id):
            return None
        view = self.hub.user(user_id)
        user = view.state.user
        both = self.hub.group(user.group).settings.teams_status_message is StatusMessageSync.BOTH
        found = OutwardUser(
            user_id,
            user.display_name,
            user.email,
            user.extensions,
            publication(view.presence, outbox.outlet.language, note_from_teams=both),
        )
        outbox.sent[user_id] = found
        return found

    async def _drain(self, outbox: _Outbox) -> None:
        gate = asyncio.Semaphore(self.CONCURRENCY)
        while True:
            await outbox.wake.wait()
            outbox.wake.clear()
            batch = list(outbox.pending)
            outbox.pending.clear()
            retry: list[str] = []
            await asyncio.gather(*(self._send(outbox, u, gate, retry) for u in batch))
            metrics.OUTLET_PENDING.labels(outbox.outlet.name).set(len(outbox.pending))
            if retry:
                await asyncio.sleep(self.RETRY_SECONDS)
                outbox.add([u for u in retry if u not in outbox.pending])

    async def _send(
        self, outbox: _Outbox, user_id: str, gate: asyncio.Semaphore, retry: list[str]
    ) -> None:
        async with gate:
            user = self._outward(outbox, user_id)
            if user is None:
                return
            try:
                await outbox.outlet.publish(user)
            except OutletUnavailable as error:
                outbox.failed += 1
                metrics.OUTLET_PUBLICATIONS.labels(outbox.outlet.name, "failed").inc()
                log.warning("%s: publishing %s failed: %s", outbox.outlet.name, user_id, error)
                retry.append(user_id)
                return
            outbox.published += 1
            metrics.OUTLET_PUBLICATIONS.labels(outbox.outlet.name, "published").inc()


def _withdrawn(user: OutwardUser) -> OutwardUser:
    return OutwardUser(user.user_id, user.display_name, user.email, user.extensions, None)


@dataclass
class Connectors:
    """The PBX connectors, the presence feed and the webhooks: one component for the
    application."""

    pbx: list[PbxConnector]
    feed: PresenceFeed | None
    webhooks: Webhooks | None = None

    async def start(self) -> None:
        for connector in self.pbx:
            await connector.start()
        if self.feed is not None:
            await self.feed.start()
        if self.webhooks is not None:
            await self.webhooks.start()

    async def stop(self) -> None:
        if self.webhooks is not None:
            await self.webhooks.stop()
        if self.feed is not None:
            await self.feed.stop()
        for connector in reversed(self.pbx):
            with contextlib.suppress(Exception):
                await connector.stop()

    def health(self) -> list[ConnectorHealth]:
        found = [c.health() for c in self.pbx]
        if self.feed is not None:
            found.extend(self.feed.health())
        if self.webhooks is not None:
            found.extend(self.webhooks.health())
        for item in found:
            metrics.CONNECTOR_UP.labels(item.name, item.kind).set(1 if item.up else 0)
        return found
