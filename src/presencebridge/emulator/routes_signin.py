"""The web sign-in's paths: /{tenant}/oauth2/v2.0/authorize (page and form) and /logout.

A browser (or a test following redirects by hand) sees what Entra shows in outline: a
sign-in page asking for the user name, then a 302 back to the app with `code` and
`state`. The emulator keeps a session cookie, so a second sign-in (or `prompt=none`)
goes through without the page, and /logout ends it.
"""

from __future__ import annotations

import html
import uuid
from collections.abc import Mapping
from urllib.parse import parse_qsl, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from presencebridge.emulator.identity import tenant_id
from presencebridge.emulator.routing import State
from presencebridge.emulator.signin import AuthRequest, PageError, RedirectError, Session
from presencebridge.emulator.state import Emulator

router = APIRouter()

SESSION_COOKIE = "ESTSAUTH"  # the name of Entra's own session cookie
QUICK_PICKS = 20  # users offered as buttons; the field takes any
PAGE_HEADERS = {"Cache-Control": "no-store", "Pragma": "no-cache", "X-Frame-Options": "DENY"}
_STYLE = "font-family: sans-serif; max-width: 30em; margin: 3em auto"


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    document = (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title></head>\n"
        f'<body style="{_STYLE}">\n<h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n'
    )
    return HTMLResponse(document, status, headers=PAGE_HEADERS)


def _error_page(error: PageError) -> HTMLResponse:
    return _page(
        "Sorry, but we're having trouble signing you in.",
        f'<p id="error">{html.escape(error.text)}</p>',
        error.status,
    )


def _back(redirect_uri: str, mode: str, params: Mapping[str, str | None]) -> Response:
    """The answer to the app, in the response mode it asked for."""
    values = {k: v for k, v in params.items() if v is not None}
    if mode == "form_post":
        fields = "\n".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">'
            for k, v in values.items()
        )
        body = (
            f'<form method="post" action="{html.escape(redirect_uri)}">\n{fields}\n'
            "<noscript><button>Continue</button></noscript></form>\n"
            "<script>document.forms[0].submit()</script>"
        )
        return _page("Working...", body)
    separator = "#" if mode == "fragment" else ("&" if "?" in redirect_uri else "?")
    return RedirectResponse(redirect_uri + separator + urlencode(values), 302,
                            headers=PAGE_HEADERS)  # fmt: skip


def _refused(error: RedirectError) -> Response:
    params = {"error": error.error, "error_description": error.description, "state": error.state}
    return _back(error.redirect_uri, error.response_mode, params)


def _with_code(
    state: Emulator, request: AuthRequest, user_id: str, session: Session | None
) -> Response:
    code = state.identity.web.issue_code(
        request, user_id, session.id if session else None, state.now()
    )
    params = {
        "code": code,
        "state": request.state,
        "session_state": session.id if session else None,
    }
    return _back(request.redirect_uri, request.response_mode, params)


def _sign_in_page(
    state: Emulator, request: AuthRequest, key: str, message: str | None, status: int
) -> HTMLResponse:
    action = f"/{request.tenant}/oauth2/v2.0/authorize"
    hint = html.escape(request.login_hint or "")
    picks = "".join(
        f'<li><button name="pick" value="{html.escape(u.upn)}">{html.escape(u.upn)}</button></li>'
        for u in list(state.users.values())[:QUICK_PICKS]
    )
    error = f'<p id="error" role="alert">{html.escape(message)}</p>\n' if message else ""
    body = (
        f"{error}<p>Sign in to continue to application {html.escape(request.client_id)}.</p>\n"
        f'<form method="post" action="{html.escape(action)}">\n'
        f'<input type="hidden" name="ctx" value="{html.escape(key)}">\n'
        f'<p><label>Email, phone, or Skype <input name="login" type="email" value="{hint}" '
        "autofocus></label></p>\n"
        '<p><button type="submit">Sign in</button></p>\n'
        + (f"<p>Or pick an account:</p><ul>{picks}</ul>\n" if picks else "")
        + "</form>"
    )
    return _page("Sign in", body, status)


