"""Web sign-in at the emulator's identity provider: the OpenID Connect authorization code
flow with PKCE, as the Microsoft identity platform v2.0 runs it (issue 14).

What it follows from Microsoft's documentation ("Microsoft identity platform and OAuth
2.0 authorization code flow", "ID token claims reference"):

* `/authorize` checks `client_id` and `redirect_uri` first (exact match with one the
  app registered); while they are wrong it shows an error page and never redirects
  (AADSTS700016, AADSTS50011). Every later error goes back to the redirect URI as
  `error` / `error_description` / `state`.
* The code lives 10 minutes, is single-use (AADSTS54005 the second time), is bound to
  its client, its redirect URI (AADSTS500112) and its PKCE challenge (AADSTS501481);
  `code_challenge_method` defaults to `plain` as RFC 7636 has it.
* ID token: `aud` the client id, `iss` the tenant's v2.0 issuer, `sub` pairwise (per
  user and app), `oid` / `name` / `preferred_username` with the `profile` scope, `email`
  with the `email` scope when the user has a mail, `groups` (direct memberships; over
  200 the overage claim instead), `roles` (the app roles assigned to the user).

This module is the bookkeeping (requests waiting for a user, codes, sessions); the
identity provider redeems codes, `routes_signin.py` serves the pages.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlsplit

CODE_LIFETIME = timedelta(minutes=10)
# A sign-in page left open this long has to be started again from the app.
LOGIN_LIFETIME = timedelta(hours=1)
SESSION_LIFETIME = timedelta(hours=24)
GROUPS_OVERAGE = 200
RESPONSE_MODES = ("query", "fragment", "form_post")
PROMPTS = ("login", "none", "consent", "select_account", "create")
CHALLENGE_METHODS = ("S256", "plain")
MAX_PENDING = 10_000


@dataclass(frozen=True)
class Profile:
    """What the directory knows about a user who signs in."""

    user_id: str
    upn: str
    name: str
    mail: str | None
    groups: tuple[str, ...]
    enabled: bool = True


@dataclass
class WebApp:
    """An app registration's sign-in settings and its app-role assignments."""

    client_id: str
    redirect_uris: tuple[str, ...] = ()
    post_logout_redirect_uris: tuple[str, ...] = ()
    public: bool = True  # no client secret: its codes need PKCE
    roles: dict[str, tuple[str, ...]] = field(default_factory=dict)  # user id -> roles

    def to_json(self, confidential: bool) -> dict[str, object]:
        return {
            "client_id": self.client_id,
            "confidential": confidential,
            "redirect_uris": list(self.redirect_uris),
            "post_logout_redirect_uris": list(self.post_logout_redirect_uris),
            "role_assignments": {user: list(roles) for user, roles in self.roles.items()},
        }


@dataclass(frozen=True)
class AuthRequest:
    """An authorize request whose client and redirect URI have been checked."""

    tenant: str  # the path segment, for the form's action
    tid: str
    client_id: str
    redirect_uri: str
    response_mode: str
    scopes: tuple[str, ...]
    state: str | None
    nonce: str | None
    challenge: str | None
    challenge_method: str
    login_hint: str | None
    prompt: str | None


