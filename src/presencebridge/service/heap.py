"""Keeps CPython's full garbage collections short, so they never stall the event loop.

A full (generation 2) collection walks every container object the process holds that is
not frozen. The hub freezes its heap once at start (`Hub.start`), but everything made
after that (users created later, a connector's 10,000 lines, each user's newest state)
is walked again by every full collection: at 10,000 users and 200 PBX changes a second
they took 0.15–1.05 s every 15–30 s, inside whatever callback happened to allocate.

So the keeper watches how long full collections take (`gc.callbacks`). When one took
longer than `slow`, it freezes the heap again at the next quiet turn of the loop (at
most every `spacing` seconds): what lives by then is likely to live long, and the next
collections walk only what is newer. Freezing also freezes what is merely in flight
(tasks, futures, a traceback's frames); those that end in a reference cycle would never
be reclaimed. Every `renew_every` seconds the keeper therefore thaws the heap, collects
it whole once (the one long pause it allows: about a second at 100,000 users, four
times a day) and freezes it again, so such garbage is bounded, never growing.

While it runs, the youngest generation is collected every `young` net allocations
instead of CPython's 700. Full collections are counted in young ones (one per 100), and
with the heap frozen nearly every full collection is due at once: at 700 a hub taking
10,000 PBX events a second ran three a second, each walking every user's newest state
(~15 % of its CPU). Cycles among new objects wait a little longer to be freed; nothing
the hub keeps makes them.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import Callable
from typing import Any

from presencebridge import metrics

log = logging.getLogger(__name__)


class HeapKeeper:
    """A component of the application (`bootstrap.build`)."""

    def __init__(
        self,
        slow: float = 0.05,
        spacing: float = 60.0,
        renew_every: float = 6 * 3600.0,
        check_every: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        young: int = 10_000,
    ) -> None:
        self.slow = slow
        self.young = young
        self._thresholds: tuple[int, int, int] | None = None
        self.spacing = spacing
        self.renew_every = renew_every
        self.check_every = check_every
        self.clock = clock
        self.freeze_due = False
        self.freezes = 0
        self.renewals = 0
        self._began = 0.0
        self._ours = False
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._thresholds = gc.get_threshold()
        gc.set_threshold(self.young, *self._thresholds[1:])
        gc.callbacks.append(self._observe)
        self._task = asyncio.create_task(self._run(), name="heap-keeper")

    async def stop(self) -> None:
        if self._observe in gc.callbacks:
            gc.callbacks.remove(self._observe)
        if self._thresholds is not None:
            gc.set_threshold(*self._thresholds)
            self._thresholds = None
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def _observe(self, phase: str, info: dict[str, Any]) -> None:
        # Runs inside the collector: measure, decide nothing that allocates much.
        if info["generation"] != 2 or self._ours:
            return
        if phase == "start":
            self._began = time.perf_counter()
            return
        took = time.perf_counter() - self._began
        metrics.GC_FULL_SECONDS.observe(took)
        if took > self.slow:
            self.freeze_due = True

    def _collect(self, thaw: bool) -> float:
        self._ours = True
        began = time.perf_counter()
        try:
            if thaw:
                gc.unfreeze()
            gc.collect()
            gc.freeze()
        finally:
            self._ours = False
        metrics.GC_FROZEN_OBJECTS.set(gc.get_freeze_count())
        return time.perf_counter() - began

    async def _run(self) -> None:
        last_renewal = self.clock()
        last_freeze = last_renewal - self.spacing
        while True:
            await asyncio.sleep(self.check_every)
            now = self.clock()
            if now - last_renewal >= self.renew_every:
                took = self._collect(thaw=True)
                self.renewals += 1
                last_renewal = last_freeze = now
                self.freeze_due = False
                log.info("heap renewed: whole collection %.0f ms", took * 1000)
            elif self.freeze_due and now - last_freeze >= self.spacing:
                took = self._collect(thaw=False)
                self.freezes += 1
                last_freeze = now
                self.freeze_due = False
                log.info(
                    "heap frozen again after a slow full collection (%.0f ms; %d objects frozen)",
                    took * 1000,
                    gc.get_freeze_count(),
                )
