"""The heap keeper (service/heap.py): a slow full collection makes it freeze what lives,
so later collections leave it alone; its periodic renewal reclaims garbage that was
frozen while in flight, so freezing never leaks."""

from __future__ import annotations

import asyncio
import gc
import weakref

from presencebridge.service.heap import HeapKeeper


class Cycle:
    def __init__(self) -> None:
        self.me = self


def walked_by_collections(objects: list[Cycle]) -> int:
    """How many of `objects` the collector still walks (frozen ones it does not)."""
    tracked = {id(o) for o in gc.get_objects()}
    return sum(1 for o in objects if id(o) in tracked)


async def until(check: object, bound: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + bound
    while not check():  # type: ignore[operator]
        assert loop.time() < end, "condition not met"
        await asyncio.sleep(0.01)


def test_a_slow_full_collection_freezes_what_lives_and_renewal_reclaims_frozen_garbage() -> None:
    now = [0.0]

    async def scenario() -> None:
        # Every full collection counts as slow; freezes at once; renewal when told.
        keeper = HeapKeeper(slow=0.0, spacing=0.0, renew_every=100.0, check_every=0.01,
                            clock=lambda: now[0])  # fmt: skip
        await keeper.start()
        try:
            gc.collect()
            gc.freeze()
            living = [Cycle() for _ in range(1000)]
            in_flight = Cycle()
            probe = weakref.ref(in_flight)
            assert walked_by_collections(living) == len(living)
            gc.collect(2)  # someone else's full collection: observed as slow
            await until(lambda: keeper.freezes == 1)
            assert walked_by_collections(living) == 0
            # The in-flight object died in a cycle after it was frozen: no collection
            # reaches it ...
            del in_flight
            gc.collect()
            assert probe() is not None
            # ... until the renewal thaws the heap and collects it whole.
            now[0] = 100.0
            await until(lambda: keeper.renewals == 1)
            assert probe() is None
            assert len(living) == 1000
        finally:
            await keeper.stop()
            gc.unfreeze()

    asyncio.run(scenario())


def test_quick_full_collections_freeze_nothing() -> None:
    async def scenario() -> None:
        keeper = HeapKeeper(slow=60.0, spacing=0.0, check_every=0.01)
        await keeper.start()
        try:
            gc.collect(2)
            assert keeper.freezes == 0 and not keeper.freeze_due
        finally:
            await keeper.stop()
            gc.unfreeze()

    asyncio.run(scenario())


def test_young_objects_are_collected_less_often_while_the_keeper_runs() -> None:
    """Full collections follow young ones: with CPython's 700 a busy hub walked every
    user's newest state three times a second."""

    async def scenario() -> None:
        before = gc.get_threshold()
        keeper = HeapKeeper(young=12_345)
        await keeper.start()
        try:
            assert gc.get_threshold() == (12_345, *before[1:])
            kept: list[list[int]] = [
                [] for _ in range(5_000)
            ]  # more than 700 new containers, fewer than young
            assert gc.get_count()[0] > len(kept)  # no young collection ran (700 would have)
        finally:
            await keeper.stop()
        assert gc.get_threshold() == before  # what the process had is given back

    asyncio.run(scenario())
