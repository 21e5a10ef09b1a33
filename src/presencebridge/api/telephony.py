"""The two PBX event routes on a short path: the hot path of a PBX connector.

`POST /api/v1/telephony/events` and `…/events/batch` are what a PBX sends thousands
of times a second. Through FastAPI each request pays route matching over every route
of the app, dependency injection and the response machinery: most of the CPU an
event costs (docs/benchmarks.md, "CPU per event"). This middleware answers the
ordinary request itself, the way the routes in `api/routes.py` would:

* the admin token in `Authorization: Bearer …` (the routes are `admin` in
  `api.access`), a JSON body, at most a `lang` of `en` or `de` in the query;
* the body parsed (`json.loads`) and validated by the same pydantic models in the same
  (python) mode as FastAPI does, so what is accepted is exactly what the route accepts;
* a refusal of the hub (unknown user, invalid event, data the store cannot keep) is
  answered by the app's own exception handlers.

Anything else (another caller, a token to check, a body that does not validate, other
query parameters, several nodes) goes on to the FastAPI routes unchanged, which answer
it with their usual messages: this path never decides a refusal of its own. It sits
inside `BodyLimit`, which has read the body (413 as for every route).
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from presencebridge.adapters.store import Unstorable
from presencebridge.api import views
from presencebridge.api.cluster import BODY
from presencebridge.api.schemas import TelephonyBatchIn, TelephonyEventIn
from presencebridge.core import rules
from presencebridge.core.errors import Reason, Rejected
from presencebridge.core.texts import pick_language
from presencebridge.service.hub import Hub

SINGLE = "/api/v1/telephony/events"
BATCH = "/api/v1/telephony/events/batch"
_LANGUAGES = {b"lang=en": "en", b"lang=de": "de"}
_JSON_HEADERS = [(b"content-type", b"application/json")]

_single = TypeAdapter(TelephonyEventIn)
_batch = TypeAdapter(TelephonyBatchIn)


def _dumps(content: Any) -> bytes:
    """As FastAPI's JSONResponse renders an answer."""
    return json.dumps(
        content, ensure_ascii=False, allow_nan=False, indent=None, separators=(",", ":")
    ).encode("utf-8")


class TelephonyFastPath:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._expected: bytes | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path")
        if path in (SINGLE, BATCH) and scope["type"] == "http" and scope["method"] == "POST":
            request = self._ordinary(scope, path == BATCH)
            if request is not None:
                await self._answer(scope, receive, send, *request)
                return
        await self.app(scope, receive, send)

    def _ordinary(self, scope: Scope, batch: bool) -> tuple[BaseModel, str | None] | None:
        """The valid body and the language (None: from the header) of an ordinary
        request; None for anything the FastAPI route is to answer (nothing was done)."""
        state = scope["app"].state
        if state.cluster is not None:
            return None  # several nodes: forwarding to owners is the routes' job
        if self._expected is None:
            self._expected = b"Bearer " + str(state.admin_token).encode()
        authorization = content_type = None
        for name, value in scope["headers"]:
            if name == b"authorization" and authorization is None:
                authorization = value
            elif name == b"content-type" and content_type is None:
                content_type = value
        if (
            authorization is None
            or content_type != b"application/json"
            or not hmac.compare_digest(authorization, self._expected)
        ):
            return None
        query: bytes = scope.get("query_string", b"")
        if query and (batch or query not in _LANGUAGES):
            return None
        body: bytes | None = scope.get(BODY)
        if not body:
            return None
        try:
            model = (_batch if batch else _single).validate_python(json.loads(body))
        except (ValueError, ValidationError, RecursionError):  # the route words the problem
            return None
        return model, _LANGUAGES.get(query)

    async def _answer(
        self, scope: Scope, receive: Receive, send: Send, model: BaseModel, lang: str | None
    ) -> None:
        state = scope["app"].state
        hub: Hub = state.hub
        try:
            if isinstance(model, TelephonyBatchIn):
                content = await _apply_batch(hub, model)
            else:
                assert isinstance(model, TelephonyEventIn)
                content = await _apply_one(hub, model, lang or _language(scope, state))
        except (Rejected, Unstorable) as error:
            await _handled(scope, receive, send, error)
            return
        payload = _dumps(content)
        headers = [(b"content-length", str(len(payload)).encode()), *_JSON_HEADERS]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": payload})


def _language(scope: Scope, state: Any) -> str:
    """`routes._language` without a `lang` parameter."""
    header = next((v for n, v in scope["headers"] if n == b"accept-language"), None)
    default: str = state.settings.language
    return pick_language(header.decode("latin-1")) if header else default


async def _apply_one(hub: Hub, body: TelephonyEventIn, language: str) -> dict[str, Any]:
    """`routes.telephony_event`."""
    event = rules.TelephonyEvent(body.call_id, body.state)
    user_id = hub.resolve(body.user, body.extension, body.number)
    view = await hub.handle(user_id, event, "pbx")
    return views.presence(view.presence, language, hub.teams_last_sync(view.state.user.id))


async def _apply_batch(hub: Hub, body: TelephonyBatchIn) -> dict[str, Any]:
    """`routes.telephony_events` on one node."""
    users = resolve_batch(hub, body)
    events = [
        (u, rules.TelephonyEvent(e.call_id, e.state))
        for u, e in zip(users, body.events, strict=True)
    ]
    refused = await hub.handle_batch(events, "pbx")
    return batch_answer(len(body.events), users, refused)


def batch_answer(
    events: int, users: Sequence[str], refused: Sequence[tuple[int, Rejected]]
) -> dict[str, Any]:
    """A batch's answer: how many events applied, for how many users, and each refused
    one (e.g. a user's 51st open call) by its place in the batch."""
    return {
        "accepted": events - len(refused),
        "users": len(set(users)),
        "rejected": [
            {"index": index, "code": refusal.reason.value, "detail": refusal.message}
            for index, refusal in sorted(refused, key=lambda item: item[0])
        ],
    }


def resolve_batch(hub: Hub, body: TelephonyBatchIn) -> list[str]:
    """The user of each event; any unknown name refuses the whole batch (404 naming it)."""
    users: list[str] = []
    unknown: list[str] = []
    for e in body.events:
        try:
            users.append(hub.resolve(e.user, e.extension, e.number))
        except Rejected as refusal:
            if refusal.reason is not Reason.NOT_FOUND:
                raise
            if refusal.message not in unknown:
                unknown.append(refusal.message)
    if unknown:
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        raise Rejected(Reason.NOT_FOUND, f"{'; '.join(unknown[:5])}{more}; no event was applied")
    return users


async def _handled(scope: Scope, receive: Receive, send: Send, error: Exception) -> None:
    """The answer of the app's own exception handler for `error`."""
    handlers: dict[Any, Callable[[Request, Exception], Awaitable[Any]]]
    handlers = scope["app"].exception_handlers
    for kind in type(error).__mro__:
        handler = handlers.get(kind)
        if handler is not None:
            response = await handler(Request(scope, receive), error)
            await response(scope, receive, send)
            return
    raise error
