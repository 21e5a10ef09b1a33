"""The tenant's Graph request budget, shared by reads and writes.

Graph allows 1,500 presence requests per 30 s per app and tenant (GRAPH.md). The
hub spends it deliberately instead of discovering it through 429s: reads may use
only their share, so a burst of polling never starves a write; writes may use all
of it except, while reads are waiting, a reserve for them, so a storm of writes
(more PBX calls than Graph takes) never stops Teams -> UC either.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable


class RequestBudget:
    def __init__(
        self,
        limit: int = 1500,
        window_seconds: float = 30.0,
        read_share: float = 0.6,
        clock: Callable[[], float] = time.monotonic,
        read_reserve: float = 0.2,
    ) -> None:
        # A small margin keeps us under the limit despite clock skew between us and Graph.
        self.tenant_limit = max(1, int(limit * 0.97))
        self.read_share = read_share
        self.window = window_seconds
        self.share = 1.0
        self.limit = self.tenant_limit
        self.read_limit = max(1, int(self.limit * read_share))
        self.read_reserve = read_reserve
        self.reads_waiting = 0
        self._clock = clock
        self._all: deque[float] = deque()
        self._reads: deque[float] = deque()
        self.spent_total = 0
        self.waited_seconds = 0.0

    def _trim(self, now: float) -> None:
        for times in (self._all, self._reads):
            while times and times[0] <= now - self.window:
                times.popleft()

    def set_share(self, share: float) -> None:
        """Several nodes: this node may spend `share` of the tenant's budget.

        Each node's share is the part of the partitions it owns (in the database's
        lease table), so the shares of all nodes add up to at most the whole.
        """
        self.share = min(1.0, max(0.0, share))
        self.limit = max(1, int(self.tenant_limit * self.share))
        self.read_limit = max(1, int(self.limit * self.read_share))

    def write_limit(self) -> int:
        if self.reads_waiting == 0:
            return self.limit
        return max(1, self.limit - int(self.limit * self.read_reserve))

    def wait_time(self, read: bool, now: float | None = None) -> float:
        now = self._clock() if now is None else now
        self._trim(now)
        waits = [0.0]
        limit = self.limit if read else self.write_limit()
        if len(self._all) >= limit:
            waits.append(self._all[len(self._all) - limit] + self.window - now)
        if read and len(self._reads) >= self.read_limit:
            waits.append(self._reads[len(self._reads) - self.read_limit] + self.window - now)
        return max(waits)

    async def spend(self, read: bool, count: int = 1) -> None:
        """Wait until `count` requests fit in the window, then book them.

        Checking and booking happen without an await in between, so no lock is
        needed, and a read waiting for its share never holds up a write.
        """
        for _ in range(count):
            while (wait := self.wait_time(read)) > 0:
                self.waited_seconds += wait
                self.reads_waiting += read
                try:
                    await asyncio.sleep(wait if read else min(wait, 1.0))
                finally:
                    self.reads_waiting -= read
            now = self._clock()
            self._all.append(now)
            if read:
                self._reads.append(now)
            self.spent_total += 1

    def used(self) -> int:
        self._trim(self._clock())
        return len(self._all)

    def reads_per_second(self) -> float:
        return self.read_limit / self.window
