"""Linux: capture streams of PulseAudio, or of PipeWire through pipewire-pulse.

A program records from the microphone through a *source output* (a capture
stream) attached to a *source*. Not every source output is a program listening
to the user:

* a corked (paused) stream records nothing;
* a stream whose source is unknown (unlinked, being moved) records nothing;
* a stream from a monitor source records what the speakers play, not the user;
* volume meters (pavucontrol, GNOME and KDE mixers) open "Peak detect" streams
  on every source just to draw a level bar.

`holders` applies these rules to plain records, so the libpulse backend
(`PulseDetector`, through pulsectl, woken by server events) and the fallback
(`PactlDetector`, `pactl -f json` with `LC_ALL=C`, woken by `pactl subscribe`)
decide identically, and the rules are testable on recorded JSON.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import json
import logging
import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from presencebridge.agent.detector import Snapshot, process_name

log = logging.getLogger(__name__)

PA_INVALID_INDEX = 0xFFFFFFFF
# Programs that only draw level meters (their streams use PA_STREAM_PEAK_DETECT).
PEAK_METER_APPS = frozenset(
    {"org.pulseaudio.pavucontrol", "org.gnome.volumecontrol", "org.kde.plasma-pa", "org.kde.kmix"}
)
PEAK_METER_MEDIA_NAMES = frozenset({"peak detect"})
PACTL_TIMEOUT = 5.0


@dataclass(frozen=True)
class CaptureSource:
    index: int
    name: str
    monitor: bool  # records what a sink plays (e.g. "….monitor"), not a microphone


@dataclass(frozen=True)
class CaptureStream:
    index: int
    source: int | None  # None: not linked to any source
    corked: bool
    properties: Mapping[str, str] = field(default_factory=dict)
    resample_method: str = ""


def is_peak_meter(stream: CaptureStream) -> bool:
    props = stream.properties
    return (
        props.get("application.id", "").lower() in PEAK_METER_APPS
        or props.get("media.name", "").strip().lower() in PEAK_METER_MEDIA_NAMES
        or stream.resample_method == "peaks"
    )


def stream_process(stream: CaptureStream) -> str | None:
    props = stream.properties
    return process_name(props.get("application.process.binary"), props.get("application.name"))


def holders(
    streams: Iterable[CaptureStream], sources: Iterable[CaptureSource], own_pid: int | None
) -> frozenset[str]:
    """The processes that really record from a microphone now (normalised names)."""
    by_index = {s.index: s for s in sources}
    names: set[str] = set()
    for stream in streams:
        source = by_index.get(stream.source) if stream.source is not None else None
        if stream.corked or source is None or source.monitor or is_peak_meter(stream):
            continue
        pid = stream.properties.get("application.process.id")
        if own_pid is not None and pid is not None and pid.strip() == str(own_pid):
            continue
        name = stream_process(stream)
        if name:
            names.add(name)
    return frozenset(names)


def _index(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return None if number in (PA_INVALID_INDEX, -1) else number


def _strings(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping):
        return {}
    return {str(k): str(v) for k, v in value.items()}


# -- pactl -f json ---------------------------------------------------------------------------


def streams_from_pactl(data: Any) -> list[CaptureStream]:
    """`pactl -f json list source-outputs`, parsed."""
    streams = []
    for item in data if isinstance(data, list) else []:
        if not isinstance(item, Mapping):
            continue
        streams.append(
            CaptureStream(
                index=_index(item.get("index")) or 0,
                source=_index(item.get("source")),
                corked=bool(item.get("corked")),
                properties=_strings(item.get("properties")),
                resample_method=str(item.get("resample_method") or ""),
            )
        )
    return streams


def sources_from_pactl(data: Any) -> list[CaptureSource]:
    """`pactl -f json list sources`, parsed (pactl names the monitored sink
    `monitor_source` in some versions, `monitor_of_sink` in others)."""
    sources = []
    for item in data if isinstance(data, list) else []:
        if not isinstance(item, Mapping) or _index(item.get("index")) is None:
            continue
        props = _strings(item.get("properties"))
        monitored = item.get("monitor_of_sink", item.get("monitor_source"))
        monitor = (bool(monitored) and monitored != "n/a") or props.get("device.class") == "monitor"
        sources.append(CaptureSource(int(item["index"]), str(item.get("name", "")), monitor))
    return sources


# -- pulsectl (libpulse) ---------------------------------------------------------------------


def streams_from_pulsectl(items: Iterable[Any]) -> list[CaptureStream]:
    return [
        CaptureStream(
            index=int(item.index),
            source=_index(getattr(item, "source", None)),
            corked=bool(getattr(item, "corked", False)),
            properties=_strings(getattr(item, "proplist", {})),
            resample_method=str(getattr(item, "resample_method", "") or ""),
        )
        for item in items
    ]


def sources_from_pulsectl(items: Iterable[Any]) -> list[CaptureSource]:
    sources = []
    for item in items:
        props = _strings(getattr(item, "proplist", {}))
        monitor_of = _index(getattr(item, "monitor_of_sink", None))
        monitor = monitor_of is not None or props.get("device.class") == "monitor"
        sources.append(CaptureSource(int(item.index), str(item.name), monitor))
    return sources


class PulseDetector:
    """libpulse through pulsectl: snapshots on one connection, events on another.

    pulsectl is synchronous and not thread-safe, so snapshots run on worker threads
    under a lock, and a dedicated thread listens for source / source-output events
    and only sets an asyncio event (a wake-up).
    """

    name = "pulseaudio"

    def __init__(self, own_pid: int | None, loop: asyncio.AbstractEventLoop) -> None:
        # pulsectl has no type information; it is used through `Any`.
        self._pulsectl: Any = importlib.import_module("pulsectl")
        self.own_pid = own_pid
        self._loop = loop
        self._lock = threading.Lock()
        self._pulse: Any = None
        self._changed = asyncio.Event()
        self._stop = threading.Event()
        self._listener = threading.Thread(target=self._listen, name="pulse-events", daemon=True)
        self._outage_logged = False

    @classmethod
    async def start(cls, own_pid: int | None) -> PulseDetector:
        detector = cls(own_pid, asyncio.get_running_loop())
        await asyncio.to_thread(detector._connect)
        detector._listener.start()
        return detector

    def _connect(self) -> None:
        with self._lock:
            if self._pulse is None:
                pulse = self._pulsectl.Pulse("presencebridge-agent", connect=False)
                try:
                    pulse.connect()  # with a timeout pulsectl always waits all of it
                except Exception:
                    pulse.close()
                    raise
                self._pulse = pulse

    def _drop(self) -> None:
        with self._lock:
            if self._pulse is not None:
                with contextlib.suppress(Exception):
                    self._pulse.close()
                self._pulse = None

    def _read(self) -> frozenset[str]:
        for attempt in (1, 2):
            try:
                self._connect()
                with self._lock:
                    outputs = self._pulse.source_output_list()
                    sources = self._pulse.source_list()
                found = holders(
                    streams_from_pulsectl(outputs), sources_from_pulsectl(sources), self.own_pid
                )
                if self._outage_logged:
                    log.info("the sound server is back")
                    self._outage_logged = False
                return found
            except Exception as error:  # PulseError, PulseDisconnected, socket errors
                self._drop()
                if attempt == 2:
                    if not self._outage_logged:
                        log.warning("cannot read capture streams from the sound server: %s", error)
                        self._outage_logged = True
                    # Without a sound server nothing can record through it.
                    return frozenset()
        return frozenset()

    async def snapshot(self) -> Snapshot:
        self._changed.clear()  # an event from now on asks for the next snapshot
        return Snapshot(await asyncio.to_thread(self._read))

    async def wait_for_change(self, within: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), max(0.0, within))

    def _wake(self) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting
            self._loop.call_soon_threadsafe(self._changed.set)

    def _listen(self) -> None:
        while not self._stop.is_set():
            pulse = None
            try:
                pulse = self._pulsectl.Pulse("presencebridge-agent-events", connect=False)
                pulse.connect()  # with a timeout pulsectl always waits all of it
                pulse.event_mask_set("source", "source_output")
                pulse.event_callback_set(lambda _event: self._wake())
                self._wake()  # (re)connected: whatever happened meanwhile needs a look
                while not self._stop.is_set():
                    pulse.event_listen(timeout=0.5)
            except Exception as error:
                log.debug("sound server events interrupted: %s", error)
                self._wake()
                self._stop.wait(1.0)
            finally:
                if pulse is not None:
                    with contextlib.suppress(Exception):
                        pulse.close()

    async def close(self) -> None:
        self._stop.set()
        if self._listener.is_alive():
            await asyncio.to_thread(self._listener.join, 5)
        self._drop()


class PactlDetector:
    """The fallback: `pactl -f json` snapshots, `pactl subscribe` as the wake-up."""

    name = "pactl"

    def __init__(self, own_pid: int | None, pactl: str = "pactl") -> None:
        self.own_pid = own_pid
        self.pactl = pactl
        self._changed = asyncio.Event()
        self._subscriber: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None
        self._subscribed_at = -1e9

    @staticmethod
    def _env() -> dict[str, str]:
        # Localised number formats have broken pactl's JSON before: always the C locale.
        return {**os.environ, "LC_ALL": "C"}

    async def _pactl_json(self, *args: str) -> Any:
        process = await asyncio.create_subprocess_exec(
            self.pactl,
            "-f",
            "json",
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self._env(),
        )
        try:
            out, err = await asyncio.wait_for(process.communicate(), PACTL_TIMEOUT)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise RuntimeError(f"pactl {' '.join(args)} did not answer") from None
        if process.returncode != 0:
            why = "; ".join(err.decode(errors="replace").split("\n")).strip("; ")
            raise RuntimeError(f"pactl {' '.join(args)}: {why}")
        return json.loads(out.decode() or "[]")

    async def snapshot(self) -> Snapshot:
        self._changed.clear()
        streams = streams_from_pactl(await self._pactl_json("list", "source-outputs"))
        if not streams:
            return Snapshot()
        sources = sources_from_pactl(await self._pactl_json("list", "sources"))
        return Snapshot(holders(streams, sources, self.own_pid))

    async def _subscribe(self) -> None:
        process = await asyncio.create_subprocess_exec(
            self.pactl,
            "subscribe",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            env=self._env(),
        )
        self._subscriber = process
        assert process.stdout is not None
        while line := await process.stdout.readline():
            # "Event 'new' on source-output #7", "Event 'change' on source #1"
            if b" on source" in line:
                self._changed.set()
        await process.wait()
        self._changed.set()  # the subscription ended: look again, then resubscribe

    async def wait_for_change(self, within: float) -> None:
        now = asyncio.get_running_loop().time()
        if (self._reader is None or self._reader.done()) and now - self._subscribed_at > 2.0:
            # A subscription that keeps dying is retried at most every 2 s.
            self._subscribed_at = now
            self._reader = asyncio.create_task(self._subscribe())
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), max(0.0, within))

    async def close(self) -> None:
        if self._subscriber is not None and self._subscriber.returncode is None:
            self._subscriber.kill()
            await self._subscriber.wait()
        if self._reader is not None:
            self._reader.cancel()
            await asyncio.gather(self._reader, return_exceptions=True)
