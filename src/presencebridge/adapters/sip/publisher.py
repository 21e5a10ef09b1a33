"""`kind = "sip-presence"`: each user's presence PUBLISHed to a SIP presence server
(RFC 3903), so desk phones, soft phones and BLF keys show it.

Per user two documents at `uri` (default `sip:<first extension>@<domain>`):

* `Event: presence`, PIDF with an RPID activity (`on-the-phone`, `busy`, `away`),
  the presence text as note, basic `closed` when offline (`core.publication.OUTWARD`);
* `Event: dialog`, dialog-info with one dialog `confirmed` while the user is in a call
  the PBX cannot see (Teams, a meeting), so BLF keys light; when it ends, `terminated`
  with a short lifetime, and the next call is a new document (see `_dialog`). A user
  without such a call has no dialog document: 10,000 idle users are 10,000 PUBLISHes
  at start, not 20,000.

One entity tag per user and event: a change modifies the document with
`SIP-If-Match` (a new PUBLISH without it would add a second document the server
aggregates with the first), a 412 starts over without it, a timer per document
refreshes it before it expires (at 70–85 % of the granted time, so 10,000 refreshes
spread out; with the body, see `_send`), and `Expires: 0` removes the presence
document when the user leaves the hub and for everyone on `stop()` (a dialog
document ends as `terminated` instead). A document whose content did not change
is not sent again, so a change is at most two PUBLISHes and usually one. A failure
raises `OutletUnavailable`: the hub retries with the newest state.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
from collections import Counter
from collections.abc import Callable, Coroutine, Hashable
from dataclasses import dataclass, field
from typing import Any, NoReturn

from sipmessage import Response

from presencebridge.adapters.sip.bodies import (
    DIALOG_INFO_TYPE,
    OWN_DIALOG_PREFIX,
    PIDF_TYPE,
    dialog_info,
    pidf,
)
from presencebridge.adapters.sip.message import spread, token
from presencebridge.adapters.sip.settings import PresenceSettings
from presencebridge.adapters.sip.ua import Liveness, TransactionError, agent_for
from presencebridge.core.ports import ConnectorHealth, OutletUnavailable, OutwardUser
from presencebridge.core.publication import DialogState, Publication

log = logging.getLogger(__name__)

KIND = "sip-presence"
CONTENT_TYPES = {"presence": PIDF_TYPE, "dialog": DIALOG_INFO_TYPE}
RETRY_SECONDS = 30.0  # a failed refresh is tried again after this long
# How long an ended hub call's `terminated` dialog stays at the server (then it expires
# by itself; watchers have seen it end).
ENDED_SECONDS = 60


@dataclass
class Document:
    """One publication at the server: a user's presence or dialog document."""

    user_id: str
    event: str
    uri: str
    etag: str | None = None
    shown: Hashable = None  # what the published body shows, to skip unchanged ones
    body: bytes = b""
    version: int = 0
    call: str = ""  # a dialog document's dialog id
    timer: asyncio.TimerHandle | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def _short(user_id: str) -> str:
    return hashlib.blake2b(user_id.encode(), digest_size=6).hexdigest()


