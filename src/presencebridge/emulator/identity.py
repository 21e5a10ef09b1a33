"""The emulator's identity provider: what msal needs from Entra ID, and token checks.

Grants: client credentials (app tokens), the device-code flow (delegated tokens,
approved through the control API), authorization codes of the web sign-in (signin.py)
and refresh tokens. Tokens are RS256 JWTs
signed with one key published in the JWKS; every time in them comes from the
emulator clock, so moving that clock expires them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from presencebridge.emulator.signin import GROUPS_OVERAGE, AuthCode, Profile, WebSignIn

GRAPH_RESOURCE = "https://graph.microsoft.com"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
# The app id Graph signs change-notification validation tokens as.
NOTIFICATION_APP_ID = "0bf30f3b-4a52-48df-9a82-234910c4a086"
# The tenant behind `common` / `organizations` and the like.
DEFAULT_TENANT_ID = "6d5a2d5e-6e7a-4c1f-9b8e-0e1a5e3c7b11"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
ACCESS_TOKEN_LIFETIME = timedelta(hours=1)
REFRESH_TOKEN_LIFETIME = timedelta(days=90)
DEVICE_CODE_LIFETIME = timedelta(minutes=15)
# Entra asks for 5 s; 1 s keeps emulated sign-ins quick and clients must honour any value.
DEVICE_POLL_INTERVAL = 1
APP_ROLES = ("Presence.ReadWrite.All", "User.Read.All", "GroupMember.Read.All")
# What a delegated `.default` request is granted: the app's configured permissions.
DEFAULT_DELEGATED_SCOPES = ("Presence.Read.All", "Presence.ReadWrite", "User.Read")
OIDC_SCOPES = frozenset({"openid", "profile", "offline_access", "email"})
_GRAPH_PREFIXES = (GRAPH_RESOURCE + "/", GRAPH_APP_ID + "/")
_GUID = re.compile(r"[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
_USER_CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def tenant_id(segment: str) -> str:
    """The tenant id an authority path segment stands for (any segment is accepted)."""
    if _GUID.fullmatch(segment):
        return segment.lower()
    if segment.lower() in ("common", "organizations", "consumers"):
        return DEFAULT_TENANT_ID
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, segment.lower()))


def issuer_for(base_url: str, tid: str) -> str:
    return f"{base_url.rstrip('/')}/{tid}/v2.0"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


class OAuthError(Exception):
    """An error of the token endpoints, in Entra's JSON shape."""

    def __init__(self, status: int, error: str, description: str, code: int = 0) -> None:
        super().__init__(description)
        self.status = status
        self.error = error
        self.description = description
        self.code = code

    def to_json(self, now: datetime) -> dict[str, Any]:
        prefix = f"AADSTS{self.code}: " if self.code else ""
        return {
            "error": self.error,
            "error_description": prefix + self.description,
            "error_codes": [self.code] if self.code else [],
            "timestamp": now.strftime("%Y-%m-%d %H:%M:%SZ"),
            "trace_id": str(uuid.uuid4()),
            "correlation_id": str(uuid.uuid4()),
        }


class AuthFailure(Exception):
    """A bearer token the Graph paths refuse (401)."""


@dataclass(frozen=True)
class Principal:
    """Who a valid access token speaks for."""

    kind: Literal["app", "user"]
    app_id: str
    tenant_id: str
    issuer: str
    user_id: str | None = None
    upn: str | None = None
    scopes: frozenset[str] = frozenset()
    roles: frozenset[str] = frozenset()

    def may_read(self, user_id: str) -> bool:
        if self.kind == "app":
            return bool(self.roles & {"Presence.Read.All", "Presence.ReadWrite.All"})
        if self.scopes & {"Presence.Read.All", "Presence.ReadWrite.All"}:
            return True
        return user_id == self.user_id and bool(
            self.scopes & {"Presence.Read", "Presence.ReadWrite"}
        )

    def may_write(self, user_id: str) -> bool:
        if self.kind == "app":
            return "Presence.ReadWrite.All" in self.roles
        if "Presence.ReadWrite.All" in self.scopes:
            return True
        return user_id == self.user_id and "Presence.ReadWrite" in self.scopes


