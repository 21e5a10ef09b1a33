"""The Graph presence API over one shared `httpx.AsyncClient`.

Every request first books a slot in the tenant budget (the server's client; the
agent's `/me` client has none); 429 and 503 (and network errors) are retried after
`Retry-After` or an exponential, jittered backoff, so a throttled write is delayed,
never lost. This is the one retry policy and the one per-user write fence for every
Graph presence call, the server's (`GraphClient`) and the agent's (`me.MeGraph`).
"""

from __future__ import annotations

import asyncio
import html
import logging
import re
import ssl
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import httpx

from presencebridge import metrics
from presencebridge.adapters.graph.budget import RequestBudget
from presencebridge.adapters.graph.retry import RETRYABLE, backoff
from presencebridge.core.ports import Reading
from presencebridge.core.teams import SESSION_LIFETIME

log = logging.getLogger(__name__)

MAX_IDS_PER_READ = 650
# Failures after which the request surely never reached Graph.
NOT_SENT = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


_TAG = re.compile(r"<[^>]*>")


def reading_of(presence: Mapping[str, Any], teams_user_id: str) -> Reading:
    """A Graph presence resource (read, or a change notification's content) as a reading."""
    message = presence.get("statusMessage") or {}
    body = message.get("message") or {} if isinstance(message, Mapping) else {}
    content = body.get("content") if isinstance(body, Mapping) else None
    text: str | None = None
    if isinstance(content, str) and content.strip():
        if str(body.get("contentType", "text")).lower() == "html":
            content = html.unescape(_TAG.sub("", content))
        text = " ".join(content.split())[:500] or None
    oof = presence.get("outOfOfficeSettings") or {}
    return Reading(
        teams_user_id,
        # A handful of distinct values, kept for every user: share one copy of each.
        sys.intern(str(presence.get("availability", ""))),
        sys.intern(str(presence.get("activity", ""))),
        presence.get("sequenceNumber"),
        text,
        isinstance(oof, Mapping) and oof.get("isOutOfOffice") is True,
    )


class TokenSource(Protocol):
    async def token(self) -> str: ...

    def invalidate(self) -> None: ...

    def close(self) -> None: ...


class GraphError(RuntimeError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"Graph answered {status}: {message}")
        self.status = status


