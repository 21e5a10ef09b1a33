"""Which programs hold the microphone: one interface, one backend per platform.

A detector answers two questions. `snapshot()` is the whole truth at one moment:
the (normalised) names of the processes that hold a capture device now.
`wait_for_change(within)` returns when something may have changed (an audio
server event, a poll interval) or when `within` seconds have passed; it is only a wake-up,
never evidence: every decision is taken from the next full snapshot.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
from dataclasses import dataclass
from typing import Literal, Protocol

from presencebridge.core.micsync import normalise

log = logging.getLogger(__name__)

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


def platform_name(platform: str = sys.platform) -> str:
    if platform.startswith("win"):
        return "windows"
    if platform == "darwin":
        return "darwin"
    return "linux"


async def create_detector(platform: str = sys.platform) -> MicrophoneDetector:
    """The best backend this machine offers (probed at run time)."""
    own_pid = os.getpid()
    kind = platform_name(platform)
    if kind == "windows":
        from presencebridge.agent import windows

        return windows.create(own_pid)
    if kind == "darwin":
        from presencebridge.agent import macos

        return macos.create(own_pid)
    from presencebridge.agent import linux

    try:
        return await linux.PulseDetector.start(own_pid)
    except Exception as error:  # no pulsectl, no server reachable through libpulse
        log.warning("PulseAudio client library unavailable (%s); trying pactl", error)
    if shutil.which("pactl") is None:
        raise DetectorUnavailable(
            "no PulseAudio / PipeWire (pipewire-pulse) server reachable and no pactl: "
            "Microphone Sync cannot see the microphone"
        )
    detector = linux.PactlDetector(own_pid)
    try:
        await detector.snapshot()  # fails now rather than at the first use
    except Exception as error:
        await detector.close()
        raise DetectorUnavailable(
            f"no PulseAudio / PipeWire (pipewire-pulse) server reachable ({error}): "
            "Microphone Sync cannot see the microphone"
        ) from None
    return detector