class TokenSigner:
    """Signs and checks RS256 JWTs with the emulator's one key."""

    def __init__(self, key: rsa.RSAPrivateKey) -> None:
        self.key = key
        numbers = key.public_key().public_numbers()
        self._jwk = {
            "kty": "RSA",
            "e": _b64url(numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")),
            "n": _b64url(numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")),
        }
        # RFC 7638 thumbprint: stable for the key, so it survives restarts with it.
        canonical = json.dumps(self._jwk, sort_keys=True, separators=(",", ":")).encode()
        self.kid = _b64url(hashlib.sha256(canonical).digest())

    def jwks(self) -> dict[str, Any]:
        return {"keys": [{**self._jwk, "use": "sig", "alg": "RS256", "kid": self.kid}]}

    def sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": self.kid})

    def decode(self, token: str, audience: str) -> dict[str, Any]:
        """Signature and audience checked; the caller checks time on the emulator clock."""
        claims: dict[str, Any] = jwt.decode(
            token,
            self.key.public_key(),
            algorithms=["RS256"],
            audience=audience,
            options={
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
                "require": ["exp", "aud", "iss", "tid"],
            },
        )
        return claims


@dataclass
class DeviceGrant:
    device_code: str
    user_code: str
    client_id: str
    scopes: tuple[str, ...]
    expires_at: datetime
    user_id: str | None = None
    upn: str | None = None
    denied: bool = False
    redeemed: bool = False


@dataclass
class RefreshGrant:
    client_id: str
    user_id: str
    upn: str
    tenant_id: str
    expires_at: datetime
    web: bool = False  # from a web sign-in: its ID tokens carry the full claim set


@dataclass
class IssueCounts:
    client_credentials: int = 0
    device_code: int = 0
    authorization_code: int = 0
    refresh_token: int = 0
    refused: int = 0

    def to_json(self) -> dict[str, int]:
        return dict(self.__dict__)


@dataclass
class IdentityProvider:
    signer: TokenSigner
    strict: bool = False
    apps: dict[str, str | None] = field(default_factory=dict)
    devices: dict[str, DeviceGrant] = field(default_factory=dict)
    refresh_grants: dict[str, RefreshGrant] = field(default_factory=dict)
    issued: IssueCounts = field(default_factory=IssueCounts)
    web: WebSignIn = field(default_factory=WebSignIn)
    # The directory's view of a user (by object id), set by the `Emulator`.
    profile_of: Callable[[str], Profile | None] = lambda _user_id: None

    def reset(self) -> None:
        self.apps.clear()
        self.devices.clear()
        self.refresh_grants.clear()
        self.issued = IssueCounts()
        self.web = WebSignIn()

    # -- client authentication -----------------------------------------------------------

    def register_app(
        self,
        client_id: str,
        client_secret: str | None,
        redirect_uris: tuple[str, ...] = (),
        post_logout_redirect_uris: tuple[str, ...] = (),
    ) -> None:
        self.apps[client_id] = client_secret
        self.web.register(
            client_id, redirect_uris, post_logout_redirect_uris, public=client_secret is None
        )

    def _check_client(self, form: dict[str, str], confidential: bool) -> str:
        client_id = form.get("client_id", "")
        if not client_id:
            raise OAuthError(400, "invalid_request", "client_id is missing", 900144)
        if not self.strict:
            return client_id
        if client_id not in self.apps:
            raise OAuthError(
                401,
                "invalid_client",
                f"Application with identifier '{client_id}' was not found in the directory",
                700016,
            )
        registered = self.apps[client_id]
        given = form.get("client_secret")
        if "client_assertion" in form:
            raise OAuthError(
                401, "invalid_client", "the emulator's strict mode accepts client secrets only"
            )
        if given is not None or confidential:
            if registered is None or given is None:
                raise OAuthError(401, "invalid_client", "client_secret is missing", 7000218)
            if not hmac.compare_digest(given.encode(), registered.encode()):
                raise OAuthError(401, "invalid_client", "Invalid client secret provided", 7000215)
        return client_id

    # -- the token endpoint --------------------------------------------------------------

    def token(self, form: dict[str, str], base_url: str, tid: str, now: datetime) -> dict[str, Any]:
        """Answer a token request made to `base_url`/<tenant>, `tid` being that tenant."""
        grant = form.get("grant_type", "")
        issuer = issuer_for(base_url, tid)
        try:
            if grant == "client_credentials":
                return self._client_credentials(form, issuer, tid, now)
            if grant == DEVICE_GRANT:
                return self._device_token(form, issuer, tid, now)
            if grant == "authorization_code":
                return self._authorization_code(form, base_url, now)
            if grant == "refresh_token":
                return self._refresh(form, base_url, now)
        except OAuthError:
            self.issued.refused += 1
            raise
        self.issued.refused += 1
        raise OAuthError(
            400,
            "unsupported_grant_type",
            f"grant_type {grant!r} is not supported by the emulator "
            "(client_credentials, device_code, authorization_code, refresh_token)",
            70003,
        )

    def _client_credentials(
        self, form: dict[str, str], issuer: str, tid: str, now: datetime
    ) -> dict[str, Any]:
        client_id = self._check_client(form, confidential=True)
        scopes = form.get("scope", "").split()
        if scopes not in (
            [GRAPH_RESOURCE + "/.default"],
            [GRAPH_APP_ID + "/.default"],
        ):
            raise OAuthError(
                400,
                "invalid_scope",
                f"The provided value for scope {' '.join(scopes)!r} is not valid. Client "
                "credential flows must have a scope value of https://graph.microsoft.com/.default",
                1002012,
            )
        token = self.signer.sign(
            {
                **self._common_claims(issuer, tid, client_id, now, confidential=True),
                "oid": str(uuid.uuid5(uuid.NAMESPACE_URL, f"sp:{tid}:{client_id}")),
                "sub": str(uuid.uuid5(uuid.NAMESPACE_URL, f"sp:{tid}:{client_id}")),
                "idtyp": "app",
                "roles": list(APP_ROLES),
            }
        )
        self.issued.client_credentials += 1
        lifetime = int(ACCESS_TOKEN_LIFETIME.total_seconds())
        return {
            "token_type": "Bearer",
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": token,
        }

    def _common_claims(
        self, issuer: str, tid: str, client_id: str, now: datetime, confidential: bool
    ) -> dict[str, Any]:
        acr = "1" if confidential else "0"
        return {
            "aud": GRAPH_RESOURCE,
            "iss": issuer,
            "iat": _epoch(now),
            "nbf": _epoch(now),
            "exp": _epoch(now + ACCESS_TOKEN_LIFETIME),
            "tid": tid,
            "appid": client_id,
            "azp": client_id,
            "appidacr": acr,
            "azpacr": acr,
            "ver": "2.0",
            "uti": secrets.token_urlsafe(16),
        }

    def start_device_flow(
        self, form: dict[str, str], verification_uri: str, now: datetime
    ) -> dict[str, Any]:
        client_id = self._check_client(form, confidential=False)
        scopes = tuple(form.get("scope", "").split())
        _graph_scopes(scopes)  # refuse foreign resources now, not at the first poll
        user_code = "".join(secrets.choice(_USER_CODE_ALPHABET) for _ in range(9))
        grant = DeviceGrant(
            device_code=secrets.token_urlsafe(48),
            user_code=user_code,
            client_id=client_id,
            scopes=scopes,
            expires_at=now + DEVICE_CODE_LIFETIME,
        )
        self._forget_expired(now)
        self.devices[grant.device_code] = grant
        return {
            "user_code": user_code,
            "device_code": grant.device_code,
            "verification_uri": verification_uri,
            "expires_in": int(DEVICE_CODE_LIFETIME.total_seconds()),
            "interval": DEVICE_POLL_INTERVAL,
            "message": f"To sign in, use a web browser to open the page {verification_uri} "
            f"and enter the code {user_code} to authenticate.",
        }

    def approve(
        self, user_code: str, user_id: str, upn: str, now: datetime, deny: bool = False
    ) -> DeviceGrant:
        """The user signs in on the verification page (the control API plays that)."""
        wanted = user_code.strip().upper().replace("-", "")
        grant = next((g for g in self.devices.values() if g.user_code == wanted), None)
        if grant is None:
            raise LookupError(f"no pending sign-in with user code {user_code!r}")
        if now >= grant.expires_at:
            raise ValueError(f"the sign-in with user code {user_code!r} has expired")
        if grant.user_id is not None or grant.denied:
            raise ValueError(f"the sign-in with user code {user_code!r} was already completed")
        if deny:
            grant.denied = True
        else:
            grant.user_id, grant.upn = user_id, upn
        return grant

    def _forget_expired(self, now: datetime) -> None:
        stale = [c for c, g in self.devices.items() if now >= g.expires_at + DEVICE_CODE_LIFETIME]
        for code in stale:
            del self.devices[code]

    def _device_token(
        self, form: dict[str, str], issuer: str, tid: str, now: datetime
    ) -> dict[str, Any]:
        client_id = self._check_client(form, confidential=False)
        grant = self.devices.get(form.get("device_code", ""))
        if grant is None or grant.client_id != client_id:
            raise OAuthError(400, "invalid_grant", "The provided device code is invalid", 70000)
        if grant.redeemed:
            raise OAuthError(400, "invalid_grant", "The device code was already redeemed", 54005)
        if grant.denied:
            raise OAuthError(400, "authorization_declined", "The user declined the sign-in", 70000)
        if now >= grant.expires_at:
            raise OAuthError(400, "expired_token", "The device code has expired", 70020)
        if grant.user_id is None or grant.upn is None:
            raise OAuthError(
                400,
                "authorization_pending",
                "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
                70016,
            )
        grant.redeemed = True
        self.issued.device_code += 1
        return self._user_tokens(
            form, client_id, grant.user_id, grant.upn, grant.scopes, issuer, tid, now
        )

    def _refresh(self, form: dict[str, str], base_url: str, now: datetime) -> dict[str, Any]:
        grant = self.refresh_grants.get(form.get("refresh_token", ""))
        # A web sign-in's app is registered: its secret is checked in any mode.
        if grant is not None and grant.web:
            client_id = self._web_client(form)
        else:
            client_id = self._check_client(form, confidential=False)
        if grant is None or grant.client_id != client_id:
            raise OAuthError(400, "invalid_grant", "The refresh token is invalid", 9002313)
        if now >= grant.expires_at:
            raise OAuthError(400, "invalid_grant", "The refresh token has expired", 700082)
        scopes = tuple(form.get("scope", "").split())
        # The tokens name the user's tenant, whatever authority segment was used.
        issuer = issuer_for(base_url, grant.tenant_id)
        id_claims = None
        if grant.web:
            profile = self.profile_of(grant.user_id)
            if profile is None or not profile.enabled:
                raise OAuthError(
                    400, "invalid_grant", "The user account no longer exists or is disabled", 50057
                )
            id_claims = self.id_token_claims(
                profile, client_id, scopes, issuer, grant.tenant_id, now, nonce=None
            )
        self.issued.refresh_token += 1
        return self._user_tokens(
            form,
            client_id,
            grant.user_id,
            grant.upn,
            scopes,
            issuer,
            grant.tenant_id,
            now,
            id_claims=id_claims,
        )

    # -- authorization codes (the web sign-in) -------------------------------------------

    def _web_client(self, form: dict[str, str]) -> str:
        """Client authentication for code redemption, in strict mode or not: a web sign-in
        needs a registered app, so its secret (or its being public) is known."""
        client_id = form.get("client_id", "")
        if not client_id:
            raise OAuthError(400, "invalid_request", "client_id is missing", 900144)
        if client_id not in self.web.apps:
            raise OAuthError(
                401,
                "invalid_client",
                f"Application with identifier '{client_id}' was not found in the directory",
                700016,
            )
        registered = self.apps.get(client_id)
        given = form.get("client_secret")
        if registered is None:
            if given is not None or "client_assertion" in form:
                raise OAuthError(
                    401,
                    "invalid_client",
                    "Client is public so neither 'client_assertion' nor 'client_secret' "
                    "should be presented.",
                    700025,
                )
            return client_id
        if given is None:
            raise OAuthError(
                401,
                "invalid_client",
                "The request body must contain the following parameter: 'client_assertion' "
                "or 'client_secret'.",
                7000218,
            )
        if not hmac.compare_digest(given.encode(), registered.encode()):
            raise OAuthError(401, "invalid_client", "Invalid client secret provided.", 7000215)
        return client_id

    def _redeemable(self, form: dict[str, str], client_id: str, now: datetime) -> AuthCode:
        code = self.web.codes.get(form.get("code", ""))
        if code is None or code.request.client_id != client_id:
            # A code issued to another client stays redeemable by its own client.
            raise OAuthError(
                400,
                "invalid_grant",
                "The provided value for the 'code' parameter is not valid.",
                9002313,
            )
        if code.redeemed:
            raise OAuthError(
                400,
                "invalid_grant",
                "OAuth2 Authorization code was already redeemed, please retry with a new "
                "valid code or use an existing refresh token.",
                54005,
            )
        if now >= code.expires_at:
            raise OAuthError(
                400,
                "invalid_grant",
                "The provided authorization code or refresh token has expired due to "
                "inactivity. Send a new interactive authorization request for this user "
                "and resource.",
                70008,
            )
        redirect_uri = form.get("redirect_uri", "")
        if redirect_uri != code.request.redirect_uri:
            raise OAuthError(
                400,
                "invalid_grant",
                f"The reply address '{redirect_uri}' does not match the reply address "
                f"'{code.request.redirect_uri}' provided when requesting Authorization code.",
                500112,
            )
        verifier = form.get("code_verifier")
        if code.request.challenge is None:
            if verifier is not None:  # no PKCE downgrade: a verifier needs a challenge
                raise OAuthError(
                    400,
                    "invalid_grant",
                    "A code_verifier was sent, but the authorization request had no "
                    "code_challenge.",
                    501481,
                )
        elif verifier is None or not _pkce_matches(
            verifier, code.request.challenge, code.request.challenge_method
        ):
            raise OAuthError(
                400,
                "invalid_grant",
                "The Code_Verifier does not match the code_challenge supplied in the "
                "authorization request.",
                501481,
            )
        return code

    def _authorization_code(
        self, form: dict[str, str], base_url: str, now: datetime
    ) -> dict[str, Any]:
        client_id = self._web_client(form)
        try:
            code = self._redeemable(form, client_id, now)
        except OAuthError:
            self.web.counts.refused += 1
            raise
        code.redeemed = True
        request = code.request
        profile = self.profile_of(code.user_id)
        if profile is None or not profile.enabled:
            raise OAuthError(
                400, "invalid_grant", "The user account no longer exists or is disabled", 50057
            )
        issuer = issuer_for(base_url, request.tid)
        id_claims = self.id_token_claims(
            profile,
            client_id,
            request.scopes,
            issuer,
            request.tid,
            now,
            nonce=request.nonce,
            session_id=code.session_id,
        )
        self.web.counts.redeemed += 1
        self.issued.authorization_code += 1
        return self._user_tokens(
            form,
            client_id,
            profile.user_id,
            profile.upn,
            request.scopes,
            issuer,
            request.tid,
            now,
            id_claims=id_claims,
        )

    def pairwise_subject(self, tid: str, client_id: str, user_id: str) -> str:
        """Stable per user and app (and signing key), different between apps, like Entra's."""
        message = f"{tid}|{client_id}|{user_id}".encode()
        return _b64url(hmac.new(self.signer.kid.encode(), message, hashlib.sha256).digest())

    def id_token_claims(
        self,
        profile: Profile,
        client_id: str,
        scopes: tuple[str, ...],
        issuer: str,
        tid: str,
        now: datetime,
        nonce: str | None,
        session_id: str | None = None,
    ) -> dict[str, Any]:
        claims: dict[str, Any] = {
            "aud": client_id,
            "iss": issuer,
            "iat": _epoch(now),
            "nbf": _epoch(now),
            "exp": _epoch(now + ACCESS_TOKEN_LIFETIME),
            "sub": self.pairwise_subject(tid, client_id, profile.user_id),
            "tid": tid,
            "ver": "2.0",
            "uti": secrets.token_urlsafe(16),
            "rh": "0." + secrets.token_urlsafe(32),  # opaque to clients, as Entra's
        }
        if nonce is not None:
            claims["nonce"] = nonce
        if "profile" in scopes:
            claims |= {
                "oid": profile.user_id,
                "name": profile.name,
                "preferred_username": profile.upn,
            }
        if "email" in scopes and profile.mail:
            claims["email"] = profile.mail
        if session_id is not None:
            claims["sid"] = session_id
        if len(profile.groups) > GROUPS_OVERAGE:
            endpoint = f"{GRAPH_RESOURCE}/v1.0/users/{profile.user_id}/getMemberObjects"
            claims["_claim_names"] = {"groups": "src1"}
            claims["_claim_sources"] = {"src1": {"endpoint": endpoint}}
        elif profile.groups:
            claims["groups"] = list(profile.groups)
        app = self.web.apps.get(client_id)
        roles = app.roles.get(profile.user_id) if app is not None else None
        if roles:
            claims["roles"] = list(roles)
        return claims

    def client_of_hint(self, id_token_hint: str) -> str | None:
        """The app an ID token we issued was for (a logout's `id_token_hint`)."""
        try:
            claims = jwt.decode(
                id_token_hint,
                self.signer.key.public_key(),
                algorithms=["RS256"],
                options={"verify_aud": False, "verify_exp": False, "verify_nbf": False,
                         "verify_iat": False},
            )  # fmt: skip
        except jwt.PyJWTError:
            return None
        audience = claims.get("aud")
        return audience if isinstance(audience, str) else None

    def _user_tokens(
        self,
        form: dict[str, str],
        client_id: str,
        user_id: str,
        upn: str,
        requested: tuple[str, ...],
        issuer: str,
        tid: str,
        now: datetime,
        id_claims: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Access token for Graph, refresh token with offline_access, ID token with openid
        (`id_claims` if given: the web sign-in's full set)."""
        graph = _graph_scopes(requested)
        oidc = [s for s in requested if s in OIDC_SCOPES]
        lifetime = int(ACCESS_TOKEN_LIFETIME.total_seconds())
        confidential = "client_secret" in form or "client_assertion" in form
        access = self.signer.sign(
            {
                **self._common_claims(issuer, tid, client_id, now, confidential),
                "oid": user_id,
                "sub": user_id,
                "idtyp": "user",
                "scp": " ".join(graph),
                "preferred_username": upn,
                "upn": upn,
                "name": upn.split("@")[0],
            }
        )
        response: dict[str, Any] = {
            "token_type": "Bearer",
            "scope": " ".join([*graph, *(s for s in oidc if s != "offline_access")]),
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": access,
        }
        if "offline_access" in oidc:
            token = secrets.token_urlsafe(48)
            self.refresh_grants[token] = RefreshGrant(
                client_id,
                user_id,
                upn,
                tid,
                now + REFRESH_TOKEN_LIFETIME,
                web=id_claims is not None,
            )
            response["refresh_token"] = token
        if "openid" in oidc and id_claims is not None:
            response["id_token"] = self.signer.sign(id_claims)
        elif "openid" in oidc:
            response["id_token"] = self.signer.sign(
                {
                    "aud": client_id,
                    "iss": issuer,
                    "iat": _epoch(now),
                    "nbf": _epoch(now),
                    "exp": _epoch(now + ACCESS_TOKEN_LIFETIME),
                    "sub": user_id,
                    "oid": user_id,
                    "tid": tid,
                    "preferred_username": upn,
                    "name": upn.split("@")[0],
                    "ver": "2.0",
                }
            )
        if form.get("client_info") == "1":
            info = json.dumps({"uid": user_id, "utid": tid}).encode()
            response["client_info"] = _b64url(info)
        return response

    # -- checking tokens -----------------------------------------------------------------

    def principal(self, authorization: str | None, now: datetime) -> Principal:
        """Who a Graph request's bearer token speaks for; AuthFailure if it is no good."""
        if not authorization:
            raise AuthFailure("Access token is empty.")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise AuthFailure("Access token is empty.")
        try:
            claims = self.signer.decode(token.strip(), GRAPH_RESOURCE)
        except jwt.InvalidAudienceError:
            raise AuthFailure("Invalid audience.") from None
        except jwt.InvalidSignatureError:
            raise AuthFailure("Access token validation failure. Invalid signature.") from None
        except jwt.PyJWTError:
            raise AuthFailure("Access token validation failure. Invalid token.") from None
        moment = now.timestamp()
        if not isinstance(claims.get("exp"), int | float) or claims["exp"] <= moment:
            raise AuthFailure("Lifetime validation failed, the token is expired.")
        if isinstance(claims.get("nbf"), int | float) and claims["nbf"] > moment + 300:
            raise AuthFailure("Lifetime validation failed, the token is not yet valid.")
        app_id = str(claims.get("appid") or claims.get("azp") or "")
        if claims.get("idtyp") == "app":
            return Principal(
                "app",
                app_id,
                str(claims["tid"]),
                str(claims["iss"]),
                roles=frozenset(claims.get("roles") or ()),
            )
        return Principal(
            "user",
            app_id,
            str(claims["tid"]),
            str(claims["iss"]),
            user_id=str(claims.get("oid") or ""),
            upn=str(claims.get("preferred_username") or ""),
            scopes=frozenset(str(claims.get("scp") or "").split()),
        )

    def validation_token(self, issuer: str, app_id: str, tid: str, now: datetime) -> str:
        """The JWT a rich notification carries in `validationTokens`."""
        return self.signer.sign(
            {
                "aud": app_id,
                "iss": issuer,
                "iat": _epoch(now),
                "nbf": _epoch(now),
                "exp": _epoch(now + timedelta(hours=1)),
                "tid": tid,
                "azp": NOTIFICATION_APP_ID,
                "appid": NOTIFICATION_APP_ID,
                "azpacr": "2",
                "idtyp": "app",
                "ver": "2.0",
            }
        )


def _pkce_matches(verifier: str, challenge: str, method: str) -> bool:
    if method == "S256":
        computed = _b64url(hashlib.sha256(verifier.encode("ascii", "replace")).digest())
    else:
        computed = verifier
    return hmac.compare_digest(computed.encode(), challenge.encode())


def _graph_scopes(requested: tuple[str, ...]) -> list[str]:
    """Graph permissions a delegated request asks for, in short form."""
    graph: list[str] = []
    for scope in requested:
        if scope in OIDC_SCOPES:
            continue
        short = scope
        for prefix in _GRAPH_PREFIXES:
            if scope.lower().startswith(prefix):
                short = scope[len(prefix) :]
        if "/" in short or ":" in short:
            raise OAuthError(
                400,
                "invalid_scope",
                f"The scope {scope!r} is not a Microsoft Graph permission; "
                "the emulator serves Graph only",
                70011,
            )
        if short == ".default":
            graph.extend(DEFAULT_DELEGATED_SCOPES)
        elif short:
            graph.append(short)
    # Without a Graph permission Entra issues a Graph token for User.Read.
    return list(dict.fromkeys(graph)) or ["User.Read"]
