"""The shared Graph budget: never over the limit, reads capped at their share."""

from __future__ import annotations

import asyncio

from presencebridge.adapters.graph.budget import RequestBudget


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_reads_stop_at_their_share_while_writes_go_on() -> None:
    clock = FakeTime()
    budget = RequestBudget(limit=100, window_seconds=30, read_share=0.6, clock=clock)
    for _ in range(budget.read_limit):
        assert budget.wait_time(read=True) == 0
        asyncio.run(budget.spend(read=True))
    assert budget.wait_time(read=True) > 0  # the read share is used up
    assert budget.wait_time(read=False) == 0  # ... but a write still goes out at once
    clock.now = 30.0
    assert budget.wait_time(read=True) == 0  # the window moved on


def test_never_more_than_the_limit_in_any_window() -> None:
    clock = FakeTime()
    budget = RequestBudget(limit=50, window_seconds=30, read_share=1.0, clock=clock)
    for _ in range(budget.limit):
        asyncio.run(budget.spend(read=False))
    wait = budget.wait_time(read=False)
    assert 29.9 < wait <= 30.0
    assert budget.limit < 50  # a margin under Graph's own limit
    assert budget.used() == budget.limit


def test_spend_waits_until_the_window_frees() -> None:
    budget = RequestBudget(limit=10, window_seconds=0.3, read_share=1.0)

    async def burst() -> float:
        loop = asyncio.get_running_loop()
        started = loop.time()
        for _ in range(budget.limit + 1):
            await budget.spend(read=False)
        return loop.time() - started

    assert asyncio.run(burst()) >= 0.25


def test_a_storm_of_writes_leaves_room_for_waiting_reads() -> None:
    """More PBX calls than Graph takes must not stop Teams -> UC altogether."""
    clock = FakeTime()
    budget = RequestBudget(limit=100, window_seconds=30, read_share=0.6, clock=clock)
    for _ in range(budget.limit):
        asyncio.run(budget.spend(read=False))  # nobody reads: writes may use it all
    assert budget.used() == budget.limit
    clock.now = 30.0
    budget.reads_waiting = 1  # a poll round is queued
    reserve = budget.limit - budget.write_limit()
    assert reserve >= budget.limit // 5
    for _ in range(budget.write_limit()):
        asyncio.run(budget.spend(read=False))
    assert budget.wait_time(read=False) > 0  # writes now wait ...
    assert budget.wait_time(read=True) == 0  # ... and the reserve is the reads'
