"""Redis publish/subscribe between the nodes of one installation.

Each node publishes the new state of every user it handles and every group it
changed; every node applies what the others publish, so a presence stream on any
node sees every change. Redis is a messenger here, never the truth: the database
is. After a lost connection a node reads everyone again (`on_reconnect`).

`barrier()` lets a node catch up with the others before it answers a read from its
copy: it publishes a marker, every other node answers it through its own outbox,
behind everything that node published before, and the subscriber applies messages
in order. Once every peer's answer has come in, every change a peer acknowledged
before the barrier began is in this node's copy.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable, Collection
from typing import Any

import orjson
import redis.asyncio as redis

log = logging.getLogger(__name__)

CHANNEL = "presencebridge:changes"

Handler = Callable[[dict[str, Any]], Awaitable[None]]


class Fanout:
    def __init__(self, url: str, node: str, channel: str = CHANNEL) -> None:
        self.node = node
        self.channel = channel
        self._redis = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
        self._outbox: asyncio.Queue[str] = asyncio.Queue(100_000)
        self.published = 0
        self.received = 0
        self.dropped = 0
        self.connected = False
        self.barriers = 0
        self.barrier_timeouts = 0
        self._waiting: dict[str, tuple[set[str], asyncio.Event]] = {}

    def publish(self, message: dict[str, Any]) -> None:
        """Queue a message for the other nodes; never blocks the caller. orjson, as the
        store: a user's state (`codec.encode`) holds times and enum members."""
        try:
            self._outbox.put_nowait(orjson.dumps({"node": self.node, **message}).decode())
        except asyncio.QueueFull:
            self.dropped += 1  # the others catch up when they resync

    async def barrier(self, peers: Collection[str], within: float) -> set[str]:
        """Wait until each of `peers` (node ids) has passed on everything it published
        before now; returns the peers that did not answer `within` seconds."""
        missing = set(peers) - {self.node}
        if not missing:
            return set()
        if not self.connected:
            return missing  # nothing arrives anyway; the resync after reconnecting catches up
        token = uuid.uuid4().hex
        done = asyncio.Event()
        self._waiting[token] = (missing, done)
        self.barriers += 1
        try:
            self.publish({"kind": "barrier", "id": token})
            try:
                await asyncio.wait_for(done.wait(), within)
            except TimeoutError:
                self.barrier_timeouts += 1
                log.warning("no barrier answer within %.1f s from %s", within, sorted(missing))
            return set(missing)
        finally:
            del self._waiting[token]

    def _barrier_message(self, message: dict[str, Any]) -> bool:
        """Answer another node's barrier, or note an answer to ours; False for others."""
        kind = message.get("kind")
        if kind == "barrier":
            self.publish({"kind": "barrier-passed", "id": message["id"], "to": message["node"]})
            return True
        if kind == "barrier-passed":
            if message.get("to") == self.node and message["id"] in self._waiting:
                missing, done = self._waiting[message["id"]]
                missing.discard(message["node"])
                if not missing:
                    done.set()
            return True
        return False

    async def run_publisher(self) -> None:
        while True:
            first = await self._outbox.get()
            batch = [first]
            while not self._outbox.empty() and len(batch) < 500:
                batch.append(self._outbox.get_nowait())
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for text in batch:
                        pipe.publish(self.channel, text)
                    await pipe.execute()
                self.published += len(batch)
            except (redis.RedisError, OSError) as error:
                self.dropped += len(batch)
                log.warning("Redis publish failed (%s); %d changes not sent", error, len(batch))
                await asyncio.sleep(1.0)

    async def run_subscriber(
        self, handle: Handler, on_reconnect: Callable[[], Awaitable[None]]
    ) -> None:
        """Apply every other node's messages, in order; resync after each (re)connect."""
        pause = 0.5
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(self.channel)
                    self.connected = True
                    pause = 0.5
                    await on_reconnect()
                    async for item in pubsub.listen():
                        if item.get("type") != "message":
                            continue
                        message = json.loads(item["data"])
                        if message.get("node") == self.node:
                            continue
                        if self._barrier_message(message):
                            continue
                        self.received += 1
                        try:
                            await handle(message)
                        except Exception:  # one bad message must not stop the fan-out
                            log.exception("could not apply a change from node %s", message["node"])
            except (redis.RedisError, OSError) as error:
                self.connected = False
                log.warning("Redis subscription lost (%s); retry in %.1f s", error, pause)
                await asyncio.sleep(pause)
                pause = min(10.0, pause * 2)

    async def aclose(self) -> None:
        await self._redis.aclose()