def iso_duration(value: timedelta) -> str:
    minutes = max(5, int(value.total_seconds() // 60))
    return f"PT{minutes}M"


def retry_after(response: httpx.Response, attempt: int) -> float:
    header = response.headers.get("retry-after")
    if header:
        try:
            return max(0.0, float(header))  # Graph may send fractions, e.g. "2.128"
        except ValueError:
            pass
    return backoff(attempt)


class GraphClient:
    def __init__(
        self,
        graph_url: str,
        tokens: TokenSource,
        budget: RequestBudget | None,
        session_id: str,
        ca_bundle: Path | None = None,
        timeout: float = 10.0,
        max_attempts: int = 8,
    ) -> None:
        self.graph_url = graph_url.rstrip("/")
        self.tokens = tokens
        self.budget = budget
        self.session_id = session_id  # Graph's sessionId is the app's client id
        self.max_attempts = max_attempts
        self.max_ids_per_read = MAX_IDS_PER_READ
        self.timeout = timeout
        # Told of every answer (operation, HTTP status or "error"): the sync page's rates.
        self.on_answer: Callable[[str, str], None] | None = None
        # A write that got no answer (a timeout, a connection lost after sending) may
        # still be carried out by Graph later. Were the user's next write sent before
        # that, the late one would overtake it and leave a stale state in Teams (an
        # orphan "In a call" session, say). So no write for that user goes out until
        # then, retries included; assumed: Graph answers or gives up within twice our
        # timeout. Monotonic deadline per Teams user id.
        self._fences: dict[str, float] = {}
        verify: ssl.SSLContext | bool = True
        if ca_bundle is not None:
            verify = ssl.create_default_context(cafile=str(ca_bundle))
        self.http = httpx.AsyncClient(
            timeout=timeout,
            verify=verify,
            limits=httpx.Limits(max_connections=50, max_keepalive_connections=50),
        )

    async def aclose(self) -> None:
        await self.http.aclose()
        self.tokens.close()

    async def _request(
        self,
        op: str,
        method: str,
        path: str,
        body: Any,
        read: bool,
        user: str | None = None,
        headers: dict[str, str] | None = None,
        presence: bool = True,
    ) -> httpx.Response:
        """`user`: the Teams user a write is for (see `_fences`); `presence` False: a
        request outside the presence budget (the directory's, throttled on its own)."""
        last = "no attempt"
        for attempt in range(self.max_attempts):
            if user is not None:
                await self._wait_for_fence(user)
            if self.budget is not None and presence:
                await self.budget.spend(read)
            started = time.perf_counter()
            try:
                token = await self.tokens.token()
                response = await self.http.request(
                    method,
                    self.graph_url + path,
                    json=body,
                    headers={"Authorization": f"Bearer {token}", **(headers or {})},
                )
            except (httpx.TransportError, httpx.TimeoutException) as error:
                self._count(op, "error")
                last = f"{type(error).__name__}: {error}"
                if user is not None and not isinstance(error, NOT_SENT):
                    self._fences[user] = time.monotonic() + self.timeout
                await asyncio.sleep(backoff(attempt))
                continue
            self._count(op, str(response.status_code))
            metrics.GRAPH_SECONDS.labels(op).observe(time.perf_counter() - started)
            if response.status_code == 401 and attempt == 0:
                self.tokens.invalidate()
                continue
            if response.status_code in RETRYABLE:
                last = f"{response.status_code}"
                await asyncio.sleep(retry_after(response, attempt))
                continue
            return response
        raise GraphError(503, f"{op} gave up after {self.max_attempts} attempts ({last})")

    def _count(self, op: str, status: str) -> None:
        metrics.GRAPH_REQUESTS.labels(op, status).inc()
        if self.on_answer is not None:
            self.on_answer(op, status)

    async def _wait_for_fence(self, user: str) -> None:
        until = self._fences.get(user)
        if until is None:
            return
        wait = until - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        if self._fences.get(user) == until:
            del self._fences[user]

    async def get_json(
        self, op: str, path_or_link: str, headers: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """A directory GET (a path below the Graph URL, or an `@odata.nextLink` /
        `deltaLink`, which Graph gives absolute), with the retry policy; GraphError when
        Graph refuses or gives up."""
        path = path_or_link
        if "://" in path:
            path = path.split("/v1.0", 1)[1] if "/v1.0" in path else path
        response = await self._request(op, "GET", path, None, True, None, headers, False)
        self._check(response)
        data = response.json()
        if not isinstance(data, dict):
            raise GraphError(502, f"{op}: the answer is not a JSON object")
        return data

    async def post_json(self, op: str, path: str, body: Any) -> dict[str, Any]:
        """A directory POST (`$batch`), outside the presence budget, with the retry policy."""
        response = await self._request(op, "POST", path, body, True, presence=False)
        self._check(response)
        data = response.json()
        if not isinstance(data, dict):
            raise GraphError(502, f"{op}: the answer is not a JSON object")
        return data

    def presence_path(self, teams_user_id: str) -> str:
        return f"/users/{teams_user_id}/presence"

    @staticmethod
    def _check(response: httpx.Response, allowed: Sequence[int] = ()) -> None:
        if response.is_success or response.status_code in allowed:
            return
        try:
            message = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = response.text[:200]
        raise GraphError(response.status_code, message)

    async def read(self, teams_user_ids: Sequence[str]) -> list[Reading]:
        response = await self._request(
            "getPresencesByUserId",
            "POST",
            "/communications/getPresencesByUserId",
            {"ids": list(teams_user_ids)},
            read=True,
        )
        self._check(response)
        return [reading_of(p, p["id"]) for p in response.json().get("value", [])]

    async def set_session(self, teams_user_id: str, availability: str, activity: str) -> None:
        body = {
            "sessionId": self.session_id,
            "availability": availability,
            "activity": activity,
            "expirationDuration": iso_duration(SESSION_LIFETIME),
        }
        path = self.presence_path(teams_user_id) + "/setPresence"
        response = await self._request("setPresence", "POST", path, body, False, teams_user_id)
        self._check(response)

    async def clear_session(self, teams_user_id: str) -> None:
        path = self.presence_path(teams_user_id) + "/clearPresence"
        body = {"sessionId": self.session_id}
        # 404: the session is gone already (expired): that is what we wanted.
        response = await self._request("clearPresence", "POST", path, body, False, teams_user_id)
        self._check(response, (404,))

    async def set_preferred_dnd(self, teams_user_id: str, duration: timedelta | None) -> None:
        body: dict[str, str] = {"availability": "DoNotDisturb", "activity": "DoNotDisturb"}
        if duration is not None:
            body["expirationDuration"] = iso_duration(duration)
        path = self.presence_path(teams_user_id) + "/setUserPreferredPresence"
        op = "setUserPreferredPresence"
        self._check(await self._request(op, "POST", path, body, False, teams_user_id))

    async def set_status_message(
        self, teams_user_id: str, text: str, until: datetime | None
    ) -> None:
        message: dict[str, Any] = {"message": {"content": text, "contentType": "text"}}
        if until is not None:
            # Graph keeps a message without an expiry until it is replaced or cleared.
            stamp = until.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds")
            message["expiryDateTime"] = {"dateTime": stamp, "timeZone": "UTC"}
        await self._set_status_message(teams_user_id, {"statusMessage": message})

    async def clear_status_message(self, teams_user_id: str) -> None:
        # Graph has no clear call for the message: an empty one removes it.
        body = {"statusMessage": {"message": {"content": "", "contentType": "text"}}}
        await self._set_status_message(teams_user_id, body)

    async def _set_status_message(self, teams_user_id: str, body: dict[str, Any]) -> None:
        path = self.presence_path(teams_user_id) + "/setStatusMessage"
        op = "setStatusMessage"
        self._check(await self._request(op, "POST", path, body, False, teams_user_id))

    async def clear_preferred(self, teams_user_id: str) -> None:
        path = self.presence_path(teams_user_id) + "/clearUserPreferredPresence"
        op = "clearUserPreferredPresence"
        self._check(await self._request(op, "POST", path, {}, False, teams_user_id))
