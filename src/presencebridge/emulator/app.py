"""The emulator's ASGI app: identity provider, Graph under /v1.0, control API under /_emulator."""

from __future__ import annotations

import base64
import html
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal
from urllib.parse import parse_qsl

from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import Body, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from presencebridge import __version__
from presencebridge.emulator import model
from presencebridge.emulator.graph import GraphApi, GraphRequest, error_body
from presencebridge.emulator.identity import (
    AuthFailure,
    OAuthError,
    TokenSigner,
    issuer_for,
    tenant_id,
)
from presencebridge.emulator.state import USER_ID, Emulator

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

GRAPH_METHODS = ["GET", "POST", "PATCH", "DELETE", "PUT"]
LIFECYCLE_EVENTS = ("reauthorizationRequired", "subscriptionRemoved", "missed")
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


class CountRequests:
    """Counts non-Graph requests per `METHOD path-template` (Graph counts its own)."""

    def __init__(self, app: ASGIApp, emulator: Emulator) -> None:
        self.app = app
        self.emulator = emulator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/v1.0/"):
            await self.app(scope, receive, send)
            return
        status = 500

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", "(unknown)")
            stats = self.emulator.stats
            stats.requests[f"{scope['method']} {template}"] += 1
            stats.statuses[str(status)] += 1


# -- control API bodies --------------------------------------------------------------------


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UserIn(Strict):
    id: str = Field(pattern=f"^{USER_ID.pattern}$", description="the Entra object id to emulate")
    upn: str | None = Field(None, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=256)
    federated: bool = False


class ClientIn(Strict):
    availability: str = Field(min_length=1, max_length=32)
    activity: str | None = Field(None, max_length=64)


class PreferredIn(Strict):
    availability: str
    activity: str
    expirationDuration: str | None = None


class ApproveIn(Strict):
    user_code: str = Field(min_length=1, max_length=32)
    user: str = Field(min_length=1, max_length=256, description="user id or upn")
    deny: bool = False


class ClockIn(Strict):
    advance_seconds: float = Field(ge=0, le=366 * 86400)


class FaultsIn(Strict):
    rate_429: float = Field(0.0, ge=0, le=1)
    rate_503: float = Field(0.0, ge=0, le=1)
    latency_ms: float = Field(0.0, ge=0, le=60_000)
    retry_after_seconds: float = Field(1.0, gt=0, le=3600)
    seed: int | None = None


class AppIn(Strict):
    client_id: str = Field(min_length=1, max_length=128)
    client_secret: str | None = Field(None, min_length=1, max_length=512)


class LifecycleIn(Strict):
    event: Literal["reauthorizationRequired", "subscriptionRemoved", "missed"]


def _problem(status: int, detail: str, code: str) -> JSONResponse:
    return JSONResponse({"detail": detail, "code": code}, status)


def _validation_detail(error: RequestValidationError) -> tuple[int, str]:
    problems = []
    for item in error.errors():
        if item.get("type") == "json_invalid":
            return 400, "malformed JSON body"
        where = ".".join(str(p) for p in item.get("loc", ()) if p != "body") or "body"
        problems.append(f"{where}: {item.get('msg', 'invalid')}")
    return 422, "; ".join(problems)


def _base_url(request: Request) -> str:
    return str(request.base_url).rstrip("/")


async def _form(request: Request) -> dict[str, str]:
    """An OAuth form body; HTTP Basic client authentication is folded in."""
    body = (await request.body()).decode("utf-8", "replace")
    form = dict(parse_qsl(body, keep_blank_values=True))
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic" and value:
        try:
            client_id, _, secret = base64.b64decode(value).decode().partition(":")
        except ValueError:
            client_id, secret = "", ""
        form.setdefault("client_id", client_id)
        form.setdefault("client_secret", secret)
    return form


