"""The SIP user agent the connectors share: non-INVITE client transactions with the
RFC 3261 §17.1.2 timers, digest answers to 401/407, and the server side for the
requests a server sends us (NOTIFY, OPTIONS), with retransmissions answered from a
cache (§17.2.2).

Only what the connectors need is here: no INVITE transactions, no forking, no DNS
SRV (the server is a host and port). Requests are built from a `Dialog`, in-dialog
or not (an out-of-dialog request is one with a fresh `Dialog`).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

from sipmessage import URI, Request, Response

from presencebridge.adapters.sip import digest
from presencebridge.adapters.sip.message import MAGIC, Dialog, encode, token
from presencebridge.adapters.sip.settings import SipSettings
from presencebridge.adapters.sip.transport import (
    Reply,
    StreamTransport,
    Transport,
    UdpTransport,
)

log = logging.getLogger(__name__)

T1 = 0.5  # RFC 3261 §17.1.1.1: round-trip estimate
T2 = 4.0  # largest retransmission interval of a non-INVITE request
TIMER_F = 64 * T1  # a non-INVITE transaction gives up after this long
TIMER_J = 64 * T1  # how long an answered request's response is kept for retransmissions

TransportName = Literal["udp", "tcp", "tls"]
RequestHandler = Callable[[Request], Response]


class TransactionError(Exception):
    """No final response: timeout (Timer F) or the transport failed."""


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str = field(repr=False)


@dataclass
class _Auth:
    """The last challenge answered, reused for later requests (no 401 round trip for
    each of 10,000 SUBSCRIBEs) with a growing nonce count."""

    header: str
    challenge: digest.Challenge
    count: int = 0


class UserAgent:
    def __init__(
        self,
        server: tuple[str, int],
        *,
        transport: TransportName = "udp",
        user: str = "presencebridge",
        domain: str,
        credentials: Credentials | None = None,
        local_host: str = "",
        local_port: int = 0,
        tls: ssl.SSLContext | None = None,
        user_agent: str = "presencebridge",
        on_request: RequestHandler | None = None,
    ) -> None:
        self.user = user
        self.domain = domain
        self.credentials = credentials
        self.user_agent = user_agent
        self.on_request = on_request
        self._local = (local_host, local_port)
        self.transport: Transport
        if transport == "udp":
            self.transport = UdpTransport(server, self._received)
        else:
            context = (tls or ssl.create_default_context()) if transport == "tls" else None
            self.transport = StreamTransport(server, self._received, context)
        self._pending: dict[tuple[str, str], asyncio.Future[Response]] = {}
        self._provisional: set[tuple[str, str]] = set()
        self._answered: dict[tuple[str, str, int], bytes] = {}
        self._auth: _Auth | None = None
        self.stray_responses = 0
        self.failed_messages = 0

    async def start(self) -> None:
        await self.transport.open(*self._local)

    async def close(self) -> None:
        await self.transport.close()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(TransactionError("user agent closed"))

    @property
    def local_uri(self) -> str:
        return f"sip:{self.user}@{self.domain}"

    @property
    def contact(self) -> str:
        host, port = self.transport.host, self.transport.port
        return f"<sip:{self.user}@{host}:{port}{self.transport.contact_params()}>"

    @property
    def auth_algorithm(self) -> str | None:
        """The digest algorithm of the last challenge answered (None: none yet)."""
        return None if self._auth is None else self._auth.challenge.algorithm

    # -- client side --------------------------------------------------------------------

    def build(
        self,
        method: str,
        dialog: Dialog,
        headers: Sequence[tuple[str, str]] = (),
        body: bytes = b"",
        content_type: str | None = None,
    ) -> Request:
        """A request in `dialog` with the next CSeq; loose routing (RFC 3261 §12.2.1.1:
        every router since RFC 3261 sets `;lr`)."""
        target = dialog.remote_target or dialog.remote_uri
        request = Request(method, URI.parse(target), body)
        request.headers.add("Max-Forwards", "70")
        request.headers.add("From", f"<{dialog.local_uri}>;tag={dialog.local_tag}")
        remote_tag = f";tag={dialog.remote_tag}" if dialog.remote_tag else ""
        request.headers.add("To", f"<{dialog.remote_uri}>{remote_tag}")
        request.headers.add("Call-ID", dialog.call_id)
        request.headers.add("CSeq", f"{dialog.next_seq()} {method}")
        for route in dialog.route_set:
            request.headers.add("Route", route)
        request.headers.add("Contact", self.contact)
        request.headers.add("User-Agent", self.user_agent)
        for name, value in headers:
            request.headers.add(name, value)
        if content_type is not None:
            request.headers.add("Content-Type", content_type)
        return request

    def new_dialog(self, remote_uri: str) -> Dialog:
        return Dialog(
            call_id=f"{token(12)}@{self.transport.host or 'presencebridge'}",
            local_uri=self.local_uri,
            local_tag=token(6),
            remote_uri=remote_uri,
        )

    async def send(self, request: Request, dialog: Dialog, give_up: float = TIMER_F) -> Response:
        """One request's final response, answering a digest challenge (once per fresh
        nonce) with the next CSeq of `dialog`; `TransactionError` when none comes."""
        self._authorize(request)
        response = await self._transact(request, give_up)
        for _ in range(2):  # a stale nonce may be answered once more
            if response.code not in (401, 407) or self.credentials is None:
                return response
            header = "WWW-Authenticate" if response.code == 401 else "Proxy-Authenticate"
            try:
                challenge = digest.pick(response.headers.getlist(header))
            except digest.DigestError as error:
                log.warning("SIP: cannot answer the challenge of %s: %s", request.method, error)
                return response
            if self._auth is not None and self._auth.challenge == challenge:
                return response  # our answer to this very nonce was refused: wrong password
            self._auth = _Auth(header, challenge)
            request.headers.set("CSeq", f"{dialog.next_seq()} {request.method}")
            self._authorize(request)
            response = await self._transact(request, give_up)
        return response

    def _authorize(self, request: Request) -> None:
        if self._auth is None or self.credentials is None:
            return
        self._auth.count += 1
        name = "Authorization" if self._auth.header == "WWW-Authenticate" else "Proxy-Authorization"
        request.headers.set(
            name,
            digest.answer(
                self._auth.challenge,
                method=request.method,
                uri=str(request.uri),
                username=self.credentials.username,
                password=self.credentials.password,
                nonce_count=self._auth.count,
            ),
        )

    async def _transact(self, request: Request, give_up: float) -> Response:
        loop = asyncio.get_running_loop()
        branch = MAGIC + token(8)
        transport = self.transport
        via = f"SIP/2.0/{transport.name} {transport.host}:{transport.port}"
        request.headers.set("Via", f"{via};branch={branch}{transport.via_params()}")
        data = encode(request)
        key = (branch, request.method)
        future: asyncio.Future[Response] = loop.create_future()
        self._pending[key] = future
        deadline = loop.time() + give_up
        interval = T1
        try:
            await self._send(data)
            while True:
                left = deadline - loop.time()
                if left <= 0:
                    raise TransactionError(f"{request.method}: no final response in {give_up} s")
                wait = left if transport.reliable else min(interval, left)
                try:
                    return await asyncio.wait_for(asyncio.shield(future), wait)
                except TimeoutError:
                    if not transport.reliable and loop.time() < deadline:
                        await self._send(data)  # Timer E: T1, 2T1, … up to T2
                        interval = T2 if key in self._provisional else min(interval * 2, T2)
        finally:
            self._pending.pop(key, None)
            self._provisional.discard(key)

    async def _send(self, data: bytes) -> None:
        try:
            await self.transport.send(data)
        except OSError as error:
            raise TransactionError(str(error)) from None

    # -- server side --------------------------------------------------------------------

    def _received(self, message: Request | Response, reply: Reply) -> None:
        # A last guard: whatever a peer sends, a bug in handling one message must not
        # stop the transport (a TCP reader would die with it).
        try:
            if isinstance(message, Response):
                self._response(message)
            else:
                self._request(message, reply)
        except Exception:
            self.failed_messages += 1
            log.exception("SIP: a message could not be handled")

    def _response(self, response: Response) -> None:
        via = response.via[0]
        key = (via.parameters.get("branch") or "", response.cseq.method)
        future = self._pending.get(key)
        if future is None or future.done():
            self.stray_responses += 1
        elif response.code < 200:
            self._provisional.add(key)
        else:
            future.set_result(response)

    def _request(self, request: Request, reply: Reply) -> None:
        if request.method == "ACK":
            return
        branch = request.via[0].parameters.get("branch") or ""
        key = (branch, request.method, request.cseq.sequence)
        cached = self._answered.get(key)
        if cached is not None:
            reply(cached)  # a retransmission (RFC 3261 §17.2.2)
            return
        if request.method == "OPTIONS" or self.on_request is None:
            code = 200 if request.method == "OPTIONS" else 405
            response = self.response(request, code, "OK" if code == 200 else "Not Allowed")
        else:
            response = self.on_request(request)
        data = encode(response)
        self._answered[key] = data
        asyncio.get_running_loop().call_later(TIMER_J, self._answered.pop, key, None)
        reply(data)

    def response(self, request: Request, code: int, reason: str) -> Response:
        """A response to `request` (RFC 3261 §8.2.6.2: Via, From, To, Call-ID, CSeq)."""
        response = Response(code, reason)
        for name in ("Via", "From", "To", "Call-ID", "CSeq"):
            for value in request.headers.getlist(name):
                response.headers.add(name, value)
        response.headers.add("User-Agent", self.user_agent)
        return response


class Liveness:
    """Whether the server answers: an OPTIONS every `every` seconds.

    The server counts as gone only after `MISSES` probes in a row went unanswered: one
    probe lost in a busy moment (a full event loop, a loaded PBX) must not make 10,000
    lines subscribe anew. When it answers again after that, `on_back` runs (it likely
    restarted and lost what it held)."""

    MISSES = 3

    def __init__(self, ua: UserAgent, every: float, target: str) -> None:
        self.ua = ua
        self.every = every
        self.target = target
        self.up = True
        self.misses = 0

    async def run(self, on_lost: Callable[[], None], on_back: Callable[[], None]) -> None:
        while True:
            await asyncio.sleep(self.every)
            dialog = self.ua.new_dialog(self.target)
            try:
                await self.ua.send(
                    self.ua.build("OPTIONS", dialog), dialog, max(2.0, min(self.every, 8.0))
                )
            except TransactionError:
                self.misses += 1
                if self.up and self.misses >= self.MISSES:
                    self.up = False
                    on_lost()
                continue
            self.misses = 0
            if not self.up:
                self.up = True
                on_back()


def agent_for(settings: SipSettings, on_request: RequestHandler | None = None) -> UserAgent:
    """The user agent of one connector's table: its server, transport, identity and
    (when a user name and secret are given) digest credentials."""
    credentials = None
    if settings.username and settings.secret is not None:
        credentials = Credentials(settings.username, settings.secret.get_secret_value())
    return UserAgent(
        settings.address,
        transport=settings.transport,
        user=settings.from_user,
        domain=settings.sip_domain,
        credentials=credentials,
        local_host=settings.local_host,
        local_port=settings.local_port,
        on_request=on_request,
    )
