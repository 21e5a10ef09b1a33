"""One XMPP stream kept up: connect, wait for the session, reconnect with backoff.

slixmpp retries a failed TCP connect by itself but does nothing once an established
stream ends (the server restarted), and it keeps its roster and plugin state on the
object. So each attempt here gets a fresh slixmpp object and the loop decides when to
try again: at once after a stream that was up (the server came back), then doubling
from one second up to the configured maximum, with jitter so a thousand account
streams do not all knock at the same moment.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

from slixmpp.basexmpp import BaseXMPP

from presencebridge import metrics

log = logging.getLogger(__name__)

# slixmpp logs every stanza sent and received at DEBUG, the SASL exchange and the
# component handshake among them: never let that reach the hub's log, whatever its level.
# Its INFO lines (one per login and connection loss) repeat what the links log anyway.
logging.getLogger("slixmpp").setLevel(logging.WARNING)

# A session that lasted this long counts as good: the next attempt is at once. A shorter
# one (a server that accepts and then drops the stream, another connection taking the
# component's domain) backs off like a failure instead of spinning.
GOOD_SESSION_SECONDS = 10.0
# A TCP connect plus stream negotiation (TLS, SASL, bind) takes well under a second on a
# LAN; this bounds a server that accepts the connection and then says nothing.
SESSION_TIMEOUT = 30.0


def describe_error(condition: str, text: str) -> str:
    """A stream error as an admin reads it, with a hint for the usual causes."""
    hints = {
        "not-authorized": "wrong secret or password?",
        "host-unknown": "the server does not know this domain",
        "conflict": "another connection holds this address",
        "system-shutdown": "the server is shutting down",
    }
    hint = hints.get(condition, text or "")
    return f"stream error {condition}" + (f" ({hint})" if hint else "")


class Link:
    """Keeps one stream up. `make` builds a fresh slixmpp object for each attempt,
    `on_up` is called with it once its session started; `gate` (if any) is awaited
    before each attempt (a login rate limit shared by many links)."""

    def __init__(
        self,
        name: str,
        what: str,
        make: Callable[[], BaseXMPP],
        on_up: Callable[[BaseXMPP], None],
        address: tuple[str, int],
        backoff_max: float,
        gate: Callable[[], Awaitable[None]] | None = None,
        level: int = logging.WARNING,
    ) -> None:
        self.name = name  # the outlet's, for the metrics
        self.what = what  # for the log: "component presence.example.com", a JID
        self.make = make
        self.on_up = on_up
        self.address = address
        self.backoff_max = backoff_max
        self.gate = gate
        self.xmpp: BaseXMPP | None = None  # the object whose session is up, if any
        self.detail = "connecting"
        # How loss and failure are logged: an outlet with a thousand streams logs them
        # at INFO and sums them up in its health instead.
        self.level = level
        self._failing: str | None = None  # the reason last logged, while failing
        self.sessions = 0  # sessions started; every one after the first is a reconnect
        self.failures = 0  # attempts that did not reach a session
        self.refused = False  # the last attempt ended in a refused authentication
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def up(self) -> bool:
        return self.xmpp is not None

    @property
    def reconnects(self) -> int:
        return max(0, self.sessions - 1)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"xmpp-{self.what}")

    async def close(self, before: Callable[[BaseXMPP], None] | None = None) -> None:
        """Stop reconnecting; `before` may send last stanzas on the live stream, which
        is then closed the polite way (so the server hears them before the end)."""
        self._closing = True
        xmpp = self.xmpp
        if xmpp is not None:
            if before is not None:
                before(xmpp)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(xmpp.disconnect(wait=2.0), 5.0)
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.xmpp = None
        self.detail = "stopped"

    async def _run(self) -> None:
        delay = 1.0
        while not self._closing:
            if self.gate is not None:
                await self.gate()
            began = asyncio.get_running_loop().time()
            try:
                was_up = await self._attempt()
            except Exception:
                # A bug of ours or slixmpp's must not end the link for good: log, back off.
                log.exception("xmpp %s: the connection attempt failed", self.what)
                self.detail = "internal error (see the log)"
                was_up = False
            if self._closing:
                return
            lasted = asyncio.get_running_loop().time() - began
            if was_up and lasted >= GOOD_SESSION_SECONDS:
                delay = 1.0
                pause = 0.0  # the server went away after a good session: try at once
            else:
                self.failures += 1
                pause, delay = delay, min(delay * 2, self.backoff_max)
            pause *= random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not a secret
            if pause:
                self.detail += f"; next attempt in {pause:.0f} s"
                await asyncio.sleep(pause)

    async def _attempt(self) -> bool:
        """One stream from connect to its end; True when its session had started."""
        loop = asyncio.get_running_loop()
        started: asyncio.Future[None] = loop.create_future()
        ended: asyncio.Future[str] = loop.create_future()
        xmpp = self.make()
        errors: list[str] = []

        def finish(reason: Any) -> None:
            if not ended.done():
                ended.set_result(errors[-1] if errors else str(reason or "connection closed"))

        def on_error(error: Any) -> None:
            errors.append(describe_error(str(error["condition"]), str(error["text"])))

        def refused(_: Any) -> None:
            errors.append(
                "login failed (wrong password, or no SASL mechanism allowed without TLS?)"
            )
            self.refused = True

        def begin(_: Any) -> None:
            if not started.done():
                started.set_result(None)

        xmpp.add_event_handler("session_start", begin)
        xmpp.add_event_handler("disconnected", finish)
        xmpp.add_event_handler("connection_failed", lambda e: finish(f"cannot connect: {e}"))
        xmpp.add_event_handler("stream_error", on_error)
        xmpp.add_event_handler("failed_all_auth", refused)
        host, port = self.address
        self.detail = f"connecting to {host}:{port}"
        xmpp.connect(host=host, port=port)
        try:
            return await self._session(xmpp, started, ended)
        finally:
            self.xmpp = None
            xmpp.cancel_connection_attempt()  # no retry loop of slixmpp's own
            xmpp.abort()
            # The object's send loop outlives the connection (slixmpp stops it only when
            # the object is collected): one stray task per reconnect otherwise.
            sender = xmpp._run_out_filters
            if sender is not None:
                sender.cancel()
                with contextlib.suppress(BaseException):
                    await sender

    async def _session(
        self, xmpp: BaseXMPP, started: asyncio.Future[None], ended: asyncio.Future[str]
    ) -> bool:
        host, port = self.address
        pending: set[asyncio.Future[Any]] = {started, ended}
        await asyncio.wait(pending, timeout=SESSION_TIMEOUT, return_when="FIRST_COMPLETED")
        if not started.done():
            reason = ended.result() if ended.done() else "no session within 30 s"
            self.detail = f"not connected to {host}:{port}: {reason}"
            if reason != self._failing:  # once per reason, not at every attempt
                self._failing = reason
                log.log(self.level, "xmpp %s: %s", self.what, self.detail)
            return False
        self.sessions += 1
        self.refused = False
        self.xmpp = xmpp
        self.detail = f"connected to {host}:{port}"
        self._failing = None
        if self.sessions > 1:
            metrics.CONNECTOR_RECONNECTS.labels(self.name).inc()
            log.info("xmpp %s: reconnected to %s:%s", self.what, host, port)
        try:
            self.on_up(xmpp)
        except Exception:
            log.exception("xmpp %s: sending the state after the session started", self.what)
        reason = await ended
        self.xmpp = None
        if not self._closing:
            self.detail = f"disconnected from {host}:{port}: {reason}"
            log.log(self.level, "xmpp %s: %s", self.what, self.detail)
        return True
