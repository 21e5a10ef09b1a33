"""The presence stream: a snapshot of every user the caller may see, then each change.

Messages: `snapshot`, then `presence` for each change and `removed` (with `user`) when
a user was deleted. Each presence carries `status_since`: when the user's status last
changed (`Hub.status_since`, restored from the presence history at start; null when
no history row says).
`presence_stream(websocket, who)` runs one stream for an already known caller (a
`Principal`: the administrator, or an agent acting for one user). Two endpoints use it:

* the API's `/api/v1/presence/stream` (`router` here), which identifies the caller
  by `Authorization: Bearer` or `?token=`;
* the console's `/console/stream`, which checks its session and runs the stream
  for the administrator.

So both send exactly the same messages. The caller's identity is always explicit;
nothing is passed on in headers.
"""

from __future__ import annotations

import asyncio
import json
from contextlib import suppress
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from presencebridge import metrics
from presencebridge.api import views
from presencebridge.api.auth import Principal, websocket_principal
from presencebridge.api.schemas import iso
from presencebridge.core.texts import pick_language
from presencebridge.service.bus import Listener, PresenceChange
from presencebridge.service.hub import Hub

__all__ = ["SNAPSHOT_SLICE", "presence_stream", "router"]

SNAPSHOT_SLICE = 2000

router = APIRouter()


@router.websocket("/api/v1/presence/stream")
async def api_presence_stream(websocket: WebSocket) -> None:
    """The API's stream: the caller named by its bearer token (header or `?token=`)."""
    who = await websocket_principal(websocket)
    if who is None:
        await websocket.close(code=1008, reason="missing or invalid token")
        return
    await presence_stream(websocket, who)


def stream_language(websocket: WebSocket) -> str:
    """`?lang=`, else `Accept-Language`; English unless it is one of ours."""
    language = websocket.query_params.get("lang") or pick_language(
        websocket.headers.get("accept-language")
    )
    return language if language in ("en", "de") else "en"


async def presence_stream(websocket: WebSocket, who: Principal) -> None:
    """Accepts the WebSocket and streams what `who` may see until the client leaves."""
    hub: Hub = websocket.app.state.hub
    language = stream_language(websocket)
    await websocket.accept()
    # Subscribe before the snapshot so no change can fall between the two.
    listener = hub.bus.listen()
    metrics.STREAM_CLIENTS.inc()
    try:
        cluster = websocket.app.state.cluster
        if cluster is not None:  # the snapshot as fresh as a read (docs/cluster.md)
            await cluster.catch_up()
        await websocket.send_text(await snapshot(hub, who, language))
        await _follow(websocket, hub, listener, who, language)
    except (WebSocketDisconnect, RuntimeError):
        pass
    finally:
        hub.bus.leave(listener)
        metrics.STREAM_CLIENTS.dec()
        with suppress(Exception):
            await websocket.close()


async def _follow(
    websocket: WebSocket, hub: Hub, listener: Listener, who: Principal, language: str
) -> None:
    """One message per change `who` may see, until the client leaves or falls behind."""
    receiver = asyncio.create_task(_drain(websocket))
    overflow = asyncio.create_task(listener.overflowed.wait())
    while True:
        change_task = asyncio.create_task(listener.next())
        done, _ = await asyncio.wait(
            {change_task, receiver, overflow}, return_when=asyncio.FIRST_COMPLETED
        )
        if change_task not in done:
            change_task.cancel()
            if overflow in done:
                await websocket.close(code=1013, reason="too far behind; reconnect")
            break
        change = change_task.result()
        if who.may_see(change.user_id):
            await websocket.send_text(json.dumps(_message(hub, change, language)))
    receiver.cancel()
    overflow.cancel()


def _message(hub: Hub, change: PresenceChange, language: str) -> dict[str, Any]:
    if change.presence is None:
        return {"type": "removed", "user": change.user_id}
    message: dict[str, Any] = {"type": "presence", "user": change.user_id}
    last_sync = hub.teams_last_sync(change.user_id)
    message.update(views.presence(change.presence, language, last_sync))
    message["status_since"] = iso(hub.status_since(change.user_id))
    return message


async def snapshot(hub: Hub, who: Principal, language: str) -> str:
    """The snapshot message, built a slice at a time.

    At 100,000 users building it takes seconds of CPU; yielding between slices keeps
    PBX events, Graph reads and the other streams moving meanwhile.
    """
    parts: list[str] = []
    presences = [(u, p) for u, p in hub.presences() if who.may_see(u)]
    for start in range(0, len(presences), SNAPSHOT_SLICE):
        batch = [
            {
                "user": user_id,
                **views.presence(p, language, hub.teams_last_sync(user_id)),
                "status_since": iso(hub.status_since(user_id)),
            }
            for user_id, p in presences[start : start + SNAPSHOT_SLICE]
        ]
        parts.append(json.dumps(batch)[1:-1])
        await asyncio.sleep(0)
    return '{"type": "snapshot", "presences": [' + ", ".join(parts) + "]}"


async def _drain(websocket: WebSocket) -> None:
    """Reads (and ignores) what the client sends, so a disconnect is noticed at once."""
    with suppress(WebSocketDisconnect):
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
