"""A test's own SIP watcher: subscribes at a presence server as a BLF key (`Event:
dialog`) or a presence client (`Event: presence`) does, and keeps every NOTIFY body.

Built on the product's user agent (its transactions are tested on their own); the
watcher's logic, answering NOTIFYs and reading what they carry, is this file's.
`ThreadedWatcher` runs one in a thread of its own for tests that are not async.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from sipmessage import Request, Response

from presencebridge.adapters.sip.message import Dialog, tag
from presencebridge.adapters.sip.ua import UserAgent

T = TypeVar("T")
ACCEPT = {"dialog": "application/dialog-info+xml", "presence": "application/pidf+xml"}


def dialog_states(body: bytes) -> list[str]:
    """The dialog states a dialog-info body lists, lower case."""
    found: list[bytes] = re.findall(rb"<state>\s*([A-Za-z]+)\s*</state>", body)
    return [s.decode().lower() for s in found]


class Watcher:
    def __init__(self, server: tuple[str, int], domain: str) -> None:
        self.ua = UserAgent(server, domain=domain, user="watcher", on_request=self._notify)
        self.dialogs: dict[str, Dialog] = {}  # by Call-ID
        self.bodies: dict[str, list[bytes]] = {}  # by Call-ID

    async def start(self) -> None:
        await self.ua.start()

    async def close(self) -> None:
        await self.ua.close()

    async def subscribe(self, uri: str, event: str, expires: int = 300) -> str:
        dialog = self.ua.new_dialog(uri)
        self.dialogs[dialog.call_id] = dialog
        self.bodies[dialog.call_id] = []
        headers = [("Event", event), ("Accept", ACCEPT[event]), ("Expires", str(expires))]
        response = await self.ua.send(self.ua.build("SUBSCRIBE", dialog, headers), dialog)
        assert 200 <= response.code < 300, response.code
        dialog.confirm(response, tag(response.to_address))
        return dialog.call_id

    def _notify(self, request: Request) -> Response:
        call_id = request.headers.get("Call-ID") or ""
        dialog = self.dialogs.get(call_id)
        if dialog is None:
            return self.ua.response(request, 481, "Subscription Does Not Exist")
        dialog.confirm(request, tag(request.from_address))
        self.bodies[call_id].append(request.body)
        return self.ua.response(request, 200, "OK")

    def last(self, key: str) -> bytes:
        found = self.bodies.get(key) or [b""]
        return found[-1]


class ThreadedWatcher:
    """A `Watcher` on an event loop in its own thread, for synchronous tests."""

    def __init__(self, server: tuple[str, int], domain: str) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.watcher = self._run(self._make(server, domain))

    async def _make(self, server: tuple[str, int], domain: str) -> Watcher:
        watcher = Watcher(server, domain)
        await watcher.start()
        return watcher

    def _run(self, work: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(work, self.loop)
        return future.result(60)

    def subscribe(self, uri: str, event: str) -> str:
        return str(self._run(self.watcher.subscribe(uri, event)))

    def read(self, probe: Callable[[Watcher], T]) -> T:
        async def look() -> T:
            return probe(self.watcher)

        return self._run(look())  # type: ignore[no-any-return]

    def close(self) -> None:
        self._run(self.watcher.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
