"""What a reliability test did, for the terminal summary; the size it runs at."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

SEED_VAR = "PRESENCEBRIDGE_RELIABILITY_SEED"
SHORT_EVENTS = 400


@dataclass(frozen=True)
class Size:
    events: int
    seed: int

    @property
    def full(self) -> bool:
        return self.events > SHORT_EVENTS


@dataclass
class Report:
    """What one reliability test really did, for the terminal summary."""

    test: str
    seed: int
    counts: dict[str, int] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    seconds: float = 0.0

    def add(self, name: str, amount: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + amount

    def data(self) -> dict[str, object]:
        return {
            "test": self.test,
            "seed": self.seed,
            "seconds": self.seconds,
            "counts": self.counts,
        }


def summary_lines(data: dict[str, Any]) -> list[str]:
    """One test's report, as the terminal summary prints it."""
    lines = [
        f"{data['test']}: seed {data['seed']} ({SEED_VAR}={data['seed']} replays it), "
        f"{data['seconds']:.1f} s"
    ]
    lines += [f"    {name}: {value}" for name, value in data["counts"].items()]
    return lines
