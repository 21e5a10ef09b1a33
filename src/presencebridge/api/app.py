"""The server's ASGI app: REST, the presence stream, health and metrics."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import asdict
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException  # FastAPI's and Starlette's own (404, 405, 400)

from presencebridge import __version__, bootstrap, metrics
from presencebridge.adapters.store import Unstorable
from presencebridge.api.access import check_complete
from presencebridge.api.agent import router as agent_router
from presencebridge.api.cluster import BODY, ForwardToOwner
from presencebridge.api.cluster import install as install_cluster
from presencebridge.api.outgoing import router as outgoing_router
from presencebridge.api.routes import router
from presencebridge.api.stream import router as stream_router
from presencebridge.api.telephony import TelephonyFastPath
from presencebridge.api.usercsv import router as csv_router
from presencebridge.api.webhook import router as webhook_router
from presencebridge.config import Settings
from presencebridge.core.errors import Reason, Rejected
from presencebridge.core.model import ID_RULE
from presencebridge.core.ports import ConnectorHealth
from presencebridge.service.connectors import Connectors
from presencebridge.service.hub import Hub
from presencebridge.web import mount_console

log = logging.getLogger(__name__)

REJECTION_STATUS = {
    Reason.NOT_FOUND: 404,
    Reason.CONFLICT: 409,
    Reason.INVALID: 422,
    Reason.FORBIDDEN: 403,
}

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class BodyLimit:
    """Refuses request bodies above a size with 413 before any handler sees them."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = scope[BODY] = b"".join(chunks)  # read once; ForwardToOwner reuses it
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        metrics.REJECTED_REQUESTS.labels("413").inc()
        response = JSONResponse(
            {"detail": f"request body larger than {self.max_bytes} bytes", "code": "too_large"},
            status_code=413,
        )
        await response(scope, receive, send)


def _validation_message(error: RequestValidationError) -> tuple[int, str]:
    problems = []
    for item in error.errors():
        if item.get("type") == "json_invalid":
            return 400, f"malformed JSON: {item.get('ctx', {}).get('error', 'cannot parse body')}"
        location = [str(p) for p in item.get("loc", ()) if p != "body"]
        where = ".".join(location) or "body"
        message = item.get("msg", "invalid")
        if location[:1] == ["path"] and item.get("type") == "string_pattern_mismatch":
            message = f"not a valid id ({ID_RULE}); docs/rules.md"
        problems.append(f"{where}: {message}")
    return 422, "; ".join(problems)


_ID_PARAMETERS = {b"users": "user_id", b"groups": "group"}


def _slash_in_id(scope: Scope) -> str | None:
    """The id parameter whose path segment held an encoded `/` (no route can match it)."""
    parts = (scope.get("raw_path") or b"").split(b"/")
    if len(parts) > 4 and parts[1:3] == [b"api", b"v1"] and b"%2f" in parts[4].lower():
        return _ID_PARAMETERS.get(parts[3])
    return None


def _lifespan(
    settings: Settings, hub: Hub | None
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Start-up and shut-down: `bootstrap` runs the application; the app keeps its parts."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            async with bootstrap.running(settings, hub) as running:
                app.state.hub = running.hub
                app.state.cluster = running.cluster
                app.state.teams_sync = running.teams_sync
                app.state.directories = running.directories
                app.state.connectors = running.connectors
                app.state.notify = running.notify
                app.state.agents = running.agents
                app.state.sign_ins = running.sign_ins
                app.state.oidc = running.oidc
                yield
        finally:
            await app.state.forward_client.aclose()

    return lifespan


def _install_error_handlers(app: FastAPI) -> None:
    """One JSON shape for every refusal, counted by status."""

    @app.exception_handler(Rejected)
    async def rejected(_request: Request, error: Rejected) -> JSONResponse:
        code = REJECTION_STATUS[error.reason]
        metrics.REJECTED_REQUESTS.labels(str(code)).inc()
        return JSONResponse({"detail": error.message, "code": error.reason.value}, code)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, error: RequestValidationError) -> JSONResponse:
        code, message = _validation_message(error)
        metrics.REJECTED_REQUESTS.labels(str(code)).inc()
        kind = "malformed_json" if code == 400 else "invalid"
        return JSONResponse({"detail": message, "code": kind}, code)

    @app.exception_handler(Unstorable)
    async def unstorable(_request: Request, error: Unstorable) -> JSONResponse:
        metrics.REJECTED_REQUESTS.labels("422").inc()
        return JSONResponse({"detail": f"{error}; nothing was changed", "code": "invalid"}, 422)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> JSONResponse:
        parameter = _slash_in_id(request.scope) if error.status_code == 404 else None
        if parameter is not None:  # /users/a%2Fb/...: refused by the id's rules, say so
            metrics.REJECTED_REQUESTS.labels("422").inc()
            detail = f"path.{parameter}: not a valid id ({ID_RULE}); docs/rules.md"
            return JSONResponse({"detail": detail, "code": "invalid"}, 422)
        if 400 <= error.status_code < 500:
            metrics.REJECTED_REQUESTS.labels(str(error.status_code)).inc()
        return JSONResponse(
            {"detail": error.detail, "code": f"http_{error.status_code}"},
            error.status_code,
            headers=error.headers,
        )


def _connector_health(request: Request) -> list[ConnectorHealth]:
    connectors: Connectors | None = request.app.state.connectors
    return [] if connectors is None else connectors.health()


def create_app(settings: Settings, hub: Hub | None = None) -> FastAPI:
    """The server app; `bootstrap` wires (and runs) the rest from `settings`, around the
    given hub or one of its own."""
    if settings.admin_token is None:
        raise ValueError("PRESENCEBRIDGE_ADMIN_TOKEN must be set")

    app = FastAPI(
        title="presencebridge",
        version=__version__,
        description="Presence hub between Microsoft Teams and a PBX / UC system.",
        lifespan=_lifespan(settings, hub),
    )
    app.state.settings = settings
    app.state.admin_token = settings.admin_token.get_secret_value()
    app.include_router(router)
    app.include_router(csv_router)
    app.include_router(webhook_router)
    app.include_router(agent_router)
    app.include_router(outgoing_router)
    app.state.notify = None
    app.state.directories = {}
    app.state.connectors = None
    app.state.cluster = None
    app.state.forward_client = httpx.AsyncClient(timeout=30)
    install_cluster(app)
    if settings.clustered:
        app.add_middleware(ForwardToOwner, node=settings.node_name())
    # Inside BodyLimit (it reads the body): PBX events skip FastAPI's routing.
    app.add_middleware(TelephonyFastPath)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)

    _install_error_handlers(app)

    @app.get("/healthz", include_in_schema=True)
    async def healthz(request: Request) -> dict[str, Any]:
        hub_: Hub = request.app.state.hub
        connectors = _connector_health(request)
        return {
            "status": "ok",
            "users": len(hub_.user_ids()),
            "version": __version__,
            "connectors": [asdict(c) for c in connectors],
        }

    @app.get("/metrics", response_class=PlainTextResponse)
    async def prometheus(request: Request) -> Response:
        _connector_health(request)  # sets the connectors' `up` gauges
        return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)

    mount_console(app, settings)

    @app.get("/robots.txt", include_in_schema=False)
    async def robots() -> PlainTextResponse:
        return PlainTextResponse("User-agent: *\nDisallow: /\n")

    app.include_router(stream_router)
    # Every route has its row in the authorisation table (else no start).
    app.state.route_keys = check_complete(app.router.routes)
    return app
