"""An AMI client over TCP (asyncio): login, actions matched to responses by ActionID,
events in order, keepalive, reconnect.

One connection at a time, kept up for as long as the client runs: connect, read the
banner, log in (MD5 challenge: the secret never crosses the wire), call `on_login`
(the owner reads the state it needs), then follow events and `Ping` every
`keepalive_seconds`. A `Ping` not answered in `action_timeout_seconds` means the link
is dead even when TCP has not noticed (a peer gone without a FIN, a firewall that
dropped the flow); the connection is closed and made again. Between attempts the
client waits with exponential backoff and jitter. Nothing here logs the secret or
puts it in `last_error`.

Events are handed to `on_event` one at a time from their own task, so an event
handler may itself send actions and wait for their responses without blocking the
reader that delivers them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import logging
import random
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from presencebridge.adapters.asterisk.protocol import (
    BANNER_PREFIX,
    AmiMessage,
    AmiParser,
    encode_action,
)
from presencebridge.adapters.asterisk.settings import AmiConnection

log = logging.getLogger(__name__)

EventHandler = Callable[[AmiMessage], Awaitable[None]]
LoginHandler = Callable[[], Awaitable[None]]

# Events waiting for their handler: beyond this the reader stops reading, and TCP
# slows Asterisk down instead of the hub's memory growing.
EVENT_BACKLOG = 10_000


class AmiError(Exception):
    """An action got no answer (not connected, timed out, the link went down)."""


class LoginRefused(AmiError):
    """Asterisk refused the login (wrong user or secret, or a denied address)."""


@dataclass
class AmiCounts:
    logins: int = 0
    connection_failures: int = 0
    keepalive_failures: int = 0


class AmiClient:
    def __init__(
        self,
        settings: AmiConnection,
        *,
        events: str,
        on_login: LoginHandler | None = None,
        on_event: EventHandler | None = None,
        while_up: LoginHandler | None = None,
        on_malformed: Callable[[], None] | None = None,
        dice: random.Random | None = None,
    ) -> None:
        """`events`: the Login's `Events` value, `off` or a list of classes (`call`).
        `on_login` runs after each login, `while_up` after it for as long as the
        session lasts (both are cancelled when it ends, and end it when they raise);
        `on_malformed` is called for each message the parser had to drop."""
        self.settings = settings
        self.events = events
        self.on_login = on_login
        self.on_event = on_event
        self.while_up = while_up
        self.on_malformed = on_malformed
        self.dice = dice or random.Random()  # noqa: S311 - jitter, not a secret
        self.counts = AmiCounts()
        self.parser = AmiParser()
        self.last_error: str | None = None
        self._logged_in = asyncio.Event()
        self._writer: asyncio.StreamWriter | None = None
        self._pending: dict[str, asyncio.Future[AmiMessage]] = {}
        self._ids = itertools.count(1)
        self._task: asyncio.Task[None] | None = None
        self._banner_seen = asyncio.Event()
        self._was_up = False

    @property
    def logged_in(self) -> bool:
        return self._logged_in.is_set()

    @property
    def malformed(self) -> int:
        return self.parser.malformed

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"ami-{self.settings.name}")

    async def stop(self) -> None:
        if self._task is not None:
            if self.logged_in:
                with contextlib.suppress(AmiError, ConnectionError, TimeoutError):
                    await asyncio.wait_for(self.action("Logoff"), 1.0)
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def wait_logged_in(self, seconds: float) -> bool:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._logged_in.wait(), seconds)
        return self.logged_in

    def new_action_id(self) -> str:
        return f"pb-{next(self._ids)}"

    async def action(
        self, name: str, fields: dict[str, str] | None = None, action_id: str | None = None
    ) -> AmiMessage:
        """Send an action and return its response (`Response: Error` included); raises
        `AmiError` when there is no connection or no response in time."""
        writer = self._writer
        if writer is None or writer.is_closing():
            raise AmiError(f"not connected to {self.settings.address}")
        action_id = action_id or self.new_action_id()
        answer: asyncio.Future[AmiMessage] = asyncio.get_running_loop().create_future()
        self._pending[action_id] = answer
        try:
            writer.write(encode_action(name, action_id, fields or {}))
            await writer.drain()
            return await asyncio.wait_for(answer, self.settings.action_timeout_seconds)
        except TimeoutError:
            raise AmiError(f"{name}: no response from {self.settings.address}") from None
        except ConnectionError as error:
            raise AmiError(f"{name}: connection lost: {error}") from None
        finally:
            self._pending.pop(action_id, None)

    # -- the connection's life -----------------------------------------------------------

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                await self._session()
            except LoginRefused as error:
                self._failed(f"login refused at {self.settings.address}: {error}")
            except (OSError, AmiError, TimeoutError, EOFError) as error:
                self._failed(f"{self.settings.address}: {_describe(error)}")
            except Exception as error:
                # A fault of ours (or of the hub behind an event handler): log it with its
                # trace, and carry on as after a lost link, which reads everything again.
                log.exception("asterisk-ami %s: session failed", self.settings.name)
                self._failed(f"{self.settings.address}: unexpected {type(error).__name__}")
            failures = 0 if self._was_up else failures + 1
            self._was_up = False
            await asyncio.sleep(self._backoff(failures))

    def _failed(self, detail: str) -> None:
        self.counts.connection_failures += 1
        if detail != self.last_error:
            log.warning("asterisk-ami %s: %s", self.settings.name, detail)
        self.last_error = detail

    def _backoff(self, failures: int) -> float:
        low, high = self.settings.reconnect_min_seconds, self.settings.reconnect_max_seconds
        ceiling: float = min(high, low * 2.0 ** min(failures, 30))
        return max(low, ceiling) * self.dice.uniform(0.5, 1.0)

    async def _session(self) -> None:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                self.settings.host, self.settings.port, ssl=self._tls(), limit=1 << 20
            ),
            self.settings.connect_timeout_seconds,
        )
        self.parser = _carry(self.parser)
        self._banner_seen.clear()
        events: asyncio.Queue[AmiMessage] = asyncio.Queue(EVENT_BACKLOG)
        self._writer = writer
        tasks = [asyncio.create_task(self._read(reader, events))]
        try:
            await self._banner(tasks[0])
            await self._login()
            tasks.append(asyncio.create_task(self._deliver(events)))
            tasks.append(asyncio.create_task(self._keepalive()))
            tasks.append(asyncio.create_task(self._up()))
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # raises what ended it
            raise AmiError("the connection was closed")
        finally:
            self._logged_in.clear()
            self._writer = None
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for answer in self._pending.values():
                if not answer.done():
                    answer.set_exception(AmiError("connection lost"))
            writer.close()

    def _tls(self) -> ssl.SSLContext | None:
        if not self.settings.tls:
            return None
        ca = None if self.settings.ca_file is None else str(self.settings.ca_file)
        return ssl.create_default_context(cafile=ca)

    async def _banner(self, reader_task: asyncio.Task[None]) -> None:
        """The server's first line says it is AMI; anything else is not worth a login."""
        seen = asyncio.create_task(self._banner_seen.wait())
        try:
            await asyncio.wait(
                {reader_task, seen},
                timeout=self.settings.connect_timeout_seconds,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            seen.cancel()
        if self.parser.banner is not None:
            return
        if reader_task.done():
            reader_task.result()
            raise AmiError("closed before the AMI banner")
        raise AmiError(f"no '{BANNER_PREFIX}' banner: is this an AMI port?")

    async def _login(self) -> None:
        challenge = await self.action("Challenge", {"AuthType": "MD5"})
        secret = self.settings.secret.get_secret_value()
        if challenge.succeeded and challenge.get("Challenge"):
            key = hashlib.md5(  # noqa: S324 - AMI's challenge scheme, not our choice
                (challenge["Challenge"] + secret).encode()
            ).hexdigest()
            fields = {"AuthType": "MD5", "Key": key}
        else:  # a server without the challenge action: the secret in the clear
            fields = {"Secret": secret}
        fields = {"Username": self.settings.username, **fields, "Events": self.events}
        answer = await self.action("Login", fields)
        if not answer.succeeded:
            raise LoginRefused(answer.get("Message") or "no reason given")
        self.counts.logins += 1
        self._was_up = True
        self.last_error = None
        self._logged_in.set()
        log.info("asterisk-ami %s: logged in at %s", self.settings.name, self.settings.address)

    async def _up(self) -> None:
        if self.on_login is not None:
            await self.on_login()
        if self.while_up is not None:
            await self.while_up()
        await asyncio.Event().wait()  # the session lasts until something else ends it

    async def _read(self, reader: asyncio.StreamReader, events: asyncio.Queue[AmiMessage]) -> None:
        while data := await reader.read(65536):
            before = self.parser.malformed
            messages = self.parser.feed(data)
            if self.on_malformed is not None:
                for _ in range(self.parser.malformed - before):
                    self.on_malformed()
            if self.parser.banner is not None:
                self._banner_seen.set()
            for message in messages:
                if message.response is not None:
                    answer = self._pending.get(message.action_id or "")
                    if answer is not None and not answer.done():
                        answer.set_result(message)
                else:
                    await events.put(message)

    async def _deliver(self, events: asyncio.Queue[AmiMessage]) -> None:
        while True:
            message = await events.get()
            if self.on_event is not None:
                await self.on_event(message)

    async def _keepalive(self) -> None:
        while True:
            await asyncio.sleep(self.settings.keepalive_seconds)
            try:
                await self.action("Ping")
            except AmiError:
                self.counts.keepalive_failures += 1
                raise AmiError("no answer to Ping: the link is dead") from None


def _carry(old: AmiParser) -> AmiParser:
    """A fresh parser for a new connection that keeps the running malformed count."""
    fresh = AmiParser()
    fresh.malformed = old.malformed
    return fresh


def _describe(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return "timed out"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    return str(error) or type(error).__name__
