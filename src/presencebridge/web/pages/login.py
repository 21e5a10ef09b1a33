"""Sign-in (single sign-on at the OpenID Connect provider, or the break-glass admin
token), sign-out and the language switch: the console's only forms without a session."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import Response

from presencebridge import metrics
from presencebridge.adapters.oidc import Flow, ProviderUnavailable, SignInRefused
from presencebridge.core.signin import person_from_claims
from presencebridge.service.sign_in import ADMIN_TOKEN, OIDC, ConsoleSession, NoHubUser, SignIns
from presencebridge.web import security, signin_page
from presencebridge.web.forms import SESSION_ENDED_NOTICE, PostedAnonymously
from presencebridge.web.i18n import LANG_COOKIE
from presencebridge.web.page import SECURITY_HEADERS, SESSION_ENDED, Page, back
from presencebridge.web.signin_page import (
    KEPT,
    REPLAY,
    REPLAY_ACTION,
    admin_token_allowed,
    oidc_of,
    replay_of,
    settings_of,
)

router = APIRouter(include_in_schema=False)
CALLBACK = "/console/sso/callback"
FLOW_KEY = "sso"


def _sign_ins(request: Request) -> SignIns:
    sign_ins: SignIns = request.app.state.sign_ins
    return sign_ins


def _base_url(request: Request) -> str:
    """Where the provider sends the browser back to: the configured public URL, else
    the address this request came to."""
    public = settings_of(request).public_url
    return (public or str(request.base_url)).rstrip("/")


@router.get("/console/login")
async def login_page(request: Request, next: str | None = None) -> Response:
    page = Page(request)
    if await security.console_session(request) is not None:
        return back(next or "/")
    security.session(request).pop(KEPT, None)  # a sign-in page of its own carries no form
    notice = None
    if request.query_params.get(SESSION_ENDED) == "1" or security.session_lost(request):
        notice = page._(SESSION_ENDED_NOTICE)
    return signin_page.login_page(page, 200, security.safe_next(next), None, notice)


@router.post("/console/login")
async def login(form: PostedAnonymously) -> Response:
    page = form.page
    token = form.data.get("token")
    target = security.safe_next(form.text("next"))
    raw = form.data.get(REPLAY)
    replay = replay_of(form.text(REPLAY_ACTION), raw if isinstance(raw, str) else "")
    if not admin_token_allowed(form.request):
        _refused(ADMIN_TOKEN, "disabled")
        message = page._("Signing in with the admin token is switched off here.")
        return signin_page.login_page(page, 403, target, message, None, replay)
    admin_token: str = form.request.app.state.admin_token
    if isinstance(token, str) and token and security.token_matches(token, admin_token):
        session_id, found = await _sign_ins(form.request).sign_in_admin()
        security.begin_session(form.request, session_id, found)
        await _signed(page, "session.signed_in", found)
        metrics.SIGN_INS.labels(ADMIN_TOKEN, "ok").inc()
        if replay is not None:  # a form typed before the session ended: offer to send it
            action, fields = replay
            return page.render("replay.html", action=action, fields=fields, back=target, nav=None)
        return back(target)
    await asyncio.sleep(0.3)  # a little friction for guessing
    metrics.REJECTED_REQUESTS.labels("401").inc()
    _refused(ADMIN_TOKEN, "token")
    message = page._("That is not the admin token. Check it and try again.")
    return signin_page.login_page(page, 401, target, message, None, replay)


async def _signed(page: Page, action: str, found: ConsoleSession) -> None:
    """A session began or ended: the audit log says who and how."""
    target = found.user_id or found.subject
    await page.hub.audit(action, target, {"method": found.method}, security.actor_of(found))


def _refused(method: str, reason: str) -> None:
    metrics.SIGN_INS.labels(method, "refused").inc()
    metrics.SIGN_INS_REFUSED.labels(reason).inc()


@router.get("/console/sso")
async def single_sign_on(
    request: Request, next: str | None = None, login_hint: str | None = None
) -> Response:
    """Off to the provider: a new flow (state, nonce, PKCE verifier) kept in the cookie."""
    page = Page(request)
    oidc = oidc_of(request)
    if oidc is None:
        return page.problem(404, page._("Single sign-on is not set up on this server."))
    try:
        url, flow = await oidc.begin(_base_url(request) + CALLBACK, (login_hint or "")[:256])
    except ProviderUnavailable:
        metrics.REJECTED_REQUESTS.labels("502").inc()
        return page.problem(502, page._("The sign-in service cannot be reached. Try again later."))
    data = security.session(request)
    kept = data.pop(KEPT, None)
    if isinstance(kept, str):  # a form sent after the session ended goes with this sign-in
        _sign_ins(request).kept.bind(kept, flow.state)
    data[FLOW_KEY] = {**flow.to_json(), "next": security.safe_next(next)}
    return Response(status_code=303, headers={**SECURITY_HEADERS, "Location": url})


@router.get(CALLBACK)
async def single_sign_on_callback(request: Request) -> Response:
    """Back from the provider: check everything, then open the session."""
    page = Page(request)
    oidc = oidc_of(request)
    if oidc is None:
        return page.problem(404, page._("Single sign-on is not set up on this server."))
    kept = security.session(request).pop(FLOW_KEY, None)  # one use: a replay finds none
    flow = Flow.of_json(kept)
    target = security.safe_next(kept.get("next") if isinstance(kept, dict) else None)
    try:
        claims = await oidc.finish(flow, dict(request.query_params))
        person = person_from_claims(claims)
        session_id, found = await _sign_ins(request).sign_in_person(person)
    except SignInRefused as refused:
        _refused(OIDC, refused.reason)
        metrics.REJECTED_REQUESTS.labels("400").inc()
        message = page._("The sign-in was refused: %(why)s.") % {"why": refused.message}
        return _sign_in_problem(page, 400, message)
    except NoHubUser as nobody:
        _refused(OIDC, "no_user")
        metrics.REJECTED_REQUESTS.labels("403").inc()
        return page.render("no_user.html", 403, person=nobody.person.shown_as, nav=None, sso=True)
    except ProviderUnavailable:
        _refused(OIDC, "provider")
        metrics.REJECTED_REQUESTS.labels("502").inc()
        return page.problem(502, page._("The sign-in service cannot be reached. Try again later."))
    security.begin_session(request, session_id, found)
    await _signed(page, "session.signed_in", found)
    metrics.SIGN_INS.labels(OIDC, "ok").inc()
    form = None if flow is None else _sign_ins(request).kept.take(flow.state)
    replay = None if form is None else replay_of(form.action, json.dumps(form.fields))
    if replay is not None:  # a form typed before the session ended: offer to send it
        action, fields = replay
        return page.render("replay.html", action=action, fields=fields, back=target, nav=None)
    return back(target)


def _sign_in_problem(page: Page, status: int, message: str) -> Response:
    return page.render("signin_problem.html", status, message=message, nav=None)


@router.post("/console/logout")
async def logout(form: PostedAnonymously) -> Response:
    page = form.page
    ended = await security.end_session(form.request)
    if ended is not None:
        await _signed(page, "session.signed_out", ended)
    if ended is not None and ended.method == OIDC:
        oidc = oidc_of(form.request)
        endpoint = None if oidc is None else await oidc.end_session_endpoint()
        if endpoint is not None and oidc is not None:
            query = urlencode(
                {
                    "client_id": oidc.settings.client_id,
                    "post_logout_redirect_uri": _base_url(form.request) + "/console/login",
                }
            )
            provider = f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"
            return page.render("signed_out.html", provider_sign_out=provider, nav=None)
    page.flash(page._("You are signed out."))
    return back("/console/login")


@router.post("/console/lang")
async def switch_language(form: PostedAnonymously) -> Response:
    response = back(form.text("next") or "/")
    language = form.text("lang")
    if language in ("en", "de"):
        response.set_cookie(
            LANG_COOKIE, language, max_age=365 * 24 * 3600, httponly=True, samesite="strict"
        )
    return response