class PresencePublisher:
    """A `core.ports.PresenceOutlet` for a SIP presence server."""

    kind = KIND

    def __init__(self, settings: PresenceSettings) -> None:
        self.settings = settings
        self.name = settings.name
        self.language = settings.language
        self.ua = agent_for(settings)
        self.documents: dict[tuple[str, str], Document] = {}
        self.counts: Counter[str] = Counter()
        self.failing: str | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        await self.ua.start()
        if self.settings.keepalive_seconds > 0:
            liveness = Liveness(
                self.ua, self.settings.keepalive_seconds, f"sip:{self.settings.sip_domain}"
            )
            self._spawn(liveness.run(self._server_lost, self._server_back))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        """Remove every document (`Expires: 0`), within a few seconds at most."""
        for document in self.documents.values():
            if document.timer is not None:
                document.timer.cancel()
        for task in list(self._tasks):
            task.cancel()
        gate = asyncio.Semaphore(64)

        async def remove(document: Document) -> None:
            async with gate:
                with contextlib.suppress(OutletUnavailable):
                    if document.event == "dialog":
                        await self._end_call(document)
                    else:
                        await self._remove(document)

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                asyncio.gather(*(remove(d) for d in list(self.documents.values()))), 5.0
            )
        await self.ua.close()

    def health(self) -> ConnectorHealth:
        users = len({d.user_id for d in self.documents.values() if d.etag})
        detail = f"{users:,} users published at {self.settings.server}"
        if self.failing is not None:
            detail = f"{self.failing}; {detail}"
        counts = {**self.counts, "documents": sum(1 for d in self.documents.values() if d.etag)}
        return ConnectorHealth(self.name, KIND, self.failing is None, detail, counts)

    # -- publishing ---------------------------------------------------------------------

    def uri_of(self, user: OutwardUser) -> str | None:
        if "{extension}" in self.settings.uri and not user.extensions:
            return None
        extension = user.extensions[0] if user.extensions else ""
        return self.settings.target(extension=extension, user_id=user.user_id)

    async def publish(self, user: OutwardUser) -> None:
        uri = self.uri_of(user)
        if user.publication is None or uri is None:
            dialog = self.documents.get((user.user_id, "dialog"))
            if dialog is not None:
                await self._end_call(dialog)
            document = self.documents.pop((user.user_id, "presence"), None)
            if document is not None:
                await self._remove(document)
            return
        await self._put(user.user_id, "presence", uri, *self._presence(user, uri))
        if self.settings.dialog:
            await self._dialog(user.user_id, uri, user.publication.outward.dialog)

    async def _dialog(self, user_id: str, uri: str, state: DialogState) -> None:
        """A hub call is a dialog document of its own, with a dialog id of its own; its
        end is published as `terminated` with a short lifetime and then forgotten.

        Why not one document modified for ever: Kamailio ignores every change to a
        dialog document once it showed `terminated` ("Trying to update an already
        terminated state"; the next SIP-If-Match then gets a 412), and removing a
        document with `Expires: 0` leaves its watchers with its last state, a lit key."""
        document = self.documents.get((user_id, "dialog"))
        if state is DialogState.CONFIRMED:
            same = document is not None and document.uri == uri and document.call
            call = document.call if same and document is not None else self._new_call(user_id)

            def render(version: int) -> bytes:
                return dialog_info(uri, version, call, "confirmed")

            await self._put(user_id, "dialog", uri, state, render)
            self.documents[(user_id, "dialog")].call = call
        elif document is not None:
            await self._end_call(document)

    def _new_call(self, user_id: str) -> str:
        return f"{OWN_DIALOG_PREFIX}{_short(user_id)}-{token(4)}"

    async def _end_call(self, document: Document) -> None:
        async with document.lock:
            if document.etag is not None:
                document.version += 1
                body = dialog_info(document.uri, document.version, document.call, "terminated")
                response = await self._publish(document, body, ENDED_SECONDS)
                if response.code == 412:
                    self.counts["restarted_after_412"] += 1
                    document.etag = None
                    response = await self._publish(document, body, ENDED_SECONDS)
                if not 200 <= response.code < 300:
                    self._failed(f"PUBLISH dialog for {document.uri} answered {response.code}")
                self.counts["published"] += 1
            if document.timer is not None:
                document.timer.cancel()
            document.etag = None
            if self.documents.get((document.user_id, "dialog")) is document:
                del self.documents[(document.user_id, "dialog")]

    def _presence(self, user: OutwardUser, uri: str) -> tuple[Hashable, Callable[[int], bytes]]:
        publication: Publication | None = user.publication
        assert publication is not None
        outward, note = publication.outward, publication.note
        shown = (outward.basic, outward.activity, note)
        tuple_id = f"pb{_short(user.user_id)}"
        return shown, lambda _: pidf(uri, outward.basic.value, outward.activity, note, tuple_id)

    async def _put(
        self, user_id: str, event: str, uri: str, shown: Hashable, render: Callable[[int], bytes]
    ) -> None:
        document = self.documents.get((user_id, event))
        if document is not None and document.uri != uri:
            self.documents.pop((user_id, event))
            # The user's address changed: withdraw what the old one shows.
            await (self._end_call(document) if event == "dialog" else self._remove(document))
            document = None
        if document is None:
            document = self.documents[(user_id, event)] = Document(user_id, event, uri)
        async with document.lock:
            if document.etag is not None and document.shown == shown:
                self.counts["unchanged"] += 1
                return
            document.version += 1
            body = render(document.version)
            await self._send(document, body)
            document.shown, document.body = shown, body

    async def _send(self, document: Document, body: bytes, refresh: bool = False) -> None:
        """PUBLISH a body (modify with `SIP-If-Match`, or initial); a 412 starts over
        without `SIP-If-Match`.

        A refresh carries the body again, though RFC 3903 §4.3 allows it without: Kamailio
        5.6 with `publ_cache=2` empties the document on a body-less refresh ("Empty
        notify body record"), and every server takes a modify with the same body."""
        response = await self._publish(document, body, self.settings.expires)
        if response.code == 412 and document.etag is not None:
            self.counts["restarted_after_412"] += 1
            document.etag = None
            response = await self._publish(document, body, self.settings.expires)
        if not 200 <= response.code < 300:
            self._failed(f"PUBLISH {document.event} for {document.uri} answered {response.code}")
        document.etag = response.headers.get("SIP-ETag") or document.etag
        granted = response.expires if response.expires is not None else self.settings.expires
        self._schedule(document, max(1.0, granted * spread(0.70, 0.85)))
        self.failing = None
        self.counts["refreshed" if refresh else "published"] += 1

    async def _publish(self, document: Document, body: bytes | None, expires: int) -> Response:
        headers = [("Event", document.event), ("Expires", str(expires))]
        if document.etag is not None:
            headers.append(("SIP-If-Match", document.etag))
        dialog = self.ua.new_dialog(document.uri)
        content_type = CONTENT_TYPES[document.event] if body else None
        request = self.ua.build("PUBLISH", dialog, headers, body or b"", content_type)
        try:
            return await self.ua.send(request, dialog, self.settings.timeout_seconds)
        except TransactionError as error:
            self._failed(f"PUBLISH {document.event} for {document.uri}: {error}")

    def _failed(self, why: str) -> NoReturn:
        self.failing = why
        self.counts["failures"] += 1
        raise OutletUnavailable(why)

    async def _remove(self, document: Document) -> None:
        if document.timer is not None:
            document.timer.cancel()
        if document.etag is None:
            return
        async with document.lock:
            response = await self._publish(document, None, 0)
            document.etag = None
            self.counts["removed"] += 1
            if response.code >= 300 and response.code != 412:
                log.info("%s: removing %s answered %d", self.name, document.uri, response.code)

    # -- refreshing ---------------------------------------------------------------------

    def _schedule(self, document: Document, delay: float) -> None:
        if document.timer is not None:
            document.timer.cancel()
        loop = asyncio.get_running_loop()
        document.timer = loop.call_later(delay, self._refresh_soon, document)

    def _refresh_soon(self, document: Document) -> None:
        self._spawn(self._refresh(document))

    async def _refresh(self, document: Document) -> None:
        key = (document.user_id, document.event)
        async with document.lock:
            if self.documents.get(key) is not document or not document.body:
                return
            try:
                await self._send(document, document.body, refresh=True)
            except OutletUnavailable as error:
                log.warning("%s: refresh failed, again soon: %s", self.name, error)
                self._schedule(document, RETRY_SECONDS)

    # -- the server ---------------------------------------------------------------------

    def _server_lost(self) -> None:
        self.failing = f"{self.settings.server} does not answer"

    def _server_back(self) -> None:
        """It likely restarted and lost every document: publish them anew (paced),
        rather than leave phones dark until each refresh comes round."""
        self.failing = None
        self.counts["server_restarts"] += 1
        self._spawn(self._republish())

    async def _republish(self) -> None:
        gap = 1.0 / self.settings.republish_rate
        for document in list(self.documents.values()):
            if document.etag is None:
                continue
            document.etag = None  # the server forgot it; SIP-If-Match would get a 412
            self._refresh_soon(document)
            await asyncio.sleep(gap)
