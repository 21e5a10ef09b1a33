"""The console's error pages: an unknown URL or a wrong method under the console is an
HTML page with the menu, in the reader's language, not the API's JSON; so is a server
error (a fault no form foresaw), which would otherwise be a bare "Internal Server Error".

The API (`/api/`), the Graph webhook, the probes and anything that asks for JSON keep
the API's JSON answers: the handler the API installed answers those as before.
"""

from __future__ import annotations

from collections.abc import Awaitable

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse, Response
from starlette.exceptions import HTTPException

from presencebridge import metrics
from presencebridge.web import security
from presencebridge.web.page import PAGE_NOT_FOUND, Page, wants_json

# Paths that are not the console's (ConsoleSessions.BYPASS and the API's static files).
NOT_CONSOLE = (
    "/api/",
    "/graph/",
    "/healthz",
    "/metrics",
    "/console/static/",
    "/docs",
    "/redoc",
    "/openapi",
)


def is_console(request: Request) -> bool:
    """A request a person's browser makes for a console page."""
    return not request.url.path.startswith(NOT_CONSOLE) and not wants_json(request)


def install(app: FastAPI) -> None:
    """Answer HTTP errors of console pages with an HTML page; the rest as before."""
    previous = app.exception_handlers.get(HTTPException)

    async def http_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, HTTPException)
        if not is_console(request) or error.status_code >= 500:
            if previous is None:
                raise error
            answer = previous(request, error)
            return await answer if isinstance(answer, Awaitable) else answer
        if 400 <= error.status_code < 500:
            metrics.REJECTED_REQUESTS.labels(str(error.status_code)).inc()
        await security.console_session(request)  # the menu, for a signed-in reader
        page = Page(request)
        if error.status_code == 404:
            message = page._("There is no page at this address: %(path)s") % {
                "path": request.url.path
            }
            return page.problem(404, message, PAGE_NOT_FOUND)
        if error.status_code == 405:
            message = page._(
                "This address takes a form, it cannot be opened as a page. Go back to the "
                "page the form was on."
            )
            return page.problem(405, message)
        return page.problem(error.status_code, page._("The request could not be handled."))

    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, server_error)


async def server_error(request: Request, error: Exception) -> Response:
    """A fault no handler foresaw (Starlette still logs it): a console page says so in the
    reader's language, with the menu; anything else gets the usual plain 500."""
    if not is_console(request):
        return PlainTextResponse("Internal Server Error", 500)
    try:
        page = Page(request)
        message = page._(
            "Something went wrong on the server: what you sent was not saved. Go back and "
            "try again; if it happens again, tell your administrator (the server log says more)."
        )
        return page.problem(500, message)
    except Exception:  # the page itself cannot be made: the plain answer
        return PlainTextResponse("Internal Server Error", 500)