def _params(request: Request) -> dict[str, str]:
    return dict(request.query_params)


@router.get("/{tenant}/oauth2/v2.0/authorize")
async def authorize(tenant: str, request: Request, state: State) -> Response:
    identity = state.identity
    now = state.now()
    try:
        auth = identity.web.check(_params(request), tenant, tenant_id(tenant))
    except PageError as error:
        return _error_page(error)
    except RedirectError as error:
        return _refused(error)
    session = identity.web.session(request.cookies.get(SESSION_COOKIE), auth.tid, now)
    hint = (auth.login_hint or "").lower()
    if session is not None and hint and hint != session.upn.lower():
        session = None  # the app asks for another account than the one signed in
    if session is not None:
        profile = state.profile(session.user_id)
        if profile is None or not profile.enabled:  # deleted or disabled since
            identity.web.end_session(session.id)
            session = None
    if auth.prompt == "none" and session is None:
        return _refused(
            RedirectError(
                auth.redirect_uri,
                auth.response_mode,
                auth.state,
                "login_required",
                "A silent sign-in request was sent but no user is signed in.",
                50058,
            )
        )
    if session is not None and auth.prompt in (None, "none"):
        return _with_code(state, auth, session.user_id, session)
    return _sign_in_page(state, auth, identity.web.wait_for_user(auth, now), None, 200)


@router.post("/{tenant}/oauth2/v2.0/authorize")
async def sign_in(tenant: str, request: Request, state: State) -> Response:
    """The sign-in page's form: `ctx` names the waiting request, `login` / `pick` the user."""
    body = (await request.body()).decode("utf-8", "replace")
    form = dict(parse_qsl(body, keep_blank_values=True))
    now = state.now()
    web = state.identity.web
    key = form.get("ctx", "")
    auth = web.waiting(key, now)
    if auth is None:
        return _error_page(
            PageError(
                0,
                "This sign-in page has expired or is unknown. Start the sign-in again from "
                "the application.",
            )
        )
    login = (form.get("pick") or form.get("login") or "").strip()
    profile = state.profile(login) if login else None
    if profile is None or profile.upn.lower() != login.lower():
        message = (
            f"AADSTS50034: The user account {login or '(empty)'} does not exist in the "
            f"{auth.tenant} directory. To sign into this application, the account must be "
            "added to the directory."
        )
        return _sign_in_page(state, auth, key, message, 400)
    if not profile.enabled:
        message = "AADSTS50057: The user account is disabled."
        return _sign_in_page(state, auth, key, message, 400)
    web.pending.pop(key, None)
    session = web.start_session(profile, auth.tid, now)
    response = _with_code(state, auth, profile.user_id, session)
    response.set_cookie(
        SESSION_COOKIE, session.id, secure=True, httponly=True, samesite="none", path="/"
    )
    return response


@router.get("/{tenant}/oauth2/v2.0/logout")
async def logout(tenant: str, request: Request, state: State) -> Response:
    """Ends the emulator's session; back to the app only to a URI registered for it."""
    identity = state.identity
    params = _params(request)
    identity.web.end_session(request.cookies.get(SESSION_COOKIE))
    target = params.get("post_logout_redirect_uri")
    client_id = params.get("client_id") or identity.client_of_hint(params.get("id_token_hint", ""))
    app = identity.web.apps.get(client_id or "")
    response: Response
    # Entra accepts any redirect URI of the app here; the post-logout ones are extra.
    allowed = () if app is None else (*app.post_logout_redirect_uris, *app.redirect_uris)
    if target and target in allowed:
        extra = {"state": params["state"]} if "state" in params else {}
        separator = "&" if "?" in target else "?"
        url = target + (separator + urlencode(extra) if extra else "")
        response = RedirectResponse(url, 302, headers=PAGE_HEADERS)
    else:
        response = _page(
            "You signed out of your account",
            "<p>It's a good idea to close all browser windows.</p>\n"
            f'<p hidden id="correlation">{uuid.uuid4()}</p>',
        )
    response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="none")
    return response