class PageError(Exception):
    """An authorize error shown on the emulator's page: never sent to a redirect URI."""

    def __init__(self, code: int, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.status = status

    @property
    def text(self) -> str:
        return f"AADSTS{self.code}: {self.message}" if self.code else self.message


class RedirectError(Exception):
    """An authorize error sent back to the (registered) redirect URI."""

    def __init__(
        self,
        redirect_uri: str,
        response_mode: str,
        state: str | None,
        error: str,
        description: str,
        code: int,
    ) -> None:
        super().__init__(description)
        self.redirect_uri = redirect_uri
        self.response_mode = response_mode
        self.state = state
        self.error = error
        # Codes we could not confirm in Microsoft's documentation are left out (0).
        self.description = f"AADSTS{code}: {description}" if code else description


@dataclass
class AuthCode:
    request: AuthRequest
    user_id: str
    session_id: str | None
    expires_at: datetime
    redeemed: bool = False


@dataclass
class Session:
    id: str
    user_id: str
    upn: str
    tid: str
    expires_at: datetime


@dataclass
class CodeCounts:
    issued: int = 0
    redeemed: int = 0
    refused: int = 0


def valid_redirect_uri(uri: str) -> bool:
    """Absolute, no fragment; http is allowed anywhere (the demo's hub is plain HTTP)."""
    parts = urlsplit(uri)
    return bool(parts.scheme and (parts.netloc or parts.scheme not in ("http", "https"))) and (
        "#" not in uri
    )


class WebSignIn:
    def __init__(self) -> None:
        self.apps: dict[str, WebApp] = {}
        self.pending: dict[str, tuple[AuthRequest, datetime]] = {}
        self.codes: dict[str, AuthCode] = {}
        self.sessions: dict[str, Session] = {}
        self.counts = CodeCounts()

    # -- registrations -------------------------------------------------------------------

    def register(
        self,
        client_id: str,
        redirect_uris: tuple[str, ...],
        post_logout: tuple[str, ...],
        public: bool,
    ) -> WebApp:
        """Registering again replaces the URIs and keeps the role assignments."""
        app = self.apps.get(client_id) or WebApp(client_id)
        app.public = public
        app.redirect_uris = redirect_uris
        app.post_logout_redirect_uris = post_logout
        self.apps[client_id] = app
        return app

    # -- /authorize ----------------------------------------------------------------------

    def check(self, params: Mapping[str, str], tenant: str, tid: str) -> AuthRequest:
        """The request, or PageError while client and redirect URI are in doubt, else
        RedirectError."""
        client_id, redirect_uri = self._target(params, tenant)
        mode = params.get("response_mode") or "query"
        state = params.get("state")

        def refuse(error: str, description: str, code: int) -> RedirectError:
            back_mode = mode if mode in RESPONSE_MODES else "query"
            return RedirectError(redirect_uri, back_mode, state, error, description, code)

        if mode not in RESPONSE_MODES:
            raise refuse("invalid_request", f"The response_mode '{mode}' is not supported.", 0)
        response_type = params.get("response_type", "")
        if response_type != "code":
            raise refuse(
                "unsupported_response_type",
                f"The response_type '{response_type}' is not enabled for the application; "
                "the emulator issues authorization codes only.",
                700054,
            )
        scopes = tuple(params.get("scope", "").split())
        if "openid" not in scopes:
            raise refuse(
                "invalid_scope",
                "The provided value for the input parameter 'scope' is not valid: a sign-in "
                "needs the 'openid' scope.",
                70011,
            )
        challenge = params.get("code_challenge") or None
        method = params.get("code_challenge_method") or "plain"
        if challenge is not None and method not in CHALLENGE_METHODS:
            raise refuse(
                "invalid_request",
                f"The code_challenge_method '{method}' is not supported (S256 or plain).",
                0,
            )
        if challenge is None and self.apps[client_id].public:
            raise refuse(
                "invalid_request",
                "Proof Key for Code Exchange is required: a public client must send a "
                "code_challenge.",
                9002325,
            )
        if challenge is not None and not 43 <= len(challenge) <= 128:
            raise refuse(
                "invalid_request",
                "Invalid size of Code_Challenge parameter (43 to 128 characters).",
                501491,
            )
        prompt = params.get("prompt") or None
        if prompt is not None and prompt not in PROMPTS:
            raise refuse("invalid_request", f"Invalid value for prompt: '{prompt}'.", 0)
        return AuthRequest(
            tenant=tenant,
            tid=tid,
            client_id=client_id,
            redirect_uri=redirect_uri,
            response_mode=mode,
            scopes=scopes,
            state=state,
            nonce=params.get("nonce") or None,
            challenge=challenge,
            challenge_method=method,
            login_hint=params.get("login_hint") or None,
            prompt=prompt,
        )

    def _target(self, params: Mapping[str, str], tenant: str) -> tuple[str, str]:
        client_id = params.get("client_id", "")
        if not client_id:
            raise PageError(
                900144, "The request body must contain the following parameter: 'client_id'."
            )
        app = self.apps.get(client_id)
        if app is None:
            raise PageError(
                700016,
                f"Application with identifier '{client_id}' was not found in the directory "
                f"'{tenant}'. The app must be registered with redirect URIs "
                "(POST /_emulator/apps) before it can sign users in.",
            )
        redirect_uri = params.get("redirect_uri", "")
        if not redirect_uri:
            raise PageError(
                900144, "The request body must contain the following parameter: 'redirect_uri'."
            )
        if redirect_uri not in app.redirect_uris:
            raise PageError(
                50011,
                f"The redirect URI '{redirect_uri}' specified in the request does not match "
                f"the redirect URIs configured for the application '{client_id}'. Make sure "
                "the redirect URI sent in the request matches one added to your application.",
            )
        return client_id, redirect_uri

    def wait_for_user(self, request: AuthRequest, now: datetime) -> str:
        """Keep `request` while its sign-in page is open; the page posts the key back."""
        for key, (_, started) in list(self.pending.items()):
            if started + LOGIN_LIFETIME <= now:
                del self.pending[key]
        if len(self.pending) >= MAX_PENDING:  # the oldest page goes first
            del self.pending[next(iter(self.pending))]
        key = secrets.token_urlsafe(24)
        self.pending[key] = (request, now)
        return key

    def waiting(self, key: str, now: datetime) -> AuthRequest | None:
        entry = self.pending.get(key)
        if entry is None or entry[1] + LOGIN_LIFETIME <= now:
            return None
        return entry[0]

    def issue_code(
        self, request: AuthRequest, user_id: str, session_id: str | None, now: datetime
    ) -> str:
        for key, old in list(self.codes.items()):
            if old.expires_at <= now:
                del self.codes[key]
        code = "1.A" + secrets.token_urlsafe(96)  # opaque and long, like Entra's
        self.codes[code] = AuthCode(request, user_id, session_id, now + CODE_LIFETIME)
        self.counts.issued += 1
        return code

    # -- sessions ------------------------------------------------------------------------

    def start_session(self, profile: Profile, tid: str, now: datetime) -> Session:
        session = Session(str(uuid.uuid4()), profile.user_id, profile.upn, tid,
                          now + SESSION_LIFETIME)  # fmt: skip
        self.sessions[session.id] = session
        return session

    def session(self, session_id: str | None, tid: str, now: datetime) -> Session | None:
        session = self.sessions.get(session_id or "")
        if session is None or session.expires_at <= now or session.tid != tid:
            return None
        return session

    def end_session(self, session_id: str | None) -> bool:
        return self.sessions.pop(session_id or "", None) is not None
