"""Signed outgoing webhooks (issue 17 part 4, docs/webhooks.md): every effective
presence change of this node's users, one signed POST each, in order per user, at least
once, never in the hub's way.

    hub.bus -> follow (the body made at once, into a bounded buffer in memory)
            -> write (batches of rows into the outbox table, on a worker thread)
            -> a worker per webhook (the oldest change of each user first)

The hub only publishes on its bus, as for every other listener; nothing it does waits
for the outbox or a receiver. Unlike the presence outlets (`connectors.PresenceFeed`,
which coalesce a burst into the newest state) a webhook gets every change: a ticket
system or a door sign may count or log them. A change is deleted from the outbox once
the receiver answered 2xx; a restart delivers whatever is still there.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from presencebridge import metrics
from presencebridge.adapters.store.webhooks import NewChange, OutboxEntry, WebhookOutbox
from presencebridge.adapters.webhook import Outcome, Result, WebhookSender, WebhookSettings
from presencebridge.core.effective import EffectivePresence
from presencebridge.core.ports import ConnectorHealth
from presencebridge.service.bus import Listener, PresenceChange
from presencebridge.service.hub import Hub

log = logging.getLogger(__name__)

PRESENCE_CHANGED = "presence.changed"
USER_DELETED = "user.deleted"

# The presence resource exactly as GET /api/v1/users/{id}/presence gives it
# (`api.views.presence`, passed in by bootstrap: the service does not import the API).
Render = Callable[[EffectivePresence, str, datetime | None], dict[str, Any]]


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


@dataclass
class WebhookWorker:
    """Delivers one webhook's outbox: per user strictly in order, users independently.

    A user whose change failed waits (doubling delays) while the others go on; no HTTP
    answer at all means the receiver is down, and then only one request at a time
    probes it until it answers, so a long outage is not a storm of requests.
    """

    settings: WebhookSettings
    sender: WebhookSender
    outbox: WebhookOutbox
    hub: Hub
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    waiting: dict[str, float] = field(default_factory=dict)  # user -> may try again at
    in_flight: set[str] = field(default_factory=set)
    taken: dict[int, str] = field(default_factory=dict)  # row -> user: to delete
    pause_until: float = 0.0
    unreachable: bool = False
    outage: int = 0  # failed probes in a row while the receiver gives no answer
    pending: int = 0
    dead: int = 0
    delivered: int = 0
    failed: int = 0
    last_error: str | None = None

    # Heads read per look (a few times the requests in flight: the outbox is read again
    # after every delivery, so a long list would be read mostly in vain); users waiting
    # or in flight are left out in the query while there are few of them (a long list
    # would make the query slow).
    HEADS_PER_REQUEST = 4
    SKIP_IN_QUERY = 500

    @property
    def name(self) -> str:
        return self.settings.name

    async def run(self) -> None:
        tasks: set[asyncio.Task[None]] = set()
        try:
            while True:
                self.wake.clear()
                await self._forget_taken()
                await self._start_deliveries(tasks)
                await self._wait(tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            with contextlib.suppress(Exception):  # else they go out again, same key
                await self._forget_taken()

    async def _forget_taken(self) -> None:
        """Delete what the receiver took, many rows in one transaction (one commit per
        delivery would compete with the hub's commits); only then may those users' next
        changes go, or the outbox would still show the delivered one first."""
        if not self.taken:
            return
        taken, self.taken = self.taken, {}
        try:
            await asyncio.to_thread(self.outbox.delivered, list(taken))
        except Exception as error:  # the database is away: they stay in flight meanwhile
            log.warning("webhook %s: recording deliveries failed: %s", self.name, error)
            self.taken.update(taken)
            self.pause_until = asyncio.get_running_loop().time() + self.settings.first_retry_seconds
            return
        for user_id in taken.values():
            self.in_flight.discard(user_id)

    async def _start_deliveries(self, tasks: set[asyncio.Task[None]]) -> None:
        room = (1 if self.unreachable else self.settings.concurrency) - len(tasks)
        now = asyncio.get_running_loop().time()
        if room <= 0 or now < self.pause_until:
            return
        self.waiting = {u: at for u, at in self.waiting.items() if at > now}
        skip = self.in_flight | set(self.waiting)
        try:
            heads = await asyncio.to_thread(
                self.outbox.heads,
                self.name,
                max(64, self.HEADS_PER_REQUEST * self.settings.concurrency),
                skip if len(skip) <= self.SKIP_IN_QUERY else (),
            )
        except Exception as error:  # the database is away: try again shortly
            log.warning("webhook %s: reading the outbox failed: %s", self.name, error)
            self.pause_until = now + self.settings.first_retry_seconds
            return
        for entry in heads:
            if room <= 0:
                break
            if entry.user_id in skip or not self.hub.owns(entry.user_id):
                continue  # another node handles this user, and delivers their changes
            self.in_flight.add(entry.user_id)
            task = asyncio.create_task(self._deliver(entry), name=f"webhook-{self.name}")
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            room -= 1

    async def _wait(self, tasks: set[asyncio.Task[None]]) -> None:
        """Until a delivery ends, new changes arrive, or a waiting user may try again."""
        now = asyncio.get_running_loop().time()
        due = [at for at in self.waiting.values()]
        if self.pause_until > now:
            due.append(self.pause_until)
        timeout = max(min(due) - now, 0.0) + 0.001 if due else None
        woken = asyncio.create_task(self.wake.wait())
        try:
            await asyncio.wait({woken, *tasks}, timeout=timeout, return_when="FIRST_COMPLETED")
        finally:
            woken.cancel()

    async def _deliver(self, entry: OutboxEntry) -> None:
        took = False
        try:
            result = await self.sender.send(entry.event_id, entry.event, entry.body.encode())
            if result.outcome is Outcome.DELIVERED:
                self._took(entry)
                took = True  # in flight until its row is deleted (`_forget_taken`)
            else:
                await self._failed(entry, result)
        except Exception:  # the outbox could not record it: it goes out again later
            log.exception("webhook %s: settling change %s failed", self.name, entry.id)
            self._wait_user(entry.user_id, entry.attempts + 1)
        finally:
            if not took:
                self.in_flight.discard(entry.user_id)
            # The loop may be reading the outbox right now, not waiting on this task:
            # the wake makes it look again either way (the user's next change).
            self.wake.set()

    def _took(self, entry: OutboxEntry) -> None:
        self.taken[entry.id] = entry.user_id
        self._count(1, 0, "delivered")
        self.delivered += 1
        self.waiting.pop(entry.user_id, None)
        if self.unreachable:
            log.info("webhook %s: %s answers again", self.name, self.settings.shown_url)
        self.unreachable, self.outage = False, 0

    async def _failed(self, entry: OutboxEntry, result: Result) -> None:
        attempts = entry.attempts + 1
        age = self.hub.clock.now() - entry.created_at
        dead = (
            result.outcome is Outcome.DEAD
            or attempts >= self.settings.max_attempts
            or age >= timedelta(seconds=self.settings.give_up_after_seconds)
        )
        dead_at = self.hub.clock.now() if dead else None
        await asyncio.to_thread(self.outbox.failed, entry.id, attempts, result.detail, dead_at)
        self.failed += 1
        self.last_error = result.detail
        if result.unreachable and not self.unreachable:
            log.warning(
                "webhook %s: %s does not answer (%s); retrying",
                self.name, self.settings.shown_url, result.detail,
            )  # fmt: skip
        self.unreachable = result.unreachable
        self.outage = self.outage + 1 if result.unreachable else 0
        if result.unreachable:
            self.pause_until = asyncio.get_running_loop().time() + self._delay(self.outage)
        if dead:
            self._count(1, 1, "dead")
            self.waiting.pop(entry.user_id, None)  # the user's next change may go now
            log.warning(
                "webhook %s: change %s of %s is a dead letter after %d attempt(s): %s",
                self.name, entry.id, entry.user_id, attempts, result.detail,
            )  # fmt: skip
        else:
            metrics.WEBHOOK_ATTEMPTS.labels(self.name, "retry").inc()
            self._wait_user(entry.user_id, attempts)

    def _count(self, settled: int, dead: int, result: str) -> None:
        self.pending = max(self.pending - settled, 0)
        self.dead += dead
        metrics.WEBHOOK_ATTEMPTS.labels(self.name, result).inc()
        metrics.WEBHOOK_PENDING.labels(self.name).set(self.pending)

    def _delay(self, attempts: int) -> float:
        first, most = self.settings.first_retry_seconds, self.settings.max_retry_seconds
        return float(min(first * 2 ** min(attempts - 1, 40), most))

    def _wait_user(self, user_id: str, attempts: int) -> None:
        self.waiting[user_id] = asyncio.get_running_loop().time() + self._delay(attempts)

    def added(self, count: int) -> None:
        self.pending += count
        metrics.WEBHOOK_PENDING.labels(self.name).set(self.pending)
        self.wake.set()

    def health(self) -> ConnectorHealth:
        if self.unreachable:
            detail = f"{self.settings.shown_url}: not reachable, retrying ({self.last_error})"
        else:
            detail = self.settings.shown_url
        counts = {
            "pending": self.pending,
            "dead": self.dead,
            "delivered": self.delivered,
            "failed": self.failed,
        }
        return ConnectorHealth(self.name, "webhook", not self.unreachable, detail, counts)


@dataclass(frozen=True, slots=True)
class WebhookReport:
    """One webhook for the API and the console: counts from the outbox, dead letters."""

    name: str
    url: str
    groups: tuple[str, ...]
    up: bool
    detail: str
    pending: int
    dead: int
    delivered: int
    failed: int
    dead_letters: list[OutboxEntry]


class Webhooks:
    """Every webhook of this node: the outbox's writer and the workers, one component."""

    # Changes kept in memory until they are in the outbox. Beyond it (the database is
    # away for long), a user's further changes are counted as dropped and, once there is
    # room again, their current presence is sent in their place.
    BUFFER = 100_000
    BATCH = 500  # rows per insert
    DEAD_SHOWN = 100

    def __init__(
        self, hub: Hub, outbox: WebhookOutbox, workers: Sequence[WebhookWorker], render: Render
    ) -> None:
        self.hub = hub
        self.outbox = outbox
        self.workers = {w.name: w for w in workers}
        self.render = render
        self._buffer: list[NewChange] = []
        self._buffered = asyncio.Event()
        self._groups: dict[str, str] = {}  # user -> group, for the deletion's filter
        self._lost: set[str] = set()
        self.dropped = 0
        self._closing = False
        self._listener: Listener | None = None
        self._follower: asyncio.Task[None] | None = None
        self._writer: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        hub.add_takeover_listener(self._taken_over)

    async def start(self) -> None:
        for worker in self.workers.values():
            worker.pending, worker.dead = await asyncio.to_thread(self.outbox.counts, worker.name)
        for user_id in self.hub.user_ids():
            self._groups[user_id] = self.hub.user(user_id).state.user.group
        self._listener = self.hub.bus.listen()
        self._follower = asyncio.create_task(self._follow(self._listener), name="webhooks-follow")
        self._writer = asyncio.create_task(self._write(), name="webhooks-write")
        self._tasks = [
            asyncio.create_task(w.run(), name=f"webhook-{w.name}") for w in self.workers.values()
        ]

    async def stop(self) -> None:
        """What is buffered goes into the outbox first (a graceful stop loses nothing)."""
        if self._follower is not None:
            self._follower.cancel()
            await asyncio.gather(self._follower, return_exceptions=True)
        if self._listener is not None:
            # Changes the hub published that the follower had not taken yet.
            while not self._listener.queue.empty():
                with contextlib.suppress(Exception):
                    self._take(self._listener.queue.get_nowait())
            self.hub.bus.leave(self._listener)
        if self._writer is not None:
            self._closing = True
            self._buffered.set()
            try:
                await asyncio.wait_for(self._writer, timeout=10)
            except TimeoutError:
                log.error("webhooks: %d changes not written at stop", len(self._buffer))
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for worker in self.workers.values():
            with contextlib.suppress(Exception):
                await worker.sender.aclose()

    def health(self) -> list[ConnectorHealth]:
        found = [w.health() for w in self.workers.values()]
        if self.dropped:
            found = [
                ConnectorHealth(
                    h.name, h.kind, h.up, h.detail, {**h.counts, "dropped": self.dropped}
                )
                for h in found
            ]
        return found

    def _taken_over(self, user_ids: Sequence[str]) -> None:
        # Another node's users are ours now: their outbox rows are ours to deliver.
        for worker in self.workers.values():
            worker.wake.set()

    # -- into the outbox ---------------------------------------------------------------------

    async def _follow(self, listener: Listener) -> None:
        while True:
            if listener.overflowed.is_set() and listener.queue.empty():
                listener = self._listen_again()
            change = await listener.next()
            try:
                self._take(change)
            except Exception:  # one change must never stop the follower
                log.exception("webhooks: change of %s not queued", change.user_id)

    def _listen_again(self) -> Listener:
        """The bus dropped us (a burst of more changes than its backlog at once, such as
        a large import): listen again, and send everyone's presence now in place of what
        was missed, and the deletion of whoever is gone."""
        log.warning("webhooks: fell behind the hub's changes; sending everyone's presence")
        self._listener = listener = self.hub.bus.listen()
        gone = [u for u in self._groups if not self.hub.has_user(u)]
        for user_id in gone:
            self._take(PresenceChange(user_id, None))
        for user_id in self.hub.user_ids():
            self._take(PresenceChange(user_id, self.hub.user(user_id).presence))
        return listener

    def _take(self, change: PresenceChange) -> None:
        user_id = change.user_id
        if not self.hub.owns(user_id):
            return
        user: dict[str, Any] = {"id": user_id}
        if change.presence is None:
            user["group"] = self._groups.pop(user_id, None)
        elif self.hub.has_user(user_id):
            state = self.hub.user(user_id).state.user
            self._groups[user_id] = state.group
            user.update(
                display_name=state.display_name, group=state.group,
                email=state.email, extensions=list(state.extensions),
            )  # fmt: skip
        wanted = [w for w in self.workers.values() if w.settings.wants(user.get("group"))]
        if not wanted:
            return
        if len(self._buffer) + len(wanted) > self.BUFFER:
            self.dropped += 1
            self._lost.add(user_id)
            return
        now = self.hub.clock.now()
        for worker in wanted:
            self._buffer.append(self._change(worker.settings, user, change.presence, now))
        self._buffered.set()

    def _change(
        self,
        settings: WebhookSettings,
        user: dict[str, Any],
        presence: EffectivePresence | None,
        now: datetime,
    ) -> NewChange:
        event_id = str(uuid.uuid4())
        event = PRESENCE_CHANGED if presence is not None else USER_DELETED
        resource = None
        if presence is not None:
            last_sync = self.hub.teams_last_sync(user["id"])
            resource = self.render(presence, settings.language, last_sync)
        body = {
            "id": event_id,
            "event": event,
            "webhook": settings.name,
            "at": _iso(now),
            "user": user,
            "presence": resource,
        }
        text = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
        return NewChange(settings.name, user["id"], event_id, event, text, now)

    async def _write(self) -> None:
        while True:
            await self._buffered.wait()
            self._buffered.clear()
            await self._flush()
            if self._closing:
                return
            self._catch_up()

    async def _flush(self) -> None:
        while self._buffer:
            batch = self._buffer[: self.BATCH]
            try:
                await asyncio.to_thread(self.outbox.add, batch)
            except Exception as error:
                log.warning("webhooks: writing %d changes failed, retrying: %s", len(batch), error)
                if self._closing:
                    return
                await asyncio.sleep(1.0)
                continue
            del self._buffer[: len(batch)]
            for name in {c.webhook for c in batch}:
                self.workers[name].added(sum(1 for c in batch if c.webhook == name))

    def _catch_up(self) -> None:
        """Users whose changes were dropped: their presence now, in their place."""
        if not self._lost or len(self._buffer) > self.BUFFER // 2:
            return
        lost, self._lost = self._lost, set()
        for user_id in sorted(lost):
            presence = self.hub.user(user_id).presence if self.hub.has_user(user_id) else None
            self._take(PresenceChange(user_id, presence))

    # -- for the API and the console -----------------------------------------------------------

    async def reports(self) -> list[WebhookReport]:
        found = []
        for worker in self.workers.values():
            pending, dead = await asyncio.to_thread(self.outbox.counts, worker.name)
            letters = await asyncio.to_thread(
                self.outbox.dead_letters, worker.name, self.DEAD_SHOWN
            )
            own = worker.health()
            settings = worker.settings
            report = WebhookReport(
                worker.name, settings.shown_url, settings.groups, own.up, own.detail,
                pending, dead, worker.delivered, worker.failed, letters,
            )  # fmt: skip
            found.append(report)
        return found

    async def send_again(self, name: str, entry_id: int) -> bool:
        """A dead letter goes out again; False: no such webhook or dead letter."""
        worker = self.workers.get(name)
        if worker is None:
            return False
        entry = await asyncio.to_thread(self.outbox.revive, name, entry_id)
        if entry is None:
            return False
        worker.dead = max(worker.dead - 1, 0)
        worker.added(1)
        await self.hub.audit("webhook.dead_letter.retried", name, {"id": entry_id})
        return True

    async def discard(self, name: str, entry_id: int) -> bool:
        worker = self.workers.get(name)
        if worker is None:
            return False
        if not await asyncio.to_thread(self.outbox.discard, name, entry_id):
            return False
        worker.dead = max(worker.dead - 1, 0)
        await self.hub.audit("webhook.dead_letter.discarded", name, {"id": entry_id})
        return True
