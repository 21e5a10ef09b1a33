"""One console request: its language, formats, CSRF token and rendering; redirects.

Every page module (`pages/`) renders through `Page`, so every console response
carries the same security headers and the same template context.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, unquote, urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse

from presencebridge import __version__
from presencebridge.api.schemas import LIMITS
from presencebridge.core.errors import Reason, Rejected
from presencebridge.core.model import Status, TeamsSyncMode
from presencebridge.core.texts import render
from presencebridge.service.hub import Hub
from presencebridge.web import labels, security
from presencebridge.web.i18n import (
    LANG_COOKIE,
    TZ_COOKIE,
    Formats,
    choose_language,
    environment,
    gettext,
    zone,
)

STATUSES = [s.value for s in Status]
MODES = [m.value for m in TeamsSyncMode]
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
        "base-uri 'none'; form-action 'self'"
    ),
}
LOGIN_PATH = "/console/login"
SESSION_ENDED = "ended"  # the sign-in page's query parameter: say the session has ended
# Each error page's heading and title by status (`Page.problem`).
PROBLEM_HEADING = labels.N_("That did not work")
PROBLEM_HEADINGS = {
    400: labels.N_("Request not understood"),
    403: labels.N_("Not allowed"),
    404: labels.N_("Not found"),
    405: labels.N_("Not possible this way"),
    409: labels.N_("Conflict"),
    413: labels.N_("Too large"),
    422: labels.N_("Not possible"),
    500: labels.N_("Server error"),
    502: labels.N_("Service unreachable"),
    503: labels.N_("Service unavailable"),
}
PAGE_NOT_FOUND = labels.N_("Page not found")
REJECTION_STATUS = {
    Reason.NOT_FOUND: 404,
    Reason.CONFLICT: 409,
    Reason.INVALID: 422,
    Reason.FORBIDDEN: 403,
}


class Page:
    """One request's language, formats, CSRF token and rendering."""

    def __init__(self, request: Request) -> None:
        self.request = request
        settings = request.app.state.settings
        self.lang = choose_language(
            request.cookies.get(LANG_COOKIE),
            request.headers.get("accept-language"),
            settings.language,
        )
        self.fmt = Formats(self.lang, zone(unquote(request.cookies.get(TZ_COOKIE) or "")))
        self._ = gettext(self.lang)

    @property
    def is_admin(self) -> bool:
        found = security.known_session(self.request)
        return found is not None and found.is_admin

    @property
    def own_user(self) -> str | None:
        """The hub user the signed-in person is (None: nobody signed in, or an
        administrator who is no hub user)."""
        found = security.known_session(self.request)
        return None if found is None else found.user_id

    @property
    def hub(self) -> Hub:
        hub: Hub = self.request.app.state.hub
        return hub

    def label(self, kind: str, value: str | None) -> str:
        return labels.label(kind, value, self._)

    def rejection(self, error: Rejected) -> str:
        """The hub's refusal in this page's language."""
        return labels.rejection(error, self._)

    def flash(self, message: str, kind: str = "ok") -> None:
        # Assigned, not appended in place: the session saves only what is assigned, so a
        # second message while one is pending would otherwise be lost.
        data = security.session(self.request)
        data["flash"] = [*data.get("flash", []), [kind, message]]

    def render(self, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        request = self.request
        flashes = security.session(request).pop("flash", [])
        html = (
            environment(self.lang)
            .get_template(template)
            .render(
                csrf=security.csrf_token(request),
                signed_in=security.signed_in(request),
                me=security.known_session(request),
                is_admin=self.is_admin,
                here=security.safe_next(here(request)),
                flashes=flashes,
                fmt=self.fmt,
                tzname=getattr(self.fmt.tz, "key", "UTC"),
                label=self.label,
                render_text=lambda text: render(text, self.lang),
                version=__version__,
                q=quote,
                limits=LIMITS,
                **context,
            )
        )
        return HTMLResponse(html, status_code, headers=SECURITY_HEADERS)

    def confirm(
        self,
        heading: str,
        message: str,
        action: str,
        fields: dict[str, str],
        cancel: str,
        note: str | None = None,
        nav: str | None = None,
        button: str | None = None,
    ) -> HTMLResponse:
        """The second step before deleting: what goes, a button (`button`, else
        "Delete") that sends the form again with `confirm=yes`, and a way back (no
        JavaScript needed)."""
        return self.render(
            "confirm.html",
            heading=heading,
            message=message,
            note=note,
            action=action,
            fields=fields,
            button=button or self._("Delete"),
            cancel=security.safe_next(cancel),
            nav=nav,
        )

    def problem(self, status_code: int, message: str, heading: str | None = None) -> HTMLResponse:
        """An error page: its heading (and title) says what kind of problem, `message` what."""
        title = self._(heading or PROBLEM_HEADINGS.get(status_code, PROBLEM_HEADING))
        return self.render("problem.html", status_code, message=message, heading=title, nav=None)


def here(request: Request) -> str:
    """The page to come back to (language switch): this page, or the form's page after a POST."""
    if request.method == "GET":
        query = request.url.query
        return request.url.path + (f"?{query}" if query else "")
    referer = urlsplit(request.headers.get("referer", ""))
    if referer.netloc and referer.netloc == request.headers.get("host"):
        return referer.path + (f"?{referer.query}" if referer.query else "")
    return "/"


def to_login(request: Request) -> RedirectResponse:
    """To the sign-in page, and from there back to this page; the sign-in page says
    why when the browser's session ended (`security.session_lost`)."""
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if security.session_lost(request):
        return login_again(path)
    target = LOGIN_PATH + ("" if path == "/" else f"?next={quote(path, safe='')}")
    return RedirectResponse(target, 303, headers=SECURITY_HEADERS)


def login_again(target: str, ended: bool = True) -> RedirectResponse:
    """To the sign-in page (saying the session has ended), then back to `target`."""
    query = [f"{SESSION_ENDED}=1"] if ended else []
    query += [] if target == "/" else [f"next={quote(target, safe='')}"]
    return RedirectResponse(
        LOGIN_PATH + ("?" + "&".join(query) if query else ""), 303, headers=SECURITY_HEADERS
    )


def back(target: str) -> RedirectResponse:
    return RedirectResponse(security.safe_next(target), 303, headers=SECURITY_HEADERS)


def wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "") or bool(
        request.headers.get(security.CSRF_HEADER)
    )


def rejection_status(error: Rejected) -> int:
    return REJECTION_STATUS[error.reason]


def path_part(value: str) -> str:
    """`value` quoted as one segment of a console URL."""
    return quote(value, safe="")
