"""The sign-in page, shown by the sign-in routes and by a form whose session has ended.

A form sent after its session ended keeps what was typed: the sign-in page carries it
(`replay`, the form's fields as JSON, and `replay_action`, where it was going), and
after signing in a page offers to send it again with the new session's token, one
click, no JavaScript. Nothing is sent again without that click.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from fastapi import Request
from fastapi.responses import Response
from starlette.datastructures import FormData

from presencebridge.adapters.oidc import OidcClient
from presencebridge.config import Settings
from presencebridge.web import security
from presencebridge.web.page import Page

REPLAY = "replay"
REPLAY_ACTION = "replay_action"
# Never carried over: the old session's token, a password, the sign-in form's own fields.
NOT_REPLAYED = {security.CSRF_FIELD, "token", "next", REPLAY, REPLAY_ACTION}
Fields = list[tuple[str, str]]


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


def typed_fields(data: FormData) -> Fields:
    """What a person typed into a form (no files, no tokens), in order."""
    return [(k, v) for k, v in data.multi_items() if isinstance(v, str) and k not in NOT_REPLAYED]


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
    fields = [(str(k), str(v)) for k, v in parsed if k not in NOT_REPLAYED]
    return target, fields


def _pair(item: object) -> bool:
    return (
        isinstance(item, Sequence)
        and not isinstance(item, str)
        and len(item) == 2
        and all(isinstance(part, str) for part in item)
    )
