"""One signed POST of one change to a webhook's receiver, and what its answer means.

2xx: delivered. 408, 429 and 5xx: try again later (the receiver is busy or broken for
now). Any other answer (4xx, a redirect): this request will never be taken — dead at
once, for an administrator to look at. No answer at all (refused, timed out, TLS):
try again, and the receiver as a whole is taken to be down (`Result.unreachable`).
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from presencebridge import __version__
from presencebridge.adapters.webhook.settings import WebhookSettings
from presencebridge.adapters.webhook.signing import (
    EVENT_HEADER,
    IDEMPOTENCY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    sign,
)

RETRIED_STATUSES = frozenset({408, 429})


class Outcome(enum.Enum):
    DELIVERED = "delivered"
    RETRY = "retry"
    DEAD = "dead"


@dataclass(frozen=True, slots=True)
class Result:
    outcome: Outcome
    detail: str  # for the dead-letter list and the log: a status, never the secret
    unreachable: bool = False  # no HTTP answer: the receiver is down, not this change


def judge(status: int) -> Outcome:
    if 200 <= status < 300:
        return Outcome.DELIVERED
    if status in RETRIED_STATUSES or status >= 500:
        return Outcome.RETRY
    return Outcome.DEAD


class WebhookSender:
    """Posts to one webhook's URL over one connection pool."""

    def __init__(
        self,
        settings: WebhookSettings,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.http = httpx.AsyncClient(
            timeout=settings.timeout_seconds,
            follow_redirects=False,  # a redirect would carry the signed body elsewhere
            transport=transport,
            headers={"User-Agent": f"presencebridge/{__version__}"},
        )

    def headers(self, event_id: str, event: str, body: bytes) -> dict[str, str]:
        timestamp = str(int(self.clock()))
        return {
            "Content-Type": "application/json",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(self.settings.secret, timestamp, body),
            IDEMPOTENCY_HEADER: event_id,
            EVENT_HEADER: event,
        }

    async def send(self, event_id: str, event: str, body: bytes) -> Result:
        try:
            response = await self.http.post(
                self.settings.url, content=body, headers=self.headers(event_id, event, body)
            )
        except httpx.TimeoutException:
            return Result(Outcome.RETRY, "no answer within the timeout", unreachable=True)
        except httpx.HTTPError as error:
            # The exception's text only: it names the host, never the headers.
            reason = str(error) or type(error).__name__
            return Result(Outcome.RETRY, f"not reachable: {reason}"[:300], unreachable=True)
        outcome = judge(response.status_code)
        detail = f"HTTP {response.status_code}"
        if 300 <= response.status_code < 400:
            detail += " (a redirect: configure the final URL)"
        return Result(outcome, detail)

    async def aclose(self) -> None:
        await self.http.aclose()
