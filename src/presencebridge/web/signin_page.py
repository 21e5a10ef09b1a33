"""The sign-in page, shown by the sign-in routes and by a form whose session has ended.

A form sent after its session ended keeps what was typed: the sign-in page carries it
(`replay`, the form's fields as JSON, and `replay_action`, where it was going), and
after signing in a page offers to send it again with the new session's token, one
click, no JavaScript. Nothing is sent again without that click. Signing in at the
OpenID Connect provider instead leaves the site: the form is kept on the server for
that sign-in and offered the same way after the callback (`keep_for_provider`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from fastapi import Request
from fastapi.responses import Response
from starlette.datastructures import FormData

from presencebridge.adapters.oidc import OidcClient
from presencebridge.config import Settings
from presencebridge.service.sign_in import SignIns
from presencebridge.web import security
from presencebridge.web.page import Page

REPLAY = "replay"
REPLAY_ACTION = "replay_action"
KEPT = "kept"  # the cookie's key of a form kept for a sign-in at the provider
# Never carried over: the old session's token, a password, the sign-in form's own fields.
NOT_REPLAYED = {security.CSRF_FIELD, "token", "next", REPLAY, REPLAY_ACTION}
SECRET_NAMES = ("token", "secret", "password", "passwd")  # also as a suffix: "_token"
Fields = list[tuple[str, str]]


def _replayed(name: str) -> bool:
    lowered = name.lower()
    return name not in NOT_REPLAYED and not any(
        lowered == secret or lowered.endswith("_" + secret) for secret in SECRET_NAMES
    )


def settings_of(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def oidc_of(request: Request) -> OidcClient | None:
    return getattr(request.app.state, "oidc", None)


def admin_token_allowed(request: Request) -> bool:
    config = settings_of(request).sign_in
    return config is None or config.admin_token_console


def login_page(
    page: Page,
    status: int,
    next_: str,
    error: str | None,
    notice: str | None = None,
    replay: tuple[str, Fields] | None = None,
) -> Response:
    config = settings_of(page.request).sign_in
    label = (config.label if config else "") or page._("your company account")
    if replay is not None:
        keep_for_provider(page.request, replay)
    return page.render(
        "login.html",
        status,
        next=next_,
        error=error,
        notice=notice,
        replay_action=replay[0] if replay else "",
        replay=json.dumps(replay[1], ensure_ascii=False) if replay else "",
        nav="login",
        sso=oidc_of(page.request) is not None,
        sso_label=label,
        token_form=admin_token_allowed(page.request),
    )


def keep_for_provider(request: Request, replay: tuple[str, Fields]) -> None:
    """Single sign-on leaves the site and comes back by a redirect, which carries no
    form: the form is kept on the server (`SignIns.kept`), the cookie holds its key, and
    `/console/sso` binds it to the sign-in's state (login.py)."""
    sign_ins: SignIns | None = getattr(request.app.state, "sign_ins", None)
    if sign_ins is None or oidc_of(request) is None:
        return
    security.session(request)[KEPT] = sign_ins.kept.keep(*replay)


def typed_fields(data: FormData) -> Fields:
    """What a person typed into a form (no files, no tokens or secrets), in order."""
    return [(k, v) for k, v in data.multi_items() if isinstance(v, str) and _replayed(k)]


def replay_of(action: str, raw: str) -> tuple[str, Fields] | None:
    """The form to send again, if `action` is a console form's address and `raw` its fields."""
    target = security.safe_next(action, "")
    if not target.startswith("/console/") or not raw:
        return None
    try:
        parsed = json.loads(raw)
    except ValueError:
        return None
    if not isinstance(parsed, list) or not all(_pair(item) for item in parsed):
        return None
    fields = [(str(k), str(v)) for k, v in parsed if _replayed(k)]
    return target, fields


def _pair(item: object) -> bool:
    return (
        isinstance(item, Sequence)
        and not isinstance(item, str)
        and len(item) == 2
        and all(isinstance(part, str) for part in item)
    )
