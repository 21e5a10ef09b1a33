"""Graph's tenant budget for presence calls, and injected faults."""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field
from typing import Any

LIMIT = 1500
WINDOW_SECONDS = 30.0


@dataclass
class _Window:
    times: deque[float] = field(default_factory=deque)
    peak: int = 0
    throttled: int = 0


class Budget:
    """1,500 requests per 30 s per (app, tenant), as a sliding window.

    Only admitted requests enter the window, so what is in use never exceeds the
    limit; a refused request is told, in `Retry-After`, when the oldest request in
    the window leaves it.
    """

    def __init__(self, limit: int = LIMIT, window_seconds: float = WINDOW_SECONDS) -> None:
        self.limit = limit
        self.window_seconds = window_seconds
        self._windows: dict[tuple[str, str], _Window] = {}

    def _window(self, key: tuple[str, str], now: float) -> _Window:
        window = self._windows.setdefault(key, _Window())
        while window.times and window.times[0] <= now - self.window_seconds:
            window.times.popleft()
        return window

    def admit(self, app_id: str, tenant_id: str, now: float) -> float | None:
        """None if the request may run (and it is counted); else seconds to wait."""
        window = self._window((app_id, tenant_id), now)
        if len(window.times) >= self.limit:
            window.throttled += 1
            return max(0.001, window.times[0] + self.window_seconds - now)
        window.times.append(now)
        window.peak = max(window.peak, len(window.times))
        return None

    def reset(self) -> None:
        self._windows.clear()

    def to_json(self, now: float) -> dict[str, Any]:
        per_app = {}
        for key in list(self._windows):
            window = self._window(key, now)
            per_app[f"{key[0]}@{key[1]}"] = {
                "used_now": len(window.times),
                "peak": window.peak,
                "throttled": window.throttled,
            }
        return {
            "limit": self.limit,
            "window_seconds": self.window_seconds,
            "used_now": max((w["used_now"] for w in per_app.values()), default=0),
            "peak": max((w["peak"] for w in per_app.values()), default=0),
            "per_app": per_app,
        }


@dataclass
class Faults:
    """Failures injected into Graph requests: 429s, 503s and added latency."""

    rate_429: float = 0.0
    rate_503: float = 0.0
    latency_ms: float = 0.0
    retry_after_seconds: float = 1.0
    seed: int | None = None
    _random: random.Random = field(default_factory=random.Random, repr=False)

    def configure(
        self,
        rate_429: float,
        rate_503: float,
        latency_ms: float,
        retry_after_seconds: float,
        seed: int | None,
    ) -> None:
        self.rate_429, self.rate_503, self.latency_ms = rate_429, rate_503, latency_ms
        self.retry_after_seconds, self.seed = retry_after_seconds, seed
        self._random = random.Random(seed)  # noqa: S311 - fault injection, not security

    def roll(self) -> int | None:
        """The status to inject for one request, if any (503 is drawn first)."""
        if self.rate_503 and self._random.random() < self.rate_503:
            return 503
        if self.rate_429 and self._random.random() < self.rate_429:
            return 429
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "rate_429": self.rate_429,
            "rate_503": self.rate_503,
            "latency_ms": self.latency_ms,
            "retry_after_seconds": self.retry_after_seconds,
            "seed": self.seed,
        }
