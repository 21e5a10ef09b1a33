"""The agent program: one WebSocket to the hub, one microphone detector, optional Teams.

* **Connection**: `GET /api/v1/agent/stream` with the user's agent token; after
  every (re)connect it first says `hello` (the hub then reconciles what the sync
  created for the user, SPEC §3 rule 5). Lost connections are retried with a
  jittered exponential backoff (0.25 s doubling to 60 s; reset after a connection
  that held for a minute).
* **Microphone Sync**: woken by the detector's events (or its poll interval), the
  agent takes a full snapshot, feeds it to the core `Debouncer` and reports the
  debounced set of *whitelisted* holders whenever it changes — and once after each
  hello, so the hub can rebuild its view. While the group has Microphone Sync
  off, the detector is not even asked.
* **Teams**: in client-side mode (`teams.TeamsAgent`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import signal
import ssl
import sys
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus, WebSocketException

from presencebridge import __version__
from presencebridge.agent.detect import (
    DetectorUnavailable,
    MicrophoneDetector,
    create_detector,
    platform_name,
)
from presencebridge.agent.teams import TeamsAgent, TeamsConfig
from presencebridge.core.micsync import AGENT_PROCESSES, Debouncer, normalise

log = logging.getLogger(__name__)

SAFETY_POLL_SECONDS = 5.0  # a snapshot at least this often, events or not
BACKOFF_FIRST, BACKOFF_MAX = 0.25, 60.0
STABLE_CONNECTION_SECONDS = 60.0


def backoff_delay(attempt: int, rng: Callable[[], float] = random.random) -> float:
    """Jittered exponential backoff: half to all of 0.25 s * 2^attempt, at most 60 s."""
    ceiling = min(BACKOFF_MAX, BACKOFF_FIRST * 2.0 ** min(attempt, 16))
    return float(ceiling * (0.5 + 0.5 * rng()))


def stream_url(server: str) -> str:
    parts = urlsplit(server.rstrip("/"))
    scheme = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
    if scheme not in ("ws", "wss"):
        raise ValueError(f"--server must be an http(s) URL, not {server!r}")
    return urlunsplit((scheme, parts.netloc, parts.path + "/api/v1/agent/stream", "", ""))


def default_state_dir() -> Path:
    if sys.platform.startswith("win"):
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
        return base / "presencebridge" / "agent"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / "presencebridge-agent"
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return base / "presencebridge-agent"


@dataclass
class MicrophoneReporter:
    """What to report, from raw snapshots and the group's settings (pure; a clock is passed in).

    The debouncer sees every holder, whitelisted or not, so a program whitelisted while
    it already holds the microphone is reported at once; reports name only whitelisted
    programs, and nothing at all while Microphone Sync is off.
    """

    on_delay: timedelta = timedelta(seconds=2)
    off_delay: timedelta = timedelta(seconds=5)
    enabled: bool = False
    whitelist: frozenset[str] = frozenset()
    debouncer: Debouncer = field(init=False)

    def __post_init__(self) -> None:
        self.debouncer = Debouncer(self.on_delay, self.off_delay)

    def configure(self, enabled: bool, whitelist: Iterable[str]) -> None:
        if enabled != self.enabled:
            self.debouncer = Debouncer(self.on_delay, self.off_delay)  # a fresh start
        self.enabled = enabled
        self.whitelist = frozenset(normalise(n) for n in whitelist)

    def observe(self, processes: Iterable[str], now: datetime) -> None:
        if not self.enabled:
            return  # the microphone is not watched while the group has the feature off
        holders = {normalise(p) for p in processes} - AGENT_PROCESSES
        self.debouncer.observe(holders, now)

    def due(self, now: datetime) -> None:
        self.debouncer.due(now)

    def report(self) -> list[str]:
        if not self.enabled:
            return []
        return sorted(self.debouncer.reported & self.whitelist)

    def next_wakeup(self, now: datetime) -> datetime | None:
        return self.debouncer.next_wakeup(now)


@dataclass
class AgentOptions:
    server: str
    token: str
    state_dir: Path = field(default_factory=default_state_dir)
    on_delay: float = 2.0
    off_delay: float = 5.0
    ca_bundle: Path | None = None


def say(message: str) -> None:
    """Tell the user (stdout, not the log: the sign-in code must reach them)."""
    print(message, flush=True)


class Agent:
    def __init__(
        self,
        options: AgentOptions,
        detector_factory: Callable[[], Awaitable[MicrophoneDetector]] = create_detector,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.options = options
        self.detector_factory = detector_factory
        self.now = now
        self.url = stream_url(options.server)
        self.reporter = MicrophoneReporter(
            timedelta(seconds=options.on_delay), timedelta(seconds=options.off_delay)
        )
        self.settings: dict[str, Any] | None = None
        self._settings_changed = asyncio.Event()
        self._ws: ClientConnection | None = None
        self._ready = False  # settings received since the last hello
        self._sent_microphone: list[str] | None = None
        self._send_lock = asyncio.Lock()
        self._low_confidence = False
        self._told_reason: str | None = None
        self.connections = 0
        self.teams = TeamsAgent(options.state_dir, options.ca_bundle, self.send, say)

    # -- sending ------------------------------------------------------------------------------

    async def send(self, message: dict[str, Any]) -> None:
        ws = self._ws
        if ws is None:
            raise ConnectionError("not connected to the hub")
        async with self._send_lock:
            try:
                await ws.send(json.dumps(message))
            except WebSocketException as error:
                raise ConnectionError(str(error)) from error

    async def publish_microphone(self) -> None:
        if self._ws is None or not self._ready:
            return
        if not self.reporter.enabled:
            # Nothing is reported while the group has Microphone Sync off (the hub ends a
            # use itself when it is switched off); once on again, the current set is sent.
            self._sent_microphone = None
            return
        report = self.reporter.report()
        if report == self._sent_microphone:
            return
        message: dict[str, Any] = {"type": "microphone", "processes": report}
        if self._low_confidence and report:
            message["confidence"] = "low"
        with contextlib.suppress(ConnectionError):
            await self.send(message)
            self._sent_microphone = report
            if report:
                log.info("microphone held by: %s", ", ".join(report))
            else:
                log.info("microphone: no whitelisted program holds it")

    # -- the hub's messages -------------------------------------------------------------------

    async def handle(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == "settings":
            self.settings = message
            microphone = message.get("microphone") or {}
            self.reporter.configure(
                bool(microphone.get("enabled")), microphone.get("whitelist") or []
            )
            reason = microphone.get("reason") if microphone.get("enabled") else None
            if reason and reason != self._told_reason:
                log.warning("Microphone Sync does nothing for now: %s", reason)
            self._told_reason = reason
            self._ready = True
            self._settings_changed.set()
            await self.publish_microphone()
            await self.teams.configure(TeamsConfig.parse(message.get("teams")))
        elif kind == "teams_intent":
            self.teams.intent(message)
        elif kind == "presence":
            log.debug(
                "presence: %s (%s) %s",
                message.get("status"),
                message.get("profile"),
                message.get("text"),
            )
        elif kind == "error":
            log.warning("the hub refused a message: %s", message.get("detail"))

    # -- the loops ----------------------------------------------------------------------------

    async def run(self) -> None:
        detector: MicrophoneDetector | None = None
        try:
            detector = await self.detector_factory()
            log.info("microphone detector: %s", detector.name)
        except DetectorUnavailable as error:
            # The agent still cleans up at start and runs client-side Teams without it.
            log.error("Microphone Sync is unavailable on this computer: %s", error)
        loops = [self.connection_loop()]
        if detector is not None:
            loops.append(self.microphone_loop(detector))
        try:
            await asyncio.gather(*loops)
        finally:
            await self.teams.stop()
            if detector is not None:
                await detector.close()

    def _ssl(self) -> ssl.SSLContext | None:
        if not self.url.startswith("wss:"):
            return None
        context = ssl.create_default_context()
        if self.options.ca_bundle is not None:
            context.load_verify_locations(cafile=str(self.options.ca_bundle))
        return context

    async def connection_loop(self) -> None:
        attempt = 0
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                async with connect(
                    self.url,
                    additional_headers={"Authorization": f"Bearer {self.options.token}"},
                    ssl=self._ssl(),
                    open_timeout=10,
                    ping_interval=20,
                    ping_timeout=20,
                    max_size=2**20,
                ) as ws:
                    await self._session(ws)
            except InvalidStatus as error:
                status = error.response.status_code
                if status in (401, 403):
                    log.error(
                        "the hub refused the agent token (HTTP %s): ask for a new one", status
                    )
                else:
                    log.warning("the hub answered HTTP %s; retrying", status)
            except (OSError, TimeoutError, WebSocketException) as error:
                log.warning(
                    "connection to the hub lost or refused: %s", error or type(error).__name__
                )
            finally:
                self._ws = None
                self._ready = False
            if loop.time() - started > STABLE_CONNECTION_SECONDS:
                attempt = 0
            delay = backoff_delay(attempt)
            attempt += 1
            log.info("reconnecting in %.1f s", delay)
            await asyncio.sleep(delay)

    async def _session(self, ws: ClientConnection) -> None:
        self._ws = ws
        self._ready = False
        self._sent_microphone = None  # after each hello the current set is sent again
        self.connections += 1
        self.teams.connected()
        await self.send({"type": "hello", "version": __version__, "platform": platform_name()})
        log.info("connected to the hub at %s", self.options.server)
        async for raw in ws:
            try:
                message = json.loads(raw)
            except ValueError:
                log.warning("the hub sent something that is not JSON")
                continue
            if isinstance(message, dict):
                await self.handle(message)

    async def microphone_loop(self, detector: MicrophoneDetector) -> None:
        failures = 0
        while True:
            if not self.reporter.enabled:
                await self.publish_microphone()
                self._settings_changed.clear()
                if not self.reporter.enabled:
                    await self._settings_changed.wait()
                continue
            self._settings_changed.clear()
            try:
                snapshot = await detector.snapshot()
                failures = 0
            except Exception as error:
                failures += 1
                log.warning("the microphone detector failed: %s", error)
                await asyncio.sleep(min(30.0, float(failures)))
                continue
            now = self.now()
            self._low_confidence = snapshot.confidence == "low"
            self.reporter.observe(snapshot.processes, now)
            await self.publish_microphone()
            await self._wait(detector, now)

    async def _wait(self, detector: MicrophoneDetector, now: datetime) -> None:
        within = SAFETY_POLL_SECONDS
        wake = self.reporter.next_wakeup(now)
        if wake is not None:
            within = min(within, max(0.05, (wake - now).total_seconds() + 0.01))
        changed = asyncio.create_task(detector.wait_for_change(within))
        settings = asyncio.create_task(self._settings_changed.wait())
        try:
            await asyncio.wait({changed, settings}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (changed, settings):
                task.cancel()
            await asyncio.gather(changed, settings, return_exceptions=True)


def run_agent(options: AgentOptions) -> None:
    asyncio.run(_run_until_stopped(Agent(options)))


async def _run_until_stopped(agent: Agent) -> None:
    """Ctrl+C and SIGTERM (a logout, a service stop) end the agent through its own
    `finally`: what it set in Teams for its user (the work location) is cleared, which
    Python's default SIGTERM (an immediate exit) would skip."""
    main = asyncio.current_task()
    assert main is not None
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for number in signals:
        with contextlib.suppress(NotImplementedError):  # Windows: no loop signal handlers
            loop.add_signal_handler(number, main.cancel)
    try:
        await agent.run()
    except asyncio.CancelledError:
        log.info("stopped")
    finally:
        for number in signals:
            with contextlib.suppress(NotImplementedError):
                loop.remove_signal_handler(number)
