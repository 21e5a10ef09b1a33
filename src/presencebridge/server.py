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
from typing import Any, TypeVar

import uvicorn
from fastapi import FastAPI
from pydantic import SecretStr

from presencebridge.api.app import create_app
from presencebridge.config import Settings, SignInConfig
from presencebridge.core.model import User
from presencebridge.emulator.identity import issuer_for, tenant_id
from presencebridge.emulator.server import EmbeddedEmulator
from presencebridge.emulator.state import Emulator
from presencebridge.logs import setup_logging
from presencebridge.service.hub import Hub

log = logging.getLogger(__name__)
T = TypeVar("T")

EMBEDDED_TENANT = "presencebridge-local"
# The console's app at the embedded emulator's Entra ID (a public client: PKCE, no secret),
# and the app role that makes an administrator there.
CONSOLE_APP = "presencebridge-console"
CONSOLE_ADMIN_ROLE = "PresenceBridge.Admin"


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


def with_embedded_sign_in(settings: Settings, emulator: EmbeddedEmulator) -> Settings:
    """Unless `[sign_in]` names a provider: everyone signs in at the embedded emulator's
    Entra ID, where the console is registered as an app."""
    if settings.sign_in is not None:
        return settings
    base = (settings.public_url or f"http://{settings.host}:{settings.port}").rstrip("/")
    emulator.emulator.identity.register_app(
        CONSOLE_APP, None, (f"{base}/console/sso/callback",), (f"{base}/console/login",)
    )
    issuer = issuer_for(emulator.authority, tenant_id(EMBEDDED_TENANT))
    sign_in = SignInConfig(
        issuer=issuer,
        client_id=CONSOLE_APP,
        admin_roles=[CONSOLE_ADMIN_ROLE],
        label="Entra ID (Graph emulator)",
    )
    return settings.model_copy(update={"sign_in": sign_in})


async def provision_emulator_users(runtime: Runtime) -> None:
    """Every hub user with a Teams id also exists in the embedded emulator's tenant."""
    assert runtime.emulator is not None
    emulator = runtime.emulator.emulator
    hub: Hub = runtime.app.state.hub
    listener = hub.bus.listen()
    try:
        for user_id in hub.user_ids():
            _provision(emulator, hub.user(user_id).state.user)
        while True:
            change = await listener.next()
            if change.presence is None:
                continue  # deleted: nothing to provision
            _provision(emulator, hub.user(change.user_id).state.user)
    finally:
        hub.bus.leave(listener)


def _provision(emulator: Emulator, user: User) -> None:
    """The user in the emulator's tenant, signing in with their e-mail address as UPN."""
    if user.teams_user_id is None or emulator.find_user(user.teams_user_id) is not None:
        return
    upn = user.email if user.email and emulator.find_user(user.email) is None else None
    emulator.create_user(user.teams_user_id, upn, False)


def run_loop(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run the server's coroutine on uvloop (uvicorn[standard] brings it): its sockets and
    callbacks cost about half of asyncio's own loop per request (docs/benchmarks.md)."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop comes with uvicorn[standard]
        return asyncio.run(coroutine)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coroutine)


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
        settings = with_embedded_sign_in(with_embedded_graph(settings, embedded), embedded)
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
