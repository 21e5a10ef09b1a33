"""`POST /graph/notifications`: Graph's validation handshake and change notifications.

The checks (subscription, clientState, validation tokens, HMAC) are the Graph
adapter's (`adapters/graph/webhook.py`); this endpoint answers the handshake, passes
another node's notifications on, refuses what the checks refuse with a 4xx (counted),
and refuses encrypted content the hub accepted once (a replay, see `ReplayGuard`).
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from presencebridge import metrics
from presencebridge.adapters.graph.webhook import (
    CheckedBatch,
    NotificationRefused,
    NotifyContext,
    check,
    handle_lifecycle,
    parse,
)
from presencebridge.api.cluster import FORWARDED_BY
from presencebridge.api.responses import WEBHOOK_ERRORS
from presencebridge.service.hub import Hub
from presencebridge.service.teams_sync import apply_readings

log = logging.getLogger(__name__)
router = APIRouter()

__all__ = ["NotifyContext", "router"]


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
    notify: NotifyContext | None = request.app.state.notify
    try:
        items, tokens = parse(await request.body())
        batch = await check(notify, items, tokens)
    except NotificationRefused as refusal:
        return _refuse(refusal.status, refusal.result, refusal.reason)
    assert notify is not None
    # Claimed before applying (no await in between), so two copies arriving at once
    # cannot both pass; released again if applying fails and Graph is to retry.
    if not notify.replays.claim(batch.digests):
        return _refuse(409, "replayed", "notification was delivered and accepted before")
    try:
        for item in batch.lifecycle:
            await handle_lifecycle(notify, item)
        await _apply(request, batch)
    except BaseException:
        notify.replays.release(batch.digests)
        raise
    metrics.NOTIFICATIONS.labels("accepted").inc(batch.count)
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


async def _apply(request: Request, batch: CheckedBatch) -> None:
    hub: Hub = request.app.state.hub
    readings = batch.readings
    # Only the users the notification names: walking every synced user per notification
    # cost 14 ms at 10,000 users (bench poll-vs-notify).
    by_teams_id = {
        r.teams_user_id: user_id
        for r in readings
        if (user_id := hub.synced_user_for(r.teams_user_id)) is not None
    }
    cluster = request.app.state.cluster
    if cluster is not None:  # several nodes: the others' users go to their owners
        cluster.relay_readings([r for r in readings if r.teams_user_id not in by_teams_id])
    await apply_readings(hub, readings, by_teams_id, hub.clock.now())
