"""Graph presence read the way common open-source integrations read it.

Two styles, both run by the load generator against the emulator, as their own app
(their own client id, so their own 1,500 / 30 s budget):

* `NaivePoller`: one `GET /users/{id}/presence` per user, round robin, as fast as a
  given request budget allows (the benchmark gives it the same read allowance the
  hub gives its own reads).
* `NaiveSubscriber`: one subscription per user. Graph allows one presence
  subscription per signed-in user and app, so every user signs in (device code)
  and subscribes to their own presence; notifications are basic (no resource
  data: since June 2024 they carry none unless encrypted), so each one is followed
  by a `GET /me/presence` with that user's token.

Every answer is recorded as (time, on a call) per user; `workload.match` pairs the
changes with them exactly as it pairs them with the hub's stream messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

from presencebridge.bench.procs import TENANT, EmulatorProcess
from presencebridge.bench.rawhttp import Pool
from presencebridge.bench.workload import emulator_pool

NAIVE_CLIENT_ID = "0a1fe000-0000-4000-8000-00000000a1fe"
NAIVE_SECRET = "naive-integration-secret"  # noqa: S105 - the emulator takes any
CALL_ACTIVITIES = ("InACall", "InAConferenceCall")


def on_call(presence: dict[str, Any]) -> bool:
    return presence.get("activity") in CALL_ACTIVITIES


async def app_token(pool: Pool) -> str:
    status, answer = await pool.form(
        f"/{TENANT}/oauth2/v2.0/token",
        {
            "grant_type": "client_credentials",
            "client_id": NAIVE_CLIENT_ID,
            "client_secret": NAIVE_SECRET,
            "scope": "https://graph.microsoft.com/.default",
        },
    )
    if status != 200:
        raise RuntimeError(f"naive app token: {status} {answer}")
    return str(answer["access_token"])


class NaivePoller:
    """GET /users/{id}/presence for each user in turn, `per_30s` requests per 30 s."""

    def __init__(
        self, emulator: EmulatorProcess, teams_ids: Sequence[str], per_30s: int, inflight: int = 8
    ) -> None:
        self.pool = emulator_pool(emulator, inflight)
        self.teams_ids = list(teams_ids)
        self.rate = per_30s / 30.0
        self.inflight = inflight
        self.arrivals: dict[str, list[tuple[float, bool]]] = defaultdict(list)
        self.requests = 0
        self.throttled = 0
        self.errors = 0
        self._stop = False

    async def run(self, duration: float) -> None:
        token = await app_token(self.pool)
        started = time.monotonic()
        slots = asyncio.Semaphore(self.inflight)
        tasks: set[asyncio.Task[None]] = set()
        k = 0
        while True:
            at = started + k / self.rate
            if at - started >= duration:
                break
            delay = at - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await slots.acquire()
            teams_id = self.teams_ids[k % len(self.teams_ids)]
            k += 1
            task = asyncio.create_task(self._read(teams_id, token, slots))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks)
        self.pool.close()

    async def _read(self, teams_id: str, token: str, slots: asyncio.Semaphore) -> None:
        try:
            status, content = await self.pool.request(
                "GET", f"/v1.0/users/{teams_id}/presence", token=token
            )
            self.requests += 1
            if status == 200:
                self.arrivals[teams_id].append((time.monotonic(), on_call(json.loads(content))))
            elif status == 429:
                self.throttled += 1
            else:
                self.errors += 1
        finally:
            slots.release()


class NaiveSubscriber:
    """Per user: a device-code sign-in, a subscription to their own presence, and a GET
    after every (basic) notification."""

    def __init__(self, emulator: EmulatorProcess, teams_ids: Sequence[str]) -> None:
        self.emulator = emulator
        self.teams_ids = list(teams_ids)
        self.pool = emulator_pool(emulator, 16)
        self.tokens: dict[str, str] = {}
        self.arrivals: dict[str, list[tuple[float, bool]]] = defaultdict(list)
        self.counts: dict[str, int] = defaultdict(int)
        self.client_state = secrets.token_urlsafe(16)
        self._server: asyncio.Server | None = None
        self.port = 0
        self._gets: set[asyncio.Task[None]] = set()
        self._stopped = False

    # -- set-up --------------------------------------------------------------------------

    async def start(self) -> dict[str, Any]:
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        started = time.monotonic()
        queue = iter(self.teams_ids)

        async def worker() -> None:
            for teams_id in queue:
                await self._subscribe(teams_id)

        await asyncio.gather(*(worker() for _ in range(16)))
        return {
            "users": len(self.teams_ids),
            "sign_ins": self.counts["sign_in"],
            "subscriptions": self.counts["subscription"],
            "seconds": round(time.monotonic() - started, 3),
        }

    async def _subscribe(self, teams_id: str) -> None:
        status, flow = await self.pool.form(
            f"/{TENANT}/oauth2/v2.0/devicecode",
            {"client_id": NAIVE_CLIENT_ID, "scope": "Presence.Read offline_access"},
        )
        if status != 200:
            raise RuntimeError(f"device code for {teams_id}: {status} {flow}")
        await self.pool.json(
            "POST", "/_emulator/device/approve", {"user_code": flow["user_code"], "user": teams_id}
        )
        status, answer = await self.pool.form(
            f"/{TENANT}/oauth2/v2.0/token",
            {
                "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
                "client_id": NAIVE_CLIENT_ID,
                "device_code": flow["device_code"],
            },
        )
        if status != 200:
            raise RuntimeError(f"token for {teams_id}: {status} {answer}")
        token = str(answer["access_token"])
        self.tokens[teams_id] = token
        self.counts["sign_in"] += 1
        expires = datetime.now(UTC) + timedelta(minutes=59)
        body = {
            "changeType": "updated",
            "resource": f"/communications/presences/{teams_id}",
            "notificationUrl": f"http://127.0.0.1:{self.port}/notify",
            "expirationDateTime": expires.isoformat(),
            "clientState": self.client_state,
            "includeResourceData": False,
        }
        status, content = await self.pool.request("POST", "/v1.0/subscriptions", body, token)
        if status != 201:
            raise RuntimeError(f"subscription for {teams_id}: {status} {content[:300]!r}")
        self.counts["subscription"] += 1

    # -- the webhook -----------------------------------------------------------------------

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            while True:
                line = await reader.readuntil(b"\r\n")
                if not line.strip():
                    return
                target = line.split(b" ")[1].decode()
                length = 0
                while (header := await reader.readuntil(b"\r\n")) != b"\r\n":
                    name, _, value = header.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                body = await reader.readexactly(length) if length else b""
                query = parse_qs(urlsplit(target).query)
                if "validationToken" in query:
                    token = query["validationToken"][0].encode()
                    self._answer(writer, 200, token, b"text/plain")
                else:
                    self._answer(writer, 202, b"", b"text/plain")
                    self._notified(json.loads(body or b"{}"))
                await writer.drain()
        writer.close()

    @staticmethod
    def _answer(writer: asyncio.StreamWriter, status: int, body: bytes, kind: bytes) -> None:
        reason = b"OK" if status == 200 else b"Accepted"
        writer.write(
            b"HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n%s"
            % (status, reason, kind, len(body), body)
        )

    def _notified(self, batch: dict[str, Any]) -> None:
        if self._stopped:
            return
        for item in batch.get("value", []):
            self.counts["notifications"] += 1
            if item.get("clientState") != self.client_state:
                self.counts["bad_client_state"] += 1
                continue
            teams_id = (item.get("resourceData") or {}).get("id")
            if teams_id in self.tokens:
                task = asyncio.create_task(self._get(teams_id))
                self._gets.add(task)
                task.add_done_callback(self._gets.discard)

    async def _get(self, teams_id: str) -> None:
        try:
            status, content = await self.pool.request(
                "GET", "/v1.0/me/presence", token=self.tokens[teams_id]
            )
        except Exception:  # the emulator went away (end of the run): counted, not raised
            self.counts["get_errors"] += 1
            return
        self.counts["gets"] += 1
        if status == 200:
            self.arrivals[teams_id].append((time.monotonic(), on_call(json.loads(content))))
        else:
            self.counts[f"get_{status}"] += 1

    async def stop(self) -> None:
        self._stopped = True
        await asyncio.gather(*self._gets, return_exceptions=True)
        if self._server is not None:
            self._server.close()
        self.pool.close()
