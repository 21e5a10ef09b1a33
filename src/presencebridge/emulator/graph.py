"""The Graph paths of GRAPH.md under /v1.0.

A small dispatcher rather than framework routes: a `$batch` runs its inner
requests through exactly the same code as top-level ones (faults, budget,
checks, statistics), and every answer keeps Graph's error shape.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, unquote
from zoneinfo import ZoneInfo

from cryptography import x509

from presencebridge.emulator import graph_directory, model, subscriptions, timezones
from presencebridge.emulator.identity import Principal
from presencebridge.emulator.model import Invalid, NoSuchSession, StatusMessage
from presencebridge.emulator.state import EmulatedUser, Emulator
from presencebridge.emulator.subscriptions import Subscription

MAX_BATCH = 20
MAX_IDS = 650
MAX_STATUS_MESSAGE = 1000
SERVICE_ROOT = "https://graph.microsoft.com/v1.0"


@dataclass
class GraphRequest:
    method: str
    path: str  # below /v1.0, starting with "/"
    body: Any
    headers: dict[str, str]  # lower-case names
    principal: Principal
    params: dict[str, str] = field(default_factory=dict)
    request_id: str = ""  # the answer's request-id header (none for a $batch's inner ones)


@dataclass
class GraphResponse:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


class GraphError(Exception):
    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}


def error_body(
    code: str, message: str, now: datetime, client_request_id: str, request_id: str = ""
) -> dict[str, Any]:
    """Graph's error shape. `request-id` is the one of the answer's header; without a
    client-request-id from the caller Graph reports its request id there too."""
    request_id = request_id or str(uuid.uuid4())
    return {
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": now.strftime("%Y-%m-%dT%H:%M:%S"),
                "request-id": request_id,
                "client-request-id": client_request_id or request_id,
            },
        }
    }


def bad_request(message: str) -> GraphError:
    return GraphError(400, "BadRequest", message)


def parse_graph_time(value: Any, name: str) -> datetime:
    """An ISO 8601 instant; without an offset it is taken as UTC, as Graph does."""
    if not isinstance(value, str):
        raise bad_request(f"{name} is required (ISO 8601, e.g. 2025-01-01T10:00:00Z)")
    text = value.strip()
    # Graph writes seven fractional digits; Python takes at most six.
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise bad_request(f"{name} {value!r} is not an ISO 8601 date and time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo("UTC"))
    return moment


Handler = Callable[[GraphRequest, dict[str, str]], Awaitable[GraphResponse]]


@dataclass(frozen=True)
class Route:
    method: str
    pattern: re.Pattern[str]
    template: str
    handler: Handler
    presence: bool  # counts against the tenant budget
    batchable: bool = True


class GraphApi:
    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator
        user = r"/users/(?P<id>[^/]+)/presence"
        me = r"/me/presence"
        table: list[tuple[str, str, str, Handler, bool]] = [
            ("GET", user, "/users/{id}/presence", self.get_presence, True),
            ("GET", r"/communications/presences/(?P<id>[^/]+)", "/communications/presences/{id}",
             self.get_presence, True),
            ("GET", me, "/me/presence", self.get_presence, True),
            ("POST", r"/communications/getPresencesByUserId",
             "/communications/getPresencesByUserId", self.get_presences, True),
            ("POST", r"/subscriptions", "/subscriptions", self.create_subscription, False),
            ("GET", r"/subscriptions", "/subscriptions", self.list_subscriptions, False),
            ("GET", r"/subscriptions/(?P<sid>[^/]+)", "/subscriptions/{id}",
             self.get_subscription, False),
            ("PATCH", r"/subscriptions/(?P<sid>[^/]+)", "/subscriptions/{id}",
             self.renew_subscription, False),
            ("DELETE", r"/subscriptions/(?P<sid>[^/]+)", "/subscriptions/{id}",
             self.delete_subscription, False),
            ("POST", r"/subscriptions/(?P<sid>[^/]+)/reauthorize",
             "/subscriptions/{id}/reauthorize", self.reauthorize_subscription, False),
        ]  # fmt: skip
        table.extend(graph_directory.DirectoryApi(emulator, _Errors).routes())
        presences = r"/communications/presences/(?P<id>[^/]+)"
        for action in model_actions() + location_actions():
            handler = self._action_handler(action)
            table.append(
                ("POST", f"{user}/{action}", f"/users/{{id}}/presence/{action}", handler, True)
            )
            table.append(("POST", f"{me}/{action}", f"/me/presence/{action}", handler, True))
            table.append(
                ("POST", f"{presences}/{action}", f"/communications/presences/{{id}}/{action}",
                 handler, True)
            )  # fmt: skip
        self.routes = [
            Route(method, re.compile(pattern), template, handler, presence)
            for method, pattern, template, handler, presence in table
        ]
        self.routes.append(
            Route("POST", re.compile(r"/\$batch"), "/$batch", self.batch, False, batchable=False)
        )

    # -- dispatch ------------------------------------------------------------------------

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        """The route for `path`; raises 405 when the path exists for other methods only."""
        other_method = False
        for route in self.routes:
            found = route.pattern.fullmatch(path)
            if found:
                if route.method == method:
                    return route, found.groupdict()
                other_method = True
        if other_method:
            raise GraphError(405, "Request_BadRequest", f"{method} is not supported on {path}")
        return None

    def template_of(self, method: str, path: str) -> str:
        try:
            matched = self.match(method, path)
        except GraphError:
            matched = None
        return f"{method} /v1.0" + (matched[0].template if matched else "/(unknown)")

    async def handle(self, request: GraphRequest, inner: bool = False) -> GraphResponse:
        """Run one Graph request: faults, budget, the handler; errors in Graph's shape."""
        emulator = self.emulator
        template = self.template_of(request.method, request.path)
        emulator.stats.requests[template] += 1
        try:
            response = await self._run(request, inner)
        except GraphError as error:
            response = GraphResponse(
                error.status,
                error_body(
                    error.code,
                    error.message,
                    emulator.now(),
                    request.headers.get("client-request-id", ""),
                    request.request_id,
                ),
                error.headers,
            )
        emulator.stats.statuses[str(response.status)] += 1
        return response

    async def _run(self, request: GraphRequest, inner: bool) -> GraphResponse:
        matched = self.match(request.method, request.path)
        if matched is None:
            segment = request.path.strip("/").split("/")[0] or "/"
            raise bad_request(f"Resource not found for the segment '{segment}'.")
        route, params = matched
        if inner and not route.batchable:
            raise bad_request("a $batch request cannot contain another $batch")
        emulator = self.emulator
        if route.batchable:  # the outer $batch gets neither faults nor budget
            faults = emulator.faults
            if faults.latency_ms > 0:
                await asyncio.sleep(faults.latency_ms / 1000)
            injected = faults.roll()
            if injected == 503:
                emulator.stats.injected["503"] += 1
                raise GraphError(503, "serviceNotAvailable", "Service unavailable (injected).")
            if injected == 429:
                emulator.stats.injected["429"] += 1
                raise GraphError(
                    429,
                    "TooManyRequests",
                    "Too many requests (injected).",
                    {"Retry-After": _seconds(faults.retry_after_seconds)},
                )
        if route.presence:
            who = request.principal
            wait = emulator.budget.admit(who.app_id, who.tenant_id, emulator.now().timestamp())
            if wait is not None:
                emulator.stats.throttled += 1
                raise GraphError(
                    429,
                    "TooManyRequests",
                    "Too many requests: the presence budget of 1,500 requests per 30 s "
                    "for this application and tenant is used up.",
                    {"Retry-After": _seconds(wait)},
                )
        return await route.handler(request, params)

    # -- helpers -------------------------------------------------------------------------

    def _target(self, request: GraphRequest, params: dict[str, str]) -> EmulatedUser:
        principal = request.principal
        if "id" in params:
            key = params["id"]
        elif principal.kind == "user" and principal.user_id:
            key = principal.user_id
        else:
            raise bad_request("/me request is only valid with delegated authentication flow.")
        user = self.emulator.find_user(key)
        if user is None:
            raise GraphError(404, "ResourceNotFound", f"User '{key}' was not found.")
        return user

    @staticmethod
    def _body(request: GraphRequest) -> dict[str, Any]:
        if not isinstance(request.body, dict):
            raise bad_request("the request body must be a JSON object")
        return request.body

    @staticmethod
    def _forbidden(what: str) -> GraphError:
        return GraphError(403, "Forbidden", f"Insufficient privileges to {what}.")

    # -- reading -------------------------------------------------------------------------

    async def get_presence(self, request: GraphRequest, params: dict[str, str]) -> GraphResponse:
        user = self._target(request, params)
        if not request.principal.may_read(user.id):
            raise self._forbidden(f"read the presence of {user.id}")
        body = {
            "@odata.context": f"{SERVICE_ROOT}/$metadata#users('{user.id}')/presence/$entity",
            **self.emulator.read(user, own=_own(request.principal, user.id)),
        }
        return GraphResponse(200, body)

    async def get_presences(self, request: GraphRequest, params: dict[str, str]) -> GraphResponse:
        ids = self._body(request).get("ids")
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids) or not ids:
            raise bad_request("ids must be a non-empty list of user ids")
        if len(ids) > MAX_IDS:
            raise bad_request(f"ids names {len(ids)} users; at most 650 are allowed per request")
        principal = request.principal
        if principal.kind == "user" and not principal.scopes & {
            "Presence.Read.All",
            "Presence.ReadWrite.All",
        }:
            raise self._forbidden("read the presence of other users (Presence.Read.All)")
        value = []
        for key in dict.fromkeys(ids):
            user = self.emulator.find_user(key)
            if user is not None and principal.may_read(user.id):
                value.append(self.emulator.read(user, own=_own(principal, user.id)))
        return GraphResponse(
            200,
            {"@odata.context": f"{SERVICE_ROOT}/$metadata#Collection(presence)", "value": value},
        )

    # -- writing -------------------------------------------------------------------------

    def _action_handler(self, action: str) -> Handler:
        async def handler(request: GraphRequest, params: dict[str, str]) -> GraphResponse:
            principal = request.principal
            if action in location_actions() and principal.kind != "user":
                # Delegated Presence.ReadWrite only; application permissions are not
                # supported (Microsoft's presence: setManualLocation and its siblings).
                raise self._forbidden(
                    f"{action}: application permissions are not supported; "
                    "call it with a delegated token on /me/presence"
                )
            user = self._target(request, params)
            if not principal.may_write(user.id):
                raise self._forbidden(f"change the presence of {user.id}")
            if action in location_actions() and principal.user_id != user.id:
                raise self._forbidden(f"{action} for another user ({user.id})")
            # Actions without parameters take no body: the SDK and Microsoft's own
            # examples send none (clearUserPreferredPresence, clearLocation, ...).
            no_body = request.body is None and action in NO_BODY_ACTIONS
            body: dict[str, Any] = {} if no_body else self._body(request)
            change = getattr(self, "_" + action)(principal, body)
            try:
                self.emulator.update(user, change)
            except NoSuchSession as missing:
                raise GraphError(
                    404, "NotFound", f"No presence session '{missing}' for user '{user.id}'."
                ) from None
            except Invalid as error:
                raise bad_request(str(error)) from None
            user.writes[action] += 1
            return GraphResponse(200)

        return handler

    def _session_id(self, principal: Principal, body: dict[str, Any]) -> str:
        session_id = body.get("sessionId")
        if not isinstance(session_id, str) or not session_id:
            raise bad_request("sessionId is required (the application's client id)")
        if self.emulator.strict and session_id.lower() != principal.app_id.lower():
            raise bad_request(
                f"sessionId {session_id!r} must be the calling application's id "
                f"({principal.app_id})"
            )
        return session_id

    def _setPresence(self, principal: Principal, body: dict[str, Any]) -> ModelChange:
        session_id = self._session_id(principal, body)
        availability, activity = body.get("availability"), body.get("activity")
        try:
            model.validate_session_pair(availability, activity)
            duration = model.session_duration(body.get("expirationDuration"))
        except model.OutOfRange:
            # Graph's own words for PT4M or PT5H (msgraph-sdk-dotnet issue 1186).
            raise GraphError(
                400, "InvalidArgument", "The provided [ExpirationDuration] is out of range."
            ) from None
        except Invalid as error:
            raise bad_request(str(error)) from None
        assert isinstance(availability, str) and isinstance(activity, str)

        def change(presence: model.UserPresence, now: datetime) -> None:
            presence.set_session(session_id, availability, activity, duration, now)

        return change

    def _clearPresence(self, principal: Principal, body: dict[str, Any]) -> ModelChange:
        session_id = self._session_id(principal, body)
        return lambda presence, now: presence.clear_session(session_id, now)

    def _setUserPreferredPresence(self, principal: Principal, body: dict[str, Any]) -> ModelChange:
        availability, activity = body.get("availability"), body.get("activity")
        try:
            model.validate_preferred_pair(availability, activity)
            assert isinstance(availability, str) and isinstance(activity, str)
            duration = model.preferred_duration(availability, body.get("expirationDuration"))
        except Invalid as error:
            raise bad_request(str(error)) from None

        def change(presence: model.UserPresence, now: datetime) -> None:
            presence.set_preferred(availability, activity, duration, now)

        return change

    def _clearUserPreferredPresence(
        self, principal: Principal, body: dict[str, Any]
    ) -> ModelChange:
        return lambda presence, now: presence.clear_preferred(now)

    def _setManualLocation(self, principal: Principal, body: dict[str, Any]) -> ModelChange:
        location = _work_location(body)
        return lambda presence, now: presence.set_location("manual", location, now)

    def _setAutomaticLocation(self, principal: Principal, body: dict[str, Any]) -> ModelChange:
        location = _work_location(body)
        return lambda presence, now: presence.set_location("automatic", location, now)

    def _clearAutomaticLocation(self, principal: Principal, body: dict[str, Any]) -> ModelChange:
        return lambda presence, now: presence.set_location("automatic", None, now)

    def _clearLocation(self, principal: Principal, body: dict[str, Any]) -> ModelChange:
        def change(presence: model.UserPresence, now: datetime) -> None:
            presence.set_location("manual", None, now)
            presence.set_location("automatic", None, now)

        return change

    def _setStatusMessage(self, principal: Principal, body: dict[str, Any]) -> ModelChange:
        status = body.get("statusMessage")
        if not isinstance(status, dict):
            raise bad_request("statusMessage is required")
        message = status.get("message")
        if not isinstance(message, dict) or not isinstance(message.get("content"), str):
            raise bad_request("statusMessage.message.content is required")
        content: str = message["content"]
        content_type = message.get("contentType", "text")
        if content_type not in ("text", "html"):
            raise bad_request("statusMessage.message.contentType must be text or html")
        if len(content) > MAX_STATUS_MESSAGE:
            raise bad_request(
                f"statusMessage.message.content exceeds {MAX_STATUS_MESSAGE} characters"
            )
        expiry = status.get("expiryDateTime")
        expires_at = None if expiry is None else _expiry(expiry)

        def change(presence: model.UserPresence, now: datetime) -> None:
            if not content:
                presence.set_status_message(None, now)  # an empty message clears it
                return
            if expires_at is not None and expires_at <= now:
                raise Invalid("statusMessage.expiryDateTime is in the past")
            presence.set_status_message(
                StatusMessage(content, content_type, now, expires_at, expiry), now
            )

        return change

    # -- subscriptions -------------------------------------------------------------------

    def _expiration(self, body: dict[str, Any]) -> datetime:
        moment = parse_graph_time(body.get("expirationDateTime"), "expirationDateTime")
        now = self.emulator.now()
        if moment <= now:
            raise bad_request("expirationDateTime must be in the future")
        if moment > now + subscriptions.MAX_LIFETIME:
            raise bad_request(
                "Subscription expiration can only be 60 minutes in the future for presence "
                f"(now {model.graph_time(now)} on the service's clock)."
            )
        return moment

    def _owned(self, request: GraphRequest, params: dict[str, str]) -> Subscription:
        subscription = self.emulator.live_subscription(params["sid"])
        principal = request.principal
        if (
            subscription is None
            or subscription.app_id != principal.app_id
            or (principal.kind == "user" and subscription.creator_id != principal.user_id)
        ):
            raise GraphError(
                404, "ResourceNotFound", f"The object '{params['sid']}' doesn't exist."
            )
        return subscription

    async def create_subscription(
        self, request: GraphRequest, params: dict[str, str]
    ) -> GraphResponse:
        principal = request.principal
        if principal.kind != "user" or not principal.user_id:
            raise GraphError(
                403,
                "ExtensionError",
                "Operation: Create; Exception: [Status Code: Forbidden; Reason: presence "
                "subscriptions do not support application permissions; subscribe with a "
                "delegated token (Presence.Read.All)]",
            )
        body = self._body(request)
        try:
            asked = _subscription_request(body)
        except Invalid as error:
            raise bad_request(str(error)) from None
        user_ids = asked.user_ids
        own_only = set(user_ids) == {principal.user_id}
        if not (
            principal.scopes & {"Presence.Read.All", "Presence.ReadWrite.All"}
            or (own_only and principal.scopes & {"Presence.Read", "Presence.ReadWrite"})
        ):
            raise self._forbidden("subscribe to presence (Presence.Read.All)")
        expires_at = self._expiration(body)
        self._refuse_second(principal)
        await self._handshakes(asked)
        self._refuse_second(principal)  # another create may have finished meanwhile
        subscription = Subscription(
            id=str(uuid.uuid4()),
            resource=str(body["resource"]),
            user_ids=user_ids,
            notification_url=asked.notification_url,
            lifecycle_url=asked.lifecycle_url,
            expires_at=expires_at,
            client_state=asked.client_state,
            include_resource_data=asked.rich,
            certificate=asked.certificate,
            certificate_b64=body.get("encryptionCertificate") if asked.rich else None,
            certificate_id=asked.certificate_id,
            app_id=principal.app_id,
            creator_id=principal.user_id,
            tenant_id=principal.tenant_id,
            issuer=principal.issuer,
            created_at=self.emulator.now(),
        )
        self.emulator.add_subscription(subscription)
        return GraphResponse(
            201,
            {"@odata.context": f"{SERVICE_ROOT}/$metadata#subscriptions/$entity"}
            | subscription.to_json(),
        )

    async def _handshakes(self, asked: SubscriptionRequest) -> None:
        """Graph's validation handshake with the notification (and lifecycle) URL."""
        for url in filter(None, (asked.notification_url, asked.lifecycle_url)):
            problem = await self.emulator.delivery.handshake(url)
            if problem is not None:
                raise GraphError(
                    400,
                    "ValidationError",
                    "Subscription validation request failed. Notification endpoint must "
                    f"respond with 200 OK to validation request. ({problem})",
                )

    def _refuse_second(self, principal: Principal) -> None:
        assert principal.user_id is not None
        existing = self.emulator.owned_subscription(principal.app_id, principal.user_id)
        if existing is not None:
            raise GraphError(
                409,
                "ExtensionError",
                "Operation: Create; Exception: [Status Code: Conflict; Reason: a presence "
                f"subscription of this application for this user exists already: {existing.id}]",
            )

    async def list_subscriptions(
        self, request: GraphRequest, params: dict[str, str]
    ) -> GraphResponse:
        principal = request.principal
        value = []
        for sid in list(self.emulator.subscriptions):
            subscription = self.emulator.live_subscription(sid)
            if subscription is None or subscription.app_id != principal.app_id:
                continue
            if principal.kind == "user" and subscription.creator_id != principal.user_id:
                continue
            value.append(subscription.to_json())
        return GraphResponse(
            200, {"@odata.context": f"{SERVICE_ROOT}/$metadata#subscriptions", "value": value}
        )

    async def get_subscription(
        self, request: GraphRequest, params: dict[str, str]
    ) -> GraphResponse:
        return GraphResponse(200, self._owned(request, params).to_json())

    async def renew_subscription(
        self, request: GraphRequest, params: dict[str, str]
    ) -> GraphResponse:
        subscription = self._owned(request, params)
        body = self._body(request)
        unsupported = sorted(set(body) - {"expirationDateTime"})
        if unsupported:
            raise bad_request(
                f"only expirationDateTime can be changed, not {', '.join(unsupported)}"
            )
        subscription.expires_at = self._expiration(body)
        subscription.reauthorization_required = False
        self.emulator.stats.subscriptions["renewed"] += 1
        return GraphResponse(200, subscription.to_json())

    async def delete_subscription(
        self, request: GraphRequest, params: dict[str, str]
    ) -> GraphResponse:
        subscription = self._owned(request, params)
        self.emulator.remove_subscription(subscription.id)
        self.emulator.stats.subscriptions["deleted"] += 1
        return GraphResponse(204)

    async def reauthorize_subscription(
        self, request: GraphRequest, params: dict[str, str]
    ) -> GraphResponse:
        self._owned(request, params).reauthorization_required = False
        return GraphResponse(204)

    # -- $batch --------------------------------------------------------------------------

    async def batch(self, request: GraphRequest, params: dict[str, str]) -> GraphResponse:
        entries = self._body(request).get("requests")
        if not isinstance(entries, list) or not entries:
            raise bad_request("requests must be a non-empty list")
        if len(entries) > MAX_BATCH:
            raise bad_request(f"$batch holds {len(entries)} requests; at most 20 are allowed")
        _check_batch_entries(entries)
        tasks: dict[str, asyncio.Task[GraphResponse]] = {}
        for entry in entries:
            dependencies = [tasks[d] for d in entry.get("dependsOn", [])]
            tasks[entry["id"]] = asyncio.create_task(self._inner(request, entry, dependencies))
        responses = []
        for entry in entries:
            result = await tasks[entry["id"]]
            item: dict[str, Any] = {"id": entry["id"], "status": result.status}
            headers = dict(result.headers)
            if result.body is not None:
                headers["Content-Type"] = "application/json"
                item["body"] = result.body
            item["headers"] = headers
            responses.append(item)
        return GraphResponse(200, {"responses": responses})

    async def _inner(
        self,
        outer: GraphRequest,
        entry: dict[str, Any],
        dependencies: list[asyncio.Task[GraphResponse]],
    ) -> GraphResponse:
        def refused(status: int, code: str, message: str) -> GraphResponse:
            return GraphResponse(status, error_body(code, message, self.emulator.now(), ""))

        for dependency in dependencies:
            if not 200 <= (await dependency).status < 300:
                return refused(424, "FailedDependency", "a request this one depends on failed")
        url: str = entry["url"]
        if "://" in url:
            return refused(400, "BadRequest", "$batch urls are relative: /users/{id}/presence")
        path, _, query = url.partition("?")
        headers = {str(k).lower(): str(v) for k, v in (entry.get("headers") or {}).items()}
        body = entry.get("body")
        if body is not None and "content-type" not in headers:
            return refused(400, "BadRequest", "a $batch request with a body needs Content-Type")
        inner = GraphRequest(
            method=str(entry["method"]).upper(),
            # As for any request: the path arrives percent-encoded (`u%40contoso.com`).
            path="/" + unquote(path).lstrip("/"),
            body=body,
            headers=headers,
            principal=outer.principal,
            params=dict(parse_qsl(query)),
        )
        return await self.handle(inner, inner=True)


