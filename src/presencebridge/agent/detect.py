"""Which programs hold the microphone: the backend this platform offers.

The interface the backends implement is `detector.py` (snapshot = the truth, change
events = wake-ups only); this module only chooses one at run time.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys

from presencebridge.agent.detector import (
    Confidence,
    DetectorUnavailable,
    MicrophoneDetector,
    Snapshot,
    process_name,
)

log = logging.getLogger(__name__)

__all__ = [
    "Confidence",
    "DetectorUnavailable",
    "MicrophoneDetector",
    "Snapshot",
    "create_detector",
    "platform_name",
    "process_name",
]


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
