"""The microphone detector interface: what every platform backend provides.

Backends (`linux`, `windows`, `macos`) import this module only; `detect.py` picks one
at run time. A detector answers two questions. `snapshot()` is the whole truth at one
moment: the (normalised) names of the processes that hold a capture device now.
`wait_for_change(within)` returns when something may have changed (an audio server
event, a poll interval) or when `within` seconds have passed; it is only a wake-up,
never evidence: every decision is taken from the next full snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from presencebridge.core.micsync import normalise

Confidence = Literal["high", "low"]


@dataclass(frozen=True)
class Snapshot:
    """The processes holding the microphone at one moment (normalised names).

    `confidence` is "low" when the backend could only see that *some* program
    records (e.g. macOS before 14.2) and `processes` are the running candidates.
    """

    processes: frozenset[str] = frozenset()
    confidence: Confidence = "high"


class MicrophoneDetector(Protocol):
    """A platform backend. Events are wake-ups only; `snapshot` is the truth."""

    name: str

    async def snapshot(self) -> Snapshot: ...

    async def wait_for_change(self, within: float) -> None: ...

    async def close(self) -> None: ...


class DetectorUnavailable(RuntimeError):
    """No backend can watch the microphone on this machine; the message says why."""


def process_name(*candidates: str | None) -> str | None:
    """The first usable candidate, normalised (binary before display name)."""
    for candidate in candidates:
        if candidate and candidate.strip():
            return normalise(candidate)
    return None