ModelChange = Callable[[model.UserPresence, datetime], None]


class _Errors:
    """What graph_directory needs of this module (it cannot import it: a cycle)."""

    GraphError = GraphError
    GraphResponse = GraphResponse


@dataclass(frozen=True)
class SubscriptionRequest:
    """The checked fields of a `POST /subscriptions` body."""

    user_ids: tuple[str, ...]
    notification_url: str
    lifecycle_url: str | None
    client_state: str | None
    rich: bool
    certificate: x509.Certificate | None
    certificate_id: str | None


def _subscription_request(body: dict[str, Any]) -> SubscriptionRequest:
    """Checks a subscription body field by field; raises `Invalid` naming the first problem."""
    user_ids = subscriptions.parse_resource(body.get("resource"))
    if body.get("changeType") != "updated":
        raise Invalid("changeType must be 'updated' for presence")
    notification_url = subscriptions.check_url(body.get("notificationUrl"), "notificationUrl")
    lifecycle_url = body.get("lifecycleNotificationUrl")
    if lifecycle_url is not None:
        lifecycle_url = subscriptions.check_url(lifecycle_url, "lifecycleNotificationUrl")
    client_state = body.get("clientState")
    if client_state is not None and (not isinstance(client_state, str) or len(client_state) > 128):
        raise Invalid("clientState must be a string of at most 128 characters")
    rich = body.get("includeResourceData", False)
    if not isinstance(rich, bool):
        raise Invalid("includeResourceData must be true or false")
    certificate = cert_id = None
    if rich:
        certificate = subscriptions.load_certificate(body.get("encryptionCertificate"))
        cert_id = body.get("encryptionCertificateId")
        if not isinstance(cert_id, str) or not cert_id:
            raise Invalid("encryptionCertificateId is required with includeResourceData")
    return SubscriptionRequest(
        user_ids, notification_url, lifecycle_url, client_state, rich, certificate, cert_id
    )


