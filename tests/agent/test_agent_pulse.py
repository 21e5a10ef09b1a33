"""The Linux detectors against a real PulseAudio daemon started by the test.

Programs named like meeting apps (parecord copied to `zoom`, `chrome`,
`ms-teams`) record from the null source `fakemic`; streams that do not listen to
the user (a corked stream, the speakers' monitor, a volume meter) must not count.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import pytest

from presencebridge.agent.detect import MicrophoneDetector, create_detector
from presencebridge.agent.linux import (
    PactlDetector,
    PulseDetector,
    holders,
    sources_from_pactl,
    streams_from_pactl,
)
from tests.agent.pulse import PulseDaemon, command, stop_process

pytestmark = pytest.mark.anyio
PAVUCONTROL = "org.PulseAudio.pavucontrol"
Factory = Callable[[], Awaitable[MicrophoneDetector]]


async def _pulse() -> MicrophoneDetector:
    return await PulseDetector.start(own_pid=None)


async def _pactl() -> MicrophoneDetector:
    return PactlDetector(own_pid=None)


BACKENDS = pytest.mark.parametrize("make", [_pulse, _pactl], ids=["pulsectl", "pactl"])


@asynccontextmanager
async def detector(make: Factory) -> AsyncIterator[MicrophoneDetector]:
    made = await make()
    try:
        yield made
    finally:
        await made.close()


async def settle(found: MicrophoneDetector, want: set[str], within: float = 5.0) -> set[str]:
    """Snapshots until they show `want` (streams take a moment to appear and go)."""
    deadline = time.monotonic() + within
    while True:
        current = set((await found.snapshot()).processes)
        if current == want or time.monotonic() > deadline:
            return current
        await asyncio.sleep(0.05)


@BACKENDS
async def test_only_programs_listening_to_the_microphone_count(
    pulse_env: PulseDaemon, make: Factory
) -> None:
    async with detector(make) as found:
        assert (await found.snapshot()).processes == frozenset()
        pulse_env.record("zoom")
        pulse_env.record("chrome")
        # What does not listen to the user:
        pulse_env.record("ms-teams", "fakespk.monitor")  # records the speakers
        meter = pulse_env.stream(  # pavucontrol's level meter on the microphone
            "pavucontrol", "--peak", "--name", "Peak detect", "--app-id", PAVUCONTROL
        )
        paused = pulse_env.stream("firefox", "--corked")  # a corked (paused) stream
        assert await settle(found, {"zoom", "chrome"}) == {"zoom", "chrome"}
        await asyncio.sleep(0.3)  # the ignored streams are there too, and stay ignored
        assert set((await found.snapshot()).processes) == {"zoom", "chrome"}
        streams = json.loads(pulse_env.source_outputs())
        assert len(streams) == 5, "every stream is really there"

        command(paused, "uncork")
        assert await settle(found, {"zoom", "chrome", "firefox"}) == {"zoom", "chrome", "firefox"}
        command(paused, "cork")
        assert await settle(found, {"zoom", "chrome"}) == {"zoom", "chrome"}
        stop_process(meter)


@BACKENDS
async def test_events_wake_the_detector_when_a_program_starts_and_stops(
    pulse_env: PulseDaemon, make: Factory
) -> None:
    async with detector(make) as found:
        await found.snapshot()
        await found.wait_for_change(within=0.3)  # let the subscription settle
        await found.snapshot()

        started = time.monotonic()
        waiting = asyncio.create_task(found.wait_for_change(within=20))
        await asyncio.sleep(0.2)
        zoom = pulse_env.record("zoom")
        await asyncio.wait_for(waiting, 5)
        assert time.monotonic() - started < 3, "an event woke the detector, not its timeout"
        assert await settle(found, {"zoom"}) == {"zoom"}

        await found.wait_for_change(within=0.3)
        await found.snapshot()
        started = time.monotonic()
        waiting = asyncio.create_task(found.wait_for_change(within=20))
        await asyncio.sleep(0.2)
        stop_process(zoom)
        await asyncio.wait_for(waiting, 5)
        assert time.monotonic() - started < 3
        assert await settle(found, set()) == set()


async def test_the_agents_own_process_is_ignored(pulse_env: PulseDaemon) -> None:
    pulse_env.stream("zoom", "--pid", "424242")
    pulse_env.record("chrome")
    async with detector(lambda: PulseDetector.start(own_pid=424242)) as found:
        assert await settle(found, {"chrome"}) == {"chrome"}
    async with detector(lambda: PulseDetector.start(own_pid=None)) as found:
        assert await settle(found, {"chrome", "zoom"}) == {"chrome", "zoom"}


async def test_the_platform_detector_is_pulseaudio_and_survives_a_daemon_restart(
    pulse_env: PulseDaemon,
) -> None:
    async with detector(create_detector) as found:
        assert found.name == "pulseaudio"
        pulse_env.record("zoom")
        assert await settle(found, {"zoom"}) == {"zoom"}
        pulse_env.stop()  # the sound server goes away (and with it every stream)
        assert (await found.snapshot()).processes == frozenset()
        pulse_env.children.clear()
        pulse_env.start()
        pulse_env.record("chrome")
        assert await settle(found, {"chrome"}, within=8) == {"chrome"}


async def test_without_any_sound_server_the_detector_says_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PULSE_SERVER", "unix:/nonexistent/native")
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(Exception, match="no PulseAudio / PipeWire"):
        await create_detector("linux")


# A `pactl -f json` recording with what a real desktop shows besides the meeting app.
RECORDED_SOURCES = [
    {"index": 0, "name": "alsa_input.usb-mic", "monitor_source": "", "properties": {}},
    {
        "index": 1,
        "name": "alsa_output.speakers.monitor",
        "monitor_source": "alsa_output.speakers",
        "properties": {"device.class": "monitor"},
    },
    # PipeWire's pipewire-pulse names the field differently in newer pactl versions.
    {"index": 2, "name": "headset.monitor", "monitor_of_sink": "headset", "properties": {}},
]
RECORDED_OUTPUTS = [
    {
        "index": 10,
        "source": 0,
        "corked": False,
        "properties": {"application.process.binary": "zoom", "application.process.id": "900"},
    },
    {
        "index": 11,
        "source": 0,
        "corked": True,  # Slack keeps a paused stream open between calls
        "properties": {"application.process.binary": "slack"},
    },
    {
        "index": 12,
        "source": 4294967295,  # unlinked (PA_INVALID_INDEX): being moved or torn down
        "corked": False,
        "properties": {"application.process.binary": "discord"},
    },
    {
        "index": 13,
        "source": 1,  # the speakers' monitor: a screen recorder, not the user
        "corked": False,
        "properties": {"application.process.binary": "obs"},
    },
    {
        "index": 14,
        "source": 0,
        "corked": False,
        "resample_method": "peaks",
        "properties": {
            "application.process.binary": "gnome-control-center",
            "application.id": "org.gnome.VolumeControl",
            "media.name": "Peak detect",
        },
    },
    {
        "index": 15,
        "source": 0,
        "corked": False,
        "properties": {"application.name": "Google Chrome"},  # no binary: the name counts
    },
    {
        "index": 16,
        "source": 7,  # a source that does not exist (any more)
        "corked": False,
        "properties": {"application.process.binary": "teams"},
    },
    {
        "index": 17,
        "source": 2,
        "corked": False,
        "properties": {"application.process.binary": "firefox"},
    },
]


async def test_recorded_pactl_json_applies_every_rule() -> None:
    streams = streams_from_pactl(RECORDED_OUTPUTS)
    sources = sources_from_pactl(RECORDED_SOURCES)
    assert holders(streams, sources, own_pid=None) == {"zoom", "chrome"}
    assert holders(streams, sources, own_pid=900) == {"chrome"}
    assert holders(streams_from_pactl([]), sources, own_pid=None) == frozenset()
    assert streams_from_pactl({"not": "a list"}) == []
