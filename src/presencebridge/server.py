"""Running the server app under uvicorn, alone or with companions (the demo's PBX)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import uvicorn

from presencebridge.api.app import create_app
from presencebridge.config import Settings
from presencebridge.logs import setup_logging

Companion = Callable[[str], Coroutine[Any, Any, None]]


async def serve(settings: Settings, companions: tuple[Companion, ...] = ()) -> None:
    """Serve until interrupted; each companion starts once the server accepts requests."""
    setup_logging(settings.log_level, settings.log_format)
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        proxy_headers=False,
        ws_max_size=settings.max_body_bytes,
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    tasks: list[asyncio.Task[None]] = []

    async def start_companions() -> None:
        while not server.started:
            if server.should_exit:
                return
            await asyncio.sleep(0.05)
        base = f"http://{settings.host}:{settings.port}"
        for companion in companions:
            tasks.append(asyncio.create_task(companion(base)))

    starter = asyncio.create_task(start_companions())
    try:
        await server.serve()
    finally:
        starter.cancel()
        for task in tasks:
            task.cancel()
        await asyncio.gather(starter, *tasks, return_exceptions=True)