def _check_batch_entries(entries: list[Any]) -> None:
    """Each inner request: an object with a unique id, method and url, and dependsOn
    naming only requests listed before it."""
    seen: set[str] = set()
    for entry in entries:
        if not isinstance(entry, dict):
            raise bad_request("each $batch request must be a JSON object")
        rid, method, url = entry.get("id"), entry.get("method"), entry.get("url")
        if not isinstance(rid, str) or not rid or rid in seen:
            raise bad_request("each $batch request needs a unique string id")
        if not isinstance(method, str) or not isinstance(url, str) or not url:
            raise bad_request(f"$batch request {rid}: method and url are required")
        depends = entry.get("dependsOn", [])
        if not isinstance(depends, list) or not all(d in seen for d in depends):
            raise bad_request(
                f"$batch request {rid}: dependsOn must name requests listed before it"
            )
        seen.add(rid)


def model_actions() -> tuple[str, ...]:
    return (
        "setPresence",
        "clearPresence",
        "setUserPreferredPresence",
        "clearUserPreferredPresence",
        "setStatusMessage",
    )


def location_actions() -> tuple[str, ...]:
    """v1.0 work location: delegated only, for the signed-in user."""
    return ("setManualLocation", "setAutomaticLocation", "clearAutomaticLocation", "clearLocation")


