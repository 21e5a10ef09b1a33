"""`/api/v1/agent/stream`: the desktop agent's WebSocket (SPEC §6; protocol in docs/agent.md)."""

from __future__ import annotations

import asyncio
import json
import logging
from contextlib import suppress
from typing import Any

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from presencebridge.api import schemas, views
from presencebridge.api.access import AGENT_TOKEN
from presencebridge.api.auth import bearer_token, websocket_principal
from presencebridge.core.errors import Rejected
from presencebridge.service.agents import AgentConnection, AgentRelay
from presencebridge.service.hub import Hub

log = logging.getLogger(__name__)
router = APIRouter()


@router.websocket("/api/v1/agent/stream")
async def agent_stream(websocket: WebSocket) -> None:
    who = await websocket_principal(websocket)
    if who is None or who.user_id is None or who.via != AGENT_TOKEN:
        await websocket.close(code=1008, reason="an agent token is needed")
        return
    user_id = who.user_id
    hub: Hub = websocket.app.state.hub
    relay: AgentRelay = websocket.app.state.agents
    await websocket.accept()
    listener = hub.bus.listen()

    async def send(message: dict[str, Any]) -> None:
        await websocket.send_text(json.dumps(message))

    token = bearer_token(
        websocket.headers.get("authorization"), websocket.query_params.get("token")
    )
    connection = relay.connect(user_id, send, token)
    language = websocket.query_params.get("lang") or "en"
    tasks = [
        asyncio.create_task(_outgoing(websocket, connection, listener.next, user_id, language)),
        asyncio.create_task(_incoming(websocket, relay, connection)),
        asyncio.create_task(listener.overflowed.wait()),
        asyncio.create_task(connection.revoked.wait()),
    ]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        relay.disconnect(connection)
        hub.bus.leave(listener)
        with suppress(Exception):
            if connection.revoked.is_set():
                await websocket.close(code=1008, reason="the agent token was revoked")
            else:
                await websocket.close()


async def _outgoing(
    websocket: WebSocket,
    connection: AgentConnection,
    next_change: Any,
    user_id: str,
    language: str,
) -> None:
    change_task: asyncio.Task[Any] = asyncio.create_task(next_change())
    queued_task: asyncio.Task[Any] = asyncio.create_task(connection.queue.get())
    try:
        while True:
            done, _ = await asyncio.wait(
                {change_task, queued_task}, return_when=asyncio.FIRST_COMPLETED
            )
            if queued_task in done:
                await websocket.send_text(json.dumps(queued_task.result()))
                queued_task = asyncio.create_task(connection.queue.get())
            if change_task in done:
                change = change_task.result()
                if change.user_id == user_id and change.presence is not None:
                    message = {"type": "presence", "user": user_id}
                    message.update(views.presence(change.presence, language))
                    await websocket.send_text(json.dumps(message))
                change_task = asyncio.create_task(next_change())
    finally:
        change_task.cancel()
        queued_task.cancel()


async def _incoming(websocket: WebSocket, relay: AgentRelay, connection: AgentConnection) -> None:
    with suppress(WebSocketDisconnect):
        while True:
            text = await websocket.receive_text()
            try:
                message = json.loads(text)
                if not isinstance(message, dict):
                    raise ValueError("a message is a JSON object")
                problem = schemas.refused_string(message)  # the API's rule for text
                if problem is not None:
                    raise ValueError(problem)
                await relay.receive(connection, message)
            except (ValueError, KeyError, TypeError) as error:
                await websocket.send_text(json.dumps({"type": "error", "detail": str(error)}))
            except Rejected as error:
                await websocket.send_text(json.dumps({"type": "error", "detail": error.message}))
