"""`POST /graph/notifications`: Graph's validation handshake and change notifications.

Every notification is checked before anything is believed: its subscription must
be one of ours, its clientState must match (constant-time), the validation
tokens must be valid JWTs for our app, and encrypted content must carry a valid
HMAC. A batch with any bad item is refused as a whole with a 4xx and counted.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from presencebridge import metrics
from presencebridge.adapters.graph.notifications import (
    NotificationKeys,
    NotificationRejected,
    ValidationTokenVerifier,
    decrypt,
)
from presencebridge.adapters.graph.subscriptions import SubscriptionManager
from presencebridge.service.hub import Hub
from presencebridge.service.teams_sync import Reading, apply_readings

log = logging.getLogger(__name__)
router = APIRouter()

RESOURCE_ID = re.compile(r"presences\('([^']+)'\)|presences/([^/?]+)")


@dataclass
class NotifyContext:
    manager: SubscriptionManager
    keys: NotificationKeys
    verifier: ValidationTokenVerifier


def _refuse(status: int, result: str, reason: str) -> JSONResponse:
    metrics.NOTIFICATIONS.labels(result).inc()
    log.warning("Graph notification refused: %s", reason)
    return JSONResponse({"detail": reason, "code": result}, status)


@router.post("/graph/notifications", status_code=202, response_model=None)
async def graph_notifications(request: Request) -> Response:
    token = request.query_params.get("validationToken")
    if token is not None:
        # Graph's handshake: echo the (already URL-decoded) token as plain text, at once.
        return PlainTextResponse(token)
    try:
        body = json.loads(await request.body())
        items = body["value"]
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise TypeError("value is not a list of notifications")
    except (ValueError, KeyError, TypeError) as error:
        return _refuse(400, "malformed", f"not a Graph notification: {error}")
    notify: NotifyContext | None = request.app.state.notify
    if notify is None:
        return _refuse(403, "unknown_subscription", "this hub holds no subscriptions (poll mode)")
    # Signatures first (as Graph advises), then our own secret per subscription.
    tokens = body.get("validationTokens") or []
    try:
        for jwt_token in tokens:
            await asyncio.to_thread(notify.verifier.verify, str(jwt_token))
    except NotificationRejected as error:
        return _refuse(401, "bad_token", str(error))
    for item in items:
        subscription = notify.manager.lookup(str(item.get("subscriptionId")))
        if subscription is None:
            return _refuse(403, "unknown_subscription", "notification for an unknown subscription")
        if not subscription.checks(item.get("clientState")):
            return _refuse(403, "bad_client_state", "clientState does not match")
    if any("encryptedContent" in i for i in items) and not tokens:
        return _refuse(401, "bad_token", "rich notifications must carry validationTokens")
    observations: list[tuple[str, dict[str, Any]]] = []
    for item in items:
        if item.get("lifecycleEvent"):
            await _lifecycle(notify, item)
            continue
        content = item.get("encryptedContent")
        if content is None:
            continue  # basic notifications carry no presence; the poll reads it
        try:
            data = decrypt(content, notify.keys)
        except NotificationRejected as error:
            return _refuse(403, "bad_signature", str(error))
        teams_id = str(data.get("id") or _resource_id(str(item.get("resource", ""))))
        observations.append((teams_id, data))
    await _apply(request, observations)
    metrics.NOTIFICATIONS.labels("accepted").inc(len(items))
    return Response(status_code=202)


def _resource_id(resource: str) -> str:
    match = RESOURCE_ID.search(resource)
    return "" if match is None else match.group(1) or match.group(2)


async def _lifecycle(notify: NotifyContext, item: dict[str, Any]) -> None:
    event = item.get("lifecycleEvent")
    subscription_id = str(item.get("subscriptionId"))
    if event == "reauthorizationRequired":
        await notify.manager.renew(subscription_id)
    elif event in ("subscriptionRemoved", "missed"):
        # Re-subscribe; the poll underneath catches what was missed meanwhile.
        notify.manager.subscriptions.pop(subscription_id, None)
        notify.manager.wake()


async def _apply(request: Request, observations: list[tuple[str, dict[str, Any]]]) -> None:
    hub: Hub = request.app.state.hub
    readings = [
        Reading(
            teams_id,
            str(data.get("availability", "")),
            str(data.get("activity", "")),
            data.get("sequenceNumber"),
        )
        for teams_id, data in observations
    ]
    by_teams_id = {teams_id: user_id for user_id, teams_id in hub.synced_users()}
    await apply_readings(hub, readings, by_teams_id, hub.clock.now())
