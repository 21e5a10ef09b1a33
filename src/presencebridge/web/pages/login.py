"""Sign-in, sign-out and the language switch: the console's only forms without a session."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import Response

from presencebridge import metrics
from presencebridge.web import security
from presencebridge.web.forms import PostedAnonymously
from presencebridge.web.i18n import LANG_COOKIE
from presencebridge.web.page import Page, back

router = APIRouter(include_in_schema=False)


@router.get("/console/login")
async def login_page(request: Request, next: str | None = None) -> Response:
    page = Page(request)
    if security.signed_in(request):
        return back(next or "/")
    return page.render("login.html", next=security.safe_next(next), error=None, nav="login")


@router.post("/console/login")
async def login(form: PostedAnonymously) -> Response:
    page = form.page
    token = form.data.get("token")
    target = security.safe_next(form.text("next"))
    admin_token: str = form.request.app.state.admin_token
    if isinstance(token, str) and token and security.token_matches(token, admin_token):
        security.sign_in(form.request)
        return back(target)
    await asyncio.sleep(0.3)  # a little friction for guessing
    metrics.REJECTED_REQUESTS.labels("401").inc()
    message = page._("That is not the admin token. Check it and try again.")
    return page.render("login.html", 401, next=target, error=message, nav="login")


@router.post("/console/logout")
async def logout(form: PostedAnonymously) -> Response:
    page = form.page
    security.sign_out(form.request)
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
