"""`POST /graph/notifications`: Graph's validation handshake and change notifications.

Every notification is checked before anything is believed: its subscription must
be one of ours, its clientState must match (constant-time), the validation
tokens must be valid JWTs for our app, and encrypted content must carry a valid
HMAC. Encrypted content the hub accepted once is refused when it comes again (a
replay, see `ReplayGuard`). A batch with any bad item is refused as a whole with a
4xx and counted.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from presencebridge import metrics
from presencebridge.adapters.graph.notifications import (
    NotificationKeys,
    NotificationRejected,
    ReplayGuard,
    ValidationTokenVerifier,
    content_digest,
    decrypt,
)
from presencebridge.adapters.graph.subscriptions import SubscriptionManager
from presencebridge.api.cluster import FORWARDED_BY
from presencebridge.api.responses import WEBHOOK_ERRORS
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
    replays: ReplayGuard = field(default_factory=ReplayGuard)


def _refuse(status: int, result: str, reason: str) -> JSONResponse:
    metrics.NOTIFICATIONS.labels(result).inc()
    log.warning("Graph notification refused: %s", reason)
    return JSONResponse({"detail": reason, "code": result}, status)


# The body is read by hand (Graph's handshake has none), so it is documented here.
NOTIFICATION_DOCS: dict[str, Any] = {
    "parameters": [
        {
            "name": "validationToken",
            "in": "query",
            "required": False,
            "description": "Graph's validation handshake: answered by echoing it as text",
            "schema": {"type": "string"},
        }
    ],
    "requestBody": {
        "required": True,  # except for the handshake, which OpenAPI cannot say
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["value"],
                    "properties": {
                        "value": {"type": "array", "items": {"type": "object"}},
                        "validationTokens": {"type": "array", "items": {"type": "string"}},
                    },
                }
            }
        },
    },
}
NOTIFICATION_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "the validation handshake: the token echoed",
        "content": {"text/plain": {"schema": {"type": "string"}}},
    },
    202: {"description": "accepted"},
    **WEBHOOK_ERRORS,
}


@router.post(
    "/graph/notifications",
    status_code=202,
    response_model=None,
    response_class=Response,
    responses=NOTIFICATION_RESPONSES,
    openapi_extra=NOTIFICATION_DOCS,
)
async def graph_notifications(request: Request) -> Response:
    token = request.query_params.get("validationToken")
    if token is not None:
        # Graph's handshake: echo the (already URL-decoded) token as plain text, at once.
        return PlainTextResponse(token)
    addressed_to = request.query_params.get("node")
    cluster = request.app.state.cluster
    if cluster is not None and addressed_to and addressed_to != cluster.node:
        # Several nodes: each subscribes with its own key and URL (?node=), the load
        # balancer may hand us another node's notification; that node decrypts it.
        return await _pass_on(request, cluster.nodes.get(addressed_to))
    try:
        body = json.loads(await request.body())
        items = body["value"]
        if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
            raise TypeError("value is not a list of notifications")
        tokens = body.get("validationTokens") or []
        if not isinstance(tokens, list):
            raise TypeError("validationTokens is not a list")
    except (ValueError, KeyError, TypeError, RecursionError) as error:
        # RecursionError: JSON nested deeper than the parser goes (was a 500).
        return _refuse(400, "malformed", f"not a Graph notification: {error}")
    notify: NotifyContext | None = request.app.state.notify
    if notify is None:
        return _refuse(403, "unknown_subscription", "this hub holds no subscriptions (poll mode)")
    # Signatures first (as Graph advises), then our own secret per subscription.
    try:
        for jwt_token in tokens:
            await asyncio.to_thread(notify.verifier.verify, str(jwt_token))
    except NotificationRejected as error:
        return _refuse(401, "bad_token", str(error))
    for item in items:
        subscription = notify.manager.lookup(str(item.get("subscriptionId")))
        if subscription is None:
            return _refuse(403, "unknown_subscription", "notification for an unknown subscription")
        client_state = item.get("clientState")
        if not isinstance(client_state, str) or not subscription.checks(client_state):
            return _refuse(403, "bad_client_state", "clientState does not match")
    if any("encryptedContent" in i for i in items) and not tokens:
        return _refuse(401, "bad_token", "rich notifications must carry validationTokens")
    observations: list[tuple[str, dict[str, Any]]] = []
    digests: list[bytes] = []
    lifecycle: list[dict[str, Any]] = []
    for item in items:
        if item.get("lifecycleEvent"):
            lifecycle.append(item)
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
        digests.append(content_digest(content))
    # Claimed before applying (no await in between), so two copies arriving at once
    # cannot both pass; released again if applying fails and Graph is to retry.
    if not notify.replays.claim(digests):
        return _refuse(409, "replayed", "notification was delivered and accepted before")
    try:
        for item in lifecycle:
            await _lifecycle(notify, item)
        await _apply(request, observations)
    except BaseException:
        notify.replays.release(digests)
        raise
    metrics.NOTIFICATIONS.labels("accepted").inc(len(items))
    return Response(status_code=202)


async def _pass_on(request: Request, node_url: str | None) -> Response:
    if node_url is None or request.headers.get(FORWARDED_BY):
        # The node is gone; its subscriptions lapse and the new owners subscribe anew
        # (the poll underneath covers the gap). Accepted, so Graph does not retry.
        metrics.NOTIFICATIONS.labels("orphaned").inc()
        return Response(status_code=202)
    client: httpx.AsyncClient = request.app.state.forward_client
    try:
        answer = await client.post(
            node_url.rstrip("/") + request.url.path,
            params=dict(request.query_params),
            content=await request.body(),
            headers={
                "content-type": request.headers.get("content-type", "application/json"),
                FORWARDED_BY: request.app.state.cluster.node,
            },
        )
    except httpx.HTTPError:
        return Response(status_code=503, headers={"Retry-After": "5"})  # Graph retries
    return Response(answer.content, answer.status_code, media_type="application/json")


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
    cluster = request.app.state.cluster
    if cluster is not None:  # several nodes: the others' users go to their owners
        cluster.relay_readings([r for r in readings if r.teams_user_id not in by_teams_id])
    await apply_readings(hub, readings, by_teams_id, hub.clock.now())