NO_BODY_ACTIONS = frozenset(
    {"clearUserPreferredPresence", "clearAutomaticLocation", "clearLocation"}
)


def _own(principal: Principal, user_id: str) -> bool:
    """Whether the reader is the user themself (a delegated token of that user)."""
    return principal.kind == "user" and principal.user_id == user_id


def _work_location(body: dict[str, Any]) -> model.WorkLocation:
    kind, place = body.get("workLocationType"), body.get("placeId")
    if kind not in model.WORK_LOCATION_TYPES:
        valid = ", ".join(model.WORK_LOCATION_TYPES)
        raise bad_request(f"workLocationType {kind!r} is not one of {valid}")
    if place is not None and (not isinstance(place, str) or len(place) > 256):
        raise bad_request("placeId must be a string (the place's id)")
    assert isinstance(kind, str)
    return model.WorkLocation(kind, place or None)


def _seconds(value: float) -> str:
    """Retry-After in seconds, fractional like Graph's (e.g. 2.128)."""
    return f"{value:.3f}".rstrip("0").rstrip(".") or "0"


def _expiry(value: Any) -> datetime:
    """A dateTimeTimeZone: {dateTime, timeZone}, a Windows ("Pacific Standard Time") or
    IANA ("America/Los_Angeles") zone name; UTC when absent."""
    if not isinstance(value, dict) or not isinstance(value.get("dateTime"), str):
        raise bad_request("statusMessage.expiryDateTime must be {dateTime, timeZone}")
    zone_name = value.get("timeZone") or "UTC"
    try:
        zone = timezones.zone(str(zone_name))
    except LookupError:
        raise bad_request(
            f"statusMessage.expiryDateTime.timeZone {zone_name!r} is not a known time zone "
            "(a Windows name such as 'Pacific Standard Time' or an IANA name such as "
            "'Europe/Berlin')"
        ) from None
    text = re.sub(r"(\.\d{6})\d+", r"\1", value["dateTime"].strip())
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise bad_request(
            f"statusMessage.expiryDateTime.dateTime {text!r} is not ISO 8601"
        ) from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)
