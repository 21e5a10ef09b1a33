"""The web console: presence board and administration, server-rendered, German and English.

`mount_console(app, settings)` adds everything to the server's app:

* `/` the presence board, `/console/...` the other pages, their forms and static files;
* the signed session cookie (see `security`) and CSRF checks on every POST;
* `/console/stream`, the presence stream for the board, authenticated by the session
  (the API's `/api/v1/presence/stream` keeps taking bearer tokens exactly as before);
* a small sampler of the Graph budget for the sync-health page.

Layout: `pages/` (one module per page, with its forms), `forms.py` (the common opening
of every handler: sign-in, CSRF, form parsing, validation messages), `errors.py` (the
console's error pages: an unknown URL, a server error), `page.py` (a
request's language and rendering), `security.py`, `i18n.py` (Babel/gettext, the
catalogues in `locale/`), `health.py`, `labels.py`, `templates/`, `static/`.

The console uses the API's public parts only (`api.stream`, `api.auth`, `api.schemas`,
`api.views`); it never imports `api.app`, which mounts it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.middleware.sessions import SessionMiddleware
from starlette.routing import WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from presencebridge.api.stream import presence_stream
from presencebridge.config import Settings
from presencebridge.web import errors, forms, security
from presencebridge.web.health import HealthMonitor
from presencebridge.web.pages import router

STATIC = Path(__file__).parent / "static"

__all__ = ["mount_console"]


class ConsoleStream:
    """The board's WebSocket: the API's presence stream, for a signed-in console session.

    The browser never holds the admin token (the session cookie is HttpOnly). This
    endpoint checks the session and the Origin, then runs the API's own stream
    (`api.stream`) for the session's principal (every signed-in person sees the whole
    board, read-only), so both streams send exactly the same messages.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        websocket = WebSocket(scope, receive, send)
        if not security.same_origin(websocket):
            await websocket.close(code=1008, reason="cross-origin WebSocket refused")
            return
        found = await security.console_session(websocket)
        if found is None:
            # Accept first so the page can tell "sign in again" from a network failure.
            await websocket.accept()
            await websocket.close(code=1008, reason="not signed in")
            return
        who = security.principal_of(found)
        assert who is not None
        await presence_stream(websocket, who)


class ConsoleSessions(SessionMiddleware):
    """Sessions for the console's pages only: the API, the webhook and the probes use
    bearer tokens (or none), and skip the cookie parsing and signing per request."""

    BYPASS = ("/api/", "/graph/", "/healthz", "/metrics")

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket") and scope["path"].startswith(self.BYPASS):
            await self.app(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def mount_console(app: FastAPI, settings: Settings) -> None:
    """Serve the console from `app` (call once, before the app starts)."""
    if settings.admin_token is None:
        raise ValueError("the console needs PRESENCEBRIDGE_ADMIN_TOKEN")
    secret = security.session_secret(settings.admin_token.get_secret_value())
    app.add_middleware(
        ConsoleSessions,
        secret_key=secret,
        session_cookie=security.SESSION_COOKIE,
        max_age=security.SESSION_MAX_AGE,
        same_site="lax",
    )
    app.include_router(router)
    forms.install(app)
    errors.install(app)
    app.router.routes.append(WebSocketRoute("/console/stream", ConsoleStream()))
    app.mount("/console/static", StaticFiles(directory=STATIC), name="console-static")

    monitor = HealthMonitor()
    app.state.console_health = monitor
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(running: Any) -> AsyncIterator[Any]:
        async with inner(running) as state:
            monitor.start(running.state)
            try:
                yield state
            finally:
                await monitor.stop()

    app.router.lifespan_context = lifespan
