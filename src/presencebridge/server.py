"""Running the server app under uvicorn, alone or with companions.

Companions are tasks that start once the server accepts requests: the demo's
simulated PBX and Teams users, and, with `--graph emulator`, the provisioning of
the hub's users into the embedded emulator's directory.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import uvicorn
from fastapi import FastAPI
from pydantic import SecretStr

from presencebridge.api.app import create_app
from presencebridge.config import Settings
from presencebridge.emulator.server import EmbeddedEmulator
from presencebridge.logs import setup_logging
from presencebridge.service.hub import Hub

log = logging.getLogger(__name__)

EMBEDDED_TENANT = "presencebridge-local"


@dataclass(frozen=True)
class Runtime:
    """What companions get to work with."""

    base_url: str
    admin_token: str
    app: FastAPI
    emulator: EmbeddedEmulator | None


Companion = Callable[[Runtime], Coroutine[Any, Any, None]]


def with_embedded_graph(settings: Settings, emulator: EmbeddedEmulator) -> Settings:
    """The settings pointed at the embedded emulator, as an admin would set them."""
    return settings.model_copy(
        update={
            "graph_url": emulator.graph_url,
            "authority": emulator.authority,
            "ca_bundle": emulator.ca_file,
            "tenant_id": EMBEDDED_TENANT,
            "client_id": settings.client_id or str(uuid.uuid4()),
            "client_secret": settings.client_secret or SecretStr(secrets.token_urlsafe(24)),
        }
    )


async def provision_emulator_users(runtime: Runtime) -> None:
    """Every hub user with a Teams id also exists in the embedded emulator's tenant."""
    assert runtime.emulator is not None
    emulator = runtime.emulator.emulator
    hub: Hub = runtime.app.state.hub
    listener = hub.bus.listen()
    try:
        for user_id in hub.user_ids():
            teams_id = hub.user(user_id).state.user.teams_user_id
            if teams_id is not None:
                emulator.create_user(teams_id, None, False)
        while True:
            change = await listener.next()
            if change.presence is None:
                continue  # deleted: nothing to provision
            teams_id = hub.user(change.user_id).state.user.teams_user_id
            if teams_id is not None and emulator.find_user(teams_id) is None:
                emulator.create_user(teams_id, None, False)
    finally:
        hub.bus.leave(listener)


async def serve(
    settings: Settings,
    companions: tuple[Companion, ...] = (),
    graph_emulator: bool = False,
) -> None:
    """Serve until interrupted."""
    setup_logging(settings.log_level, settings.log_format)
    embedded: EmbeddedEmulator | None = None
    if graph_emulator:
        embedded = EmbeddedEmulator(settings.data_dir / "emulator-tls")
        await embedded.start()
        settings = with_embedded_graph(settings, embedded)
        companions = (provision_emulator_users, *companions)
        log.info("embedded Graph emulator at %s", embedded.base_url)
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        # Behind a reverse proxy (docs/deploy.md): X-Forwarded-Proto and -For are
        # believed from 127.0.0.1 and ::1 only (uvicorn's FORWARDED_ALLOW_IPS widens
        # that), so redirects keep https and the access log shows the real client.
        proxy_headers=True,
        ws_max_size=settings.max_body_bytes,
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)
    tasks: list[asyncio.Task[None]] = []
    assert settings.admin_token is not None

    async def start_companions() -> None:
        while not server.started:
            if server.should_exit:
                return
            await asyncio.sleep(0.05)
        runtime = Runtime(
            f"http://{settings.host}:{settings.port}",
            settings.admin_token.get_secret_value() if settings.admin_token else "",
            app,
            embedded,
        )
        for companion in companions:
            tasks.append(asyncio.create_task(companion(runtime)))

    starter = asyncio.create_task(start_companions())
    try:
        await server.serve()
    finally:
        starter.cancel()
        for task in tasks:
            task.cancel()
        await asyncio.gather(starter, *tasks, return_exceptions=True)
        if embedded is not None:
            await embedded.stop()
