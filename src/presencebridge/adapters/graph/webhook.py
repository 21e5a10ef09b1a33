"""The checks of Graph's change notifications, before anything in them is believed.

Every notification's subscription must be one of ours, its clientState must match
(constant-time), the validation tokens must be valid JWTs for our app, and encrypted
content must carry a valid HMAC (`notifications.decrypt`). A batch with any bad item
is refused as a whole (`NotificationRefused`, with the HTTP status and the metric's
result). The endpoint itself (`api/webhook.py`) only translates.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass, field
from typing import Any

from presencebridge.adapters.graph.client import reading_of
from presencebridge.adapters.graph.notifications import (
    NotificationKeys,
    NotificationRejected,
    ReplayGuard,
    ValidationTokenVerifier,
    content_digest,
    decrypt,
)
from presencebridge.adapters.graph.subscriptions import SubscriptionManager
from presencebridge.core.ports import Reading

RESOURCE_ID = re.compile(r"presences\('([^']+)'\)|presences/([^/?]+)")


@dataclass
class NotifyContext:
    """Notify mode: our subscriptions, the key Graph encrypts for, the token checks."""

    manager: SubscriptionManager
    keys: NotificationKeys
    verifier: ValidationTokenVerifier
    replays: ReplayGuard = field(default_factory=ReplayGuard)


class NotificationRefused(Exception):
    """A batch refused: `status` to answer, `result` for the metric, `reason` to say."""

    def __init__(self, status: int, result: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.result = result
        self.reason = reason


@dataclass
class CheckedBatch:
    """A batch that passed every check: what it shows, and what it asks of us."""

    count: int
    readings: list[Reading] = field(default_factory=list)
    digests: list[bytes] = field(default_factory=list)  # for the replay guard
    lifecycle: list[dict[str, Any]] = field(default_factory=list)


def parse(body: bytes) -> tuple[list[dict[str, Any]], list[Any]]:
    """The notifications and validation tokens of a POST body."""
    try:
        data = json.loads(body)
        items = data["value"]
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise TypeError("value is not a list of notifications")
        tokens = data.get("validationTokens") or []
        if not isinstance(tokens, list):
            raise TypeError("validationTokens is not a list")
    except (ValueError, KeyError, TypeError, RecursionError) as error:
        # RecursionError: JSON nested deeper than the parser goes (was a 500).
        raise NotificationRefused(400, "malformed", f"not a Graph notification: {error}") from None
    return items, tokens


async def check(
    notify: NotifyContext | None, items: list[dict[str, Any]], tokens: list[Any]
) -> CheckedBatch:
    """Signatures first (as Graph advises), then our own secret per subscription, then
    the encrypted content's HMAC before it is decrypted."""
    if notify is None:
        raise NotificationRefused(
            403, "unknown_subscription", "this hub holds no subscriptions (poll mode)"
        )
    try:
        for jwt_token in tokens:
            await asyncio.to_thread(notify.verifier.verify, str(jwt_token))
    except NotificationRejected as error:
        raise NotificationRefused(401, "bad_token", str(error)) from None
    for item in items:
        subscription = notify.manager.lookup(str(item.get("subscriptionId")))
        if subscription is None:
            raise NotificationRefused(
                403, "unknown_subscription", "notification for an unknown subscription"
            )
        client_state = item.get("clientState")
        if not isinstance(client_state, str) or not subscription.checks(client_state):
            raise NotificationRefused(403, "bad_client_state", "clientState does not match")
    if any("encryptedContent" in i for i in items) and not tokens:
        raise NotificationRefused(
            401, "bad_token", "rich notifications must carry validationTokens"
        )
    return _open(notify.keys, items)


def _open(keys: NotificationKeys, items: list[dict[str, Any]]) -> CheckedBatch:
    batch = CheckedBatch(len(items))
    for item in items:
        if item.get("lifecycleEvent"):
            batch.lifecycle.append(item)
            continue
        content = item.get("encryptedContent")
        if content is None:
            continue  # basic notifications carry no presence; the poll reads it
        try:
            data = decrypt(content, keys)
        except NotificationRejected as error:
            raise NotificationRefused(403, "bad_signature", str(error)) from None
        teams_id = str(data.get("id") or resource_id(str(item.get("resource", ""))))
        batch.readings.append(reading_of(data, teams_id))
        batch.digests.append(content_digest(content))
    return batch


def resource_id(resource: str) -> str:
    match = RESOURCE_ID.search(resource)
    return "" if match is None else match.group(1) or match.group(2)


async def handle_lifecycle(notify: NotifyContext, item: dict[str, Any]) -> None:
    event = item.get("lifecycleEvent")
    subscription_id = str(item.get("subscriptionId"))
    if event == "reauthorizationRequired":
        await notify.manager.renew(subscription_id)
    elif event in ("subscriptionRemoved", "missed"):
        # Re-subscribe; the poll underneath catches what was missed meanwhile.
        notify.manager.subscriptions.pop(subscription_id, None)
        notify.manager.wake()
