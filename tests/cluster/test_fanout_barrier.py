"""The fan-out's barrier on a real Redis: after it, everything a peer published before
is applied here (what read-your-writes on a non-owner rests on)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
import redis.asyncio as redis

from presencebridge.adapters.fanout import CHANNEL, Fanout
from tests.support.redis import throwaway_redis

CHANGES = 300


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with throwaway_redis() as url:
        yield url


async def subscribed(url: str, count: int, within: float = 20.0) -> None:
    """Wait until Redis has `count` subscribers on the channel (a condition, not a time)."""
    client = redis.Redis.from_url(url)
    try:
        async with asyncio.timeout(within):
            while True:
                [(_, subscribers)] = await client.pubsub_numsub(CHANNEL)
                if subscribers >= count:
                    return
                await asyncio.sleep(0.01)  # polling Redis: there is no event to await
    finally:
        await client.aclose()


def test_after_a_barrier_every_change_a_peer_published_before_is_applied(
    redis_url: str,
) -> None:
    async def scenario() -> tuple[list[int], set[str], set[str]]:
        reader, owner = Fanout(redis_url, "reader"), Fanout(redis_url, "owner")
        applied: list[int] = []

        async def apply(message: dict[str, Any]) -> None:
            await asyncio.sleep(0.001)  # applying takes a while, as on a busy node
            applied.append(message["n"])

        async def nothing(_message: dict[str, Any] | None = None) -> None:
            return None

        tasks = [
            asyncio.create_task(reader.run_subscriber(apply, nothing)),
            asyncio.create_task(owner.run_subscriber(nothing, nothing)),
            asyncio.create_task(reader.run_publisher()),
            asyncio.create_task(owner.run_publisher()),
        ]
        try:
            await subscribed(redis_url, 2)
            for n in range(CHANGES):  # acknowledged by the owner: queued for the others
                owner.publish({"kind": "user", "n": n})
            late = await reader.barrier({"owner", "reader"}, within=20)
            seen_at_barrier = list(applied)
            gone = await reader.barrier({"owner", "ghost"}, within=0.5)
            return seen_at_barrier, late, gone
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await reader.aclose()
            await owner.aclose()

    seen, late, gone = asyncio.run(scenario())
    assert seen == list(range(CHANGES))  # all of them, in order
    assert late == set()
    assert gone == {"ghost"}  # a node that never answers is not waited for beyond `within`