def create_app(
    *,
    signing_key: rsa.RSAPrivateKey | None = None,
    strict: bool = False,
    emulator: Emulator | None = None,
) -> FastAPI:
    """The emulator app. Pass an `Emulator` to control it in-process, or a signing key
    (kept across restarts by the server) to have one made; a fresh key otherwise."""
    if emulator is None:
        key = signing_key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
        emulator = Emulator(TokenSigner(key), strict=strict)
    state = emulator
    graph = GraphApi(state)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        await state.start()
        try:
            yield
        finally:
            await state.stop()

    app = FastAPI(
        title="presencebridge Graph emulator",
        version=__version__,
        description="Microsoft Graph presence and Entra ID sign-in, emulated (GRAPH.md).",
        lifespan=lifespan,
    )
    app.state.emulator = state
    app.add_middleware(CountRequests, emulator=state)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, error: RequestValidationError) -> JSONResponse:
        status, detail = _validation_detail(error)
        return _problem(status, detail, "malformed_json" if status == 400 else "invalid")

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, error: HTTPException) -> JSONResponse:
        return _problem(error.status_code, str(error.detail), f"http_{error.status_code}")

    # -- identity provider ---------------------------------------------------------------

    @app.get("/{tenant}/v2.0/.well-known/openid-configuration")
    async def openid_configuration(tenant: str, request: Request) -> dict[str, Any]:
        base = f"{_base_url(request)}/{tenant}"
        return {
            "issuer": issuer_for(_base_url(request), tenant_id(tenant)),
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "jwks_uri": f"{base}/discovery/v2.0/keys",
            "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
            "response_modes_supported": ["query", "fragment", "form_post"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "grant_types_supported": [
                "client_credentials",
                "urn:ietf:params:oauth:grant-type:device_code",
                "refresh_token",
            ],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
            "claims_supported": [
                "sub", "iss", "aud", "exp", "iat", "nbf", "name", "oid", "tid",
                "preferred_username", "ver",
            ],
            "request_uri_parameter_supported": False,
            "tenant_region_scope": None,
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
        }  # fmt: skip

    @app.get("/{tenant}/discovery/v2.0/keys")
    async def jwks(tenant: str) -> dict[str, Any]:
        return state.identity.signer.jwks()

    @app.post("/{tenant}/oauth2/v2.0/token")
    async def token(tenant: str, request: Request) -> JSONResponse:
        form = await _form(request)
        try:
            answer = state.identity.token(form, _base_url(request), tenant_id(tenant), state.now())
        except OAuthError as error:
            return JSONResponse(error.to_json(state.now()), error.status, headers=NO_STORE)
        return JSONResponse(answer, headers=NO_STORE)

    @app.post("/{tenant}/oauth2/v2.0/devicecode")
    async def devicecode(tenant: str, request: Request) -> JSONResponse:
        form = await _form(request)
        try:
            answer = state.identity.start_device_flow(
                form, f"{_base_url(request)}/devicelogin", state.now()
            )
        except OAuthError as error:
            return JSONResponse(error.to_json(state.now()), error.status, headers=NO_STORE)
        return JSONResponse(answer, headers=NO_STORE)

    @app.get("/{tenant}/oauth2/v2.0/authorize")
    async def authorize(tenant: str) -> JSONResponse:
        return JSONResponse(
            OAuthError(
                400,
                "unsupported_response_type",
                "the emulator has no interactive sign-in; use the device code flow",
            ).to_json(state.now()),
            400,
        )

    @app.get("/{tenant}/userrealm/{username}")
    async def user_realm(tenant: str, username: str) -> dict[str, Any]:
        """Home-realm discovery as msal asks for it (Federated for federated users)."""
        user = state.find_user(username)
        domain = username.rpartition("@")[2].lower()
        federated = user.federated if user is not None else state.domain_federated(domain)
        answer: dict[str, Any] = {
            "ver": "1.0",
            "account_type": "Unknown"
            if federated is None
            else ("Federated" if federated else "Managed"),
            "domain_name": domain,
            "cloud_instance_name": "microsoftonline.com",
            "cloud_audience_urn": "urn:federation:MicrosoftOnline",
        }
        if federated:
            answer |= {
                "federation_protocol": "WSTrust",
                "federation_metadata_url": f"https://adfs.{domain}/adfs/services/trust/mex",
                "federation_active_auth_url": f"https://adfs.{domain}/adfs/services/trust/2005/usernamemixed",
            }
        return answer

    @app.get("/devicelogin", response_class=HTMLResponse)
    async def devicelogin() -> HTMLResponse:
        return HTMLResponse(DEVICE_LOGIN_PAGE)

    # -- Graph ---------------------------------------------------------------------------

    @app.api_route("/v1.0/{path:path}", methods=GRAPH_METHODS, include_in_schema=False)
    async def graph_route(path: str, request: Request) -> Response:
        headers = {k.lower(): v for k, v in request.headers.items()}
        client_request_id = headers.get("client-request-id", "")
        answer_headers = {"request-id": client_request_id or _request_id()}
        if client_request_id:
            answer_headers["client-request-id"] = client_request_id
        method = request.method.upper()
        raw = await request.body()
        body: Any = None
        try:
            principal = state.identity.principal(headers.get("authorization"), state.now())
            if raw.strip():
                body = json.loads(raw)
        except AuthFailure as failure:
            state.stats.requests[graph.template_of(method, "/" + path)] += 1
            state.stats.statuses["401"] += 1
            return JSONResponse(
                error_body(
                    "InvalidAuthenticationToken", str(failure), state.now(), client_request_id
                ),
                401,
                headers=answer_headers | {"WWW-Authenticate": 'Bearer realm=""'},
            )
        except ValueError:
            state.stats.requests[graph.template_of(method, "/" + path)] += 1
            state.stats.statuses["400"] += 1
            return JSONResponse(
                error_body(
                    "BadRequest",
                    "Unable to read JSON request payload. Please ensure Content-Type header "
                    "is set and payload is of valid JSON format.",
                    state.now(),
                    client_request_id,
                ),
                400,
                headers=answer_headers,
            )
        result = await graph.handle(
            GraphRequest(method, "/" + path, body, headers, principal, dict(request.query_params))
        )
        if result.body is None:
            return Response(status_code=result.status, headers=answer_headers | result.headers)
        return JSONResponse(result.body, result.status, headers=answer_headers | result.headers)

    # -- control API ---------------------------------------------------------------------

    def user_or_404(key: str) -> Any:
        user = state.find_user(key)
        if user is None:
            raise HTTPException(404, f"no user {key!r}; create it with POST /_emulator/users")
        return user

    @app.get("/_emulator/health")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "version": __version__, "strict": state.strict}

    @app.post("/_emulator/users")
    async def create_user(body: UserIn) -> JSONResponse:
        try:
            user, created = state.create_user(body.id, body.upn, body.federated)
        except ValueError as error:
            return _problem(409, str(error), "conflict")
        if not created and (
            (body.upn is not None and body.upn.lower() != user.upn.lower())
            or body.federated != user.federated
        ):
            return _problem(409, f"user {body.id!r} exists with other details", "conflict")
        state.touch(user)
        return JSONResponse(user.describe(state.now()), 201 if created else 200)

    @app.get("/_emulator/users")
    async def list_users() -> dict[str, Any]:
        value = []
        for user in state.users.values():
            value.append({"upn": user.upn, **state.read(user)})
        return {"value": value}

    @app.get("/_emulator/users/{user_id}")
    async def get_user(user_id: str) -> dict[str, Any]:
        user = user_or_404(user_id)
        state.touch(user)
        described: dict[str, Any] = user.describe(state.now())
        return described

    def apply(user_id: str, change: Callable[[model.UserPresence, Any], None]) -> dict[str, Any]:
        user = user_or_404(user_id)
        try:
            state.update(user, change)
        except model.Invalid as error:
            raise HTTPException(422, str(error)) from None
        described: dict[str, Any] = user.describe(state.now())
        return described

    @app.post("/_emulator/users/{user_id}/client")
    async def set_client(user_id: str, body: ClientIn) -> dict[str, Any]:
        """The Teams client's own session; availability Offline closes Teams."""
        return apply(user_id, lambda p, now: p.set_client(body.availability, body.activity, now))

    @app.delete("/_emulator/users/{user_id}/client")
    async def close_client(user_id: str) -> dict[str, Any]:
        return apply(user_id, lambda p, now: p.set_client("Offline", None, now))

    @app.post("/_emulator/users/{user_id}/preferred")
    async def set_preferred(user_id: str, body: PreferredIn) -> dict[str, Any]:
        """The user sets a status by hand in Teams."""
        try:
            model.validate_preferred_pair(body.availability, body.activity)
            duration = model.preferred_duration(body.availability, body.expirationDuration)
        except model.Invalid as error:
            raise HTTPException(422, str(error)) from None
        return apply(
            user_id,
            lambda p, now: p.set_preferred(body.availability, body.activity, duration, now),
        )

    @app.delete("/_emulator/users/{user_id}/preferred")
    async def clear_preferred(user_id: str) -> dict[str, Any]:
        return apply(user_id, lambda p, now: p.clear_preferred(now))

    @app.post("/_emulator/device/approve")
    async def approve(body: ApproveIn) -> dict[str, Any]:
        user = user_or_404(body.user)
        try:
            grant = state.identity.approve(
                body.user_code, user.id, user.upn, state.now(), deny=body.deny
            )
        except LookupError as error:
            raise HTTPException(404, str(error.args[0])) from None
        except ValueError as error:
            raise HTTPException(409, str(error)) from None
        return {
            "user_code": grant.user_code,
            "user": user.id,
            "client_id": grant.client_id,
            "scopes": list(grant.scopes),
            "approved": not body.deny,
        }

    @app.post("/_emulator/apps", status_code=201)
    async def register_app(body: AppIn) -> dict[str, Any]:
        """An app registration; with --strict only registered apps get tokens."""
        state.identity.register_app(body.client_id, body.client_secret)
        return {"client_id": body.client_id, "confidential": body.client_secret is not None}

    @app.get("/_emulator/clock")
    async def get_clock() -> dict[str, Any]:
        return {"now": model.graph_time(state.now()), "offset_seconds": state.clock.offset_seconds}

    @app.post("/_emulator/clock")
    async def move_clock(body: ClockIn) -> dict[str, Any]:
        state.advance(body.advance_seconds)
        return await get_clock()

    @app.get("/_emulator/faults")
    async def get_faults() -> dict[str, Any]:
        return state.faults.to_json()

    @app.post("/_emulator/faults")
    async def set_faults(body: FaultsIn) -> dict[str, Any]:
        state.faults.configure(
            body.rate_429, body.rate_503, body.latency_ms, body.retry_after_seconds, body.seed
        )
        return state.faults.to_json()

    @app.get("/_emulator/subscriptions")
    async def all_subscriptions() -> dict[str, Any]:
        value = []
        for sid in list(state.subscriptions):
            subscription = state.live_subscription(sid)
            if subscription is not None:
                value.append(
                    subscription.to_json()
                    | {
                        "dropped": subscription.dropped,
                        "reauthorizationRequired": subscription.reauthorization_required,
                        "watchedUserCount": len(subscription.user_ids),
                    }
                )
        return {"value": value}

    def subscription_or_404(subscription_id: str) -> Any:
        subscription = state.live_subscription(subscription_id)
        if subscription is None:
            raise HTTPException(404, f"no live subscription {subscription_id!r}")
        return subscription

    @app.post("/_emulator/subscriptions/{subscription_id}/lifecycle")
    async def lifecycle(
        subscription_id: str, body: Annotated[LifecycleIn, Body()]
    ) -> dict[str, Any]:
        subscription = subscription_or_404(subscription_id)
        sent = state.lifecycle(subscription, body.event)
        if body.event == "subscriptionRemoved":
            state.remove_subscription(subscription.id)
            state.stats.subscriptions["removed"] += 1
        return {"subscription": subscription.id, "event": body.event, "sent": sent}

    @app.post("/_emulator/subscriptions/{subscription_id}/drop")
    async def drop(subscription_id: str) -> dict[str, Any]:
        """From now on the subscription delivers nothing, and says nothing about it."""
        subscription = subscription_or_404(subscription_id)
        subscription.dropped = True
        return {"subscription": subscription.id, "dropped": True}

    @app.get("/_emulator/stats")
    async def stats() -> dict[str, Any]:
        return state.stats_json()

    @app.post("/_emulator/reset")
    async def reset() -> dict[str, Any]:
        state.reset()
        return {"reset": True}

    return app


def _request_id() -> str:
    return str(uuid.uuid4())


DEVICE_LOGIN_PAGE = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Emulated sign-in</title></head>
<body style="font-family: sans-serif; max-width: 36em; margin: 3em auto">
<h1>Emulated Microsoft sign-in</h1>
<p>{html.escape("Enter the code your app shows and the user (id or UPN) to sign in as.")}</p>
<form id="f"><p><label>Code <input name="user_code" required></label></p>
<p><label>User <input name="user" required></label></p><button>Sign in</button></form>
<p id="out"></p>
<script>
document.getElementById("f").onsubmit = async (e) => {{
  e.preventDefault();
  const data = Object.fromEntries(new FormData(e.target));
  const r = await fetch("/_emulator/device/approve", {{method: "POST",
    headers: {{"Content-Type": "application/json"}}, body: JSON.stringify(data)}});
  document.getElementById("out").textContent = r.ok ? "Signed in. You may close this page."
    : "Refused: " + (await r.json()).detail;
}};
</script></body></html>
"""
