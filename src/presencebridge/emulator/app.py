"""The emulator's ASGI app: identity provider, Graph under /v1.0, control API under /_emulator.

`create_app` only assembles; the paths live in routers, included in this order:

    routes_identity.py       /{tenant}/... OpenID configuration, JWKS, token, device code,
                             home-realm discovery; /devicelogin
    routes_signin.py         /{tenant}/oauth2/v2.0/authorize (sign-in page) and /logout
    routes_graph.py          /v1.0/{path} into `graph.GraphApi` (presence reads, presence
                             writes, subscriptions, $batch)
    routes_control.py        /_emulator health, device approval, apps and their role
                             assignments, clock, faults, stats, reset
    routes_users.py          /_emulator/users: users, their Teams client, preferred presence
    routes_subscriptions.py  /_emulator/subscriptions: list, lifecycle events, drop
    routes_directory.py      /_emulator/directory: Entra ID users' attributes, groups, faults

The identity routes come before Graph's catch-all, as they always have: a path such as
/v1.0/discovery/v2.0/keys is therefore the identity provider's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from presencebridge import __version__
from presencebridge.emulator import (
    routes_control,
    routes_directory,
    routes_graph,
    routes_identity,
    routes_signin,
    routes_subscriptions,
    routes_users,
)
from presencebridge.emulator.graph import GraphApi
from presencebridge.emulator.identity import TokenSigner
from presencebridge.emulator.routing import problem
from presencebridge.emulator.state import Emulator

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

ROUTERS = (
    routes_identity.router,
    routes_signin.router,
    routes_graph.router,
    routes_control.router,
    routes_users.router,
    routes_subscriptions.router,
    routes_directory.router,
)


class CountRequests:
    """Counts non-Graph requests per `METHOD path-template` (Graph counts its own)."""

    def __init__(self, app: ASGIApp, emulator: Emulator) -> None:
        self.app = app
        self.emulator = emulator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/v1.0/"):
            await self.app(scope, receive, send)
            return
        status = 500

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", "(unknown)")
            stats = self.emulator.stats
            stats.requests[f"{scope['method']} {template}"] += 1
            stats.statuses[str(status)] += 1


def _validation_detail(error: RequestValidationError) -> tuple[int, str]:
    problems = []
    for item in error.errors():
        if item.get("type") == "json_invalid":
            return 400, "malformed JSON body"
        where = ".".join(str(p) for p in item.get("loc", ()) if p != "body") or "body"
        problems.append(f"{where}: {item.get('msg', 'invalid')}")
    return 422, "; ".join(problems)


async def _invalid(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    status, detail = _validation_detail(error)
    return problem(status, detail, "malformed_json" if status == 400 else "invalid")


async def _http_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, HTTPException)
    return problem(error.status_code, str(error.detail), f"http_{error.status_code}")


def create_app(
    *,
    signing_key: rsa.RSAPrivateKey | None = None,
    strict: bool = False,
    emulator: Emulator | None = None,
) -> FastAPI:
    """The emulator app. Pass an `Emulator` to control it in-process, or a signing key
    (kept across restarts by the server) to have one made; a fresh key otherwise."""
    if emulator is None:
        key = signing_key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
        emulator = Emulator(TokenSigner(key), strict=strict)
    state = emulator

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await state.start()
        try:
            yield
        finally:
            await state.stop()

    app = FastAPI(
        title="presencebridge Graph emulator",
        version=__version__,
        description="Microsoft Graph presence and Entra ID sign-in, emulated (GRAPH.md).",
        lifespan=lifespan,
    )
    app.state.emulator = state
    app.state.graph = GraphApi(state)
    app.add_middleware(CountRequests, emulator=state)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(HTTPException, _http_error)
    for router in ROUTERS:
        app.include_router(router)
    return app
