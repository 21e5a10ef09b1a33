"""OpenID Connect sign-in at any standard provider, Entra ID included (issue 14).

The authorization code flow with PKCE (S256), `state` and `nonce`: Authlib builds the
authorization URL and redeems the code; joserfc checks the ID token's signature against
the provider's JWKS and its claims (issuer, audience, nonce, expiry). The flow's
secrets live in the caller's signed session between `begin` and `finish`.

Entra's multi-tenant endpoints (`common`, `organizations`) announce the issuer as a
template (`https://login.microsoftonline.com/{tenantid}/v2.0`): a token is taken only
from a tenant listed in `allowed_tenants`, never from any tenant at all.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import authlib.deprecate  # noqa: F401  (sets its own warning filter, before ours below)
import httpx
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry

with warnings.catch_warnings():
    # Authlib 1.9 prefers the httpx2 fork and warns when it falls back to httpx.
    warnings.simplefilter("ignore")
    from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuthError

TENANT_PLACEHOLDER = "{tenantid}"
LEEWAY_SECONDS = 120  # clock skew between us and the provider
FLOW_MAX_AGE = 600  # a sign-in started longer ago than this is refused
METADATA_MAX_AGE = 3600


class SignInRefused(Exception):
    """The sign-in is refused: `reason` (a short code, counted in /metrics) and a message
    in plain words for the administrator's log and the person's page."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class ProviderUnavailable(Exception):
    """The provider cannot be reached or answered nonsense (a 502 for the person)."""


@dataclass(frozen=True, slots=True)
class ProviderSettings:
    issuer: str
    client_id: str
    client_secret: str | None
    scopes: tuple[str, ...] = ("openid", "profile", "email")
    allowed_tenants: frozenset[str] = frozenset()
    ca_bundle: Path | None = None


@dataclass(frozen=True, slots=True)
class Flow:
    """What must survive the round trip through the provider (kept in the session)."""

    state: str
    nonce: str
    code_verifier: str
    redirect_uri: str
    started: float

    def to_json(self) -> dict[str, Any]:
        return {
            "state": self.state, "nonce": self.nonce, "verifier": self.code_verifier,
            "redirect_uri": self.redirect_uri, "started": self.started,
        }  # fmt: skip

    @classmethod
    def of_json(cls, data: Any) -> Flow | None:
        if not isinstance(data, dict):
            return None
        try:
            return cls(
                str(data["state"]), str(data["nonce"]), str(data["verifier"]),
                str(data["redirect_uri"]), float(data["started"]),
            )  # fmt: skip
        except (KeyError, TypeError, ValueError):
            return None


def secure_issuer(issuer: str) -> bool:
    """https, or plain http on the loopback interface only (a test provider)."""
    parts = urlsplit(issuer)
    if parts.scheme == "https" and parts.hostname:
        return True
    return parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1")


class OidcClient:
    def __init__(self, settings: ProviderSettings, clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.clock = clock  # wall-clock seconds: flow ages and token lifetimes
        verify: Any = str(settings.ca_bundle) if settings.ca_bundle else True
        self._verify = verify
        self._metadata: dict[str, Any] | None = None
        self._metadata_at = 0.0
        self._keys: KeySet | None = None
        self._lock = asyncio.Lock()

    # -- the provider's documents -----------------------------------------------------------

    async def metadata(self, fresh: bool = False) -> dict[str, Any]:
        async with self._lock:
            stale = time.monotonic() - self._metadata_at > METADATA_MAX_AGE
            if self._metadata is None or fresh or stale:
                url = self.settings.issuer.rstrip("/") + "/.well-known/openid-configuration"
                document = await self._get_json(url)
                for key in ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri"):
                    if not isinstance(document.get(key), str):
                        raise ProviderUnavailable(f"the provider's discovery document lacks {key}")
                self._metadata = document
                self._metadata_at = time.monotonic()
                self._keys = None
            return self._metadata

    async def _key_set(self, refresh: bool) -> KeySet:
        if self._keys is None or refresh:
            jwks = await self._get_json((await self.metadata())["jwks_uri"])
            try:
                self._keys = KeySet.import_key_set(jwks)  # type: ignore[arg-type]
            except (JoseError, ValueError, TypeError, KeyError) as error:
                raise ProviderUnavailable(f"the provider's JWKS cannot be read: {error}") from None
        return self._keys

    async def _get_json(self, url: str) -> dict[str, Any]:
        try:
            async with httpx.AsyncClient(verify=self._verify, timeout=15) as client:
                response = await client.get(url)
                response.raise_for_status()
                document = response.json()
        except (httpx.HTTPError, ValueError) as error:
            raise ProviderUnavailable(f"{url}: {error}") from None
        if not isinstance(document, dict):
            raise ProviderUnavailable(f"{url}: not a JSON object")
        return document

    async def end_session_endpoint(self) -> str | None:
        try:
            value = (await self.metadata()).get("end_session_endpoint")
        except ProviderUnavailable:
            return None
        return value if isinstance(value, str) else None

    # -- the flow ---------------------------------------------------------------------------

    def _client(self, **extra: Any) -> AsyncOAuth2Client:
        return AsyncOAuth2Client(
            client_id=self.settings.client_id,
            client_secret=self.settings.client_secret,
            scope=" ".join(self.settings.scopes),
            code_challenge_method="S256",
            token_endpoint_auth_method=(
                "client_secret_basic" if self.settings.client_secret else "none"
            ),
            verify=self._verify,
            timeout=15,
            **extra,
        )

    async def begin(self, redirect_uri: str, login_hint: str | None = None) -> tuple[str, Flow]:
        """The provider's authorization URL to send the browser to, and the flow to keep."""
        endpoint = (await self.metadata())["authorization_endpoint"]
        flow = Flow(
            state=secrets.token_urlsafe(24),
            nonce=secrets.token_urlsafe(24),
            code_verifier=secrets.token_urlsafe(48),
            redirect_uri=redirect_uri,
            started=self.clock(),
        )
        extra = {"nonce": flow.nonce}
        if login_hint:
            extra["login_hint"] = login_hint
        async with self._client(redirect_uri=redirect_uri) as client:
            url, _ = client.create_authorization_url(
                endpoint, state=flow.state, code_verifier=flow.code_verifier, **extra
            )
        return str(url), flow

    async def finish(self, flow: Flow | None, answer: Mapping[str, str]) -> dict[str, Any]:
        """The ID token's claims, checked; or `SignInRefused` saying why."""
        id_token = await self.redeem(flow, answer)
        assert flow is not None
        return await self.verify_id_token(id_token, flow.nonce)

    async def redeem(self, flow: Flow | None, answer: Mapping[str, str]) -> str:
        """The provider's answer checked against the flow, its code redeemed: the ID token
        (not yet checked)."""
        if flow is None:
            raise SignInRefused("state", "no sign-in was started in this browser (or it was used)")
        if not secrets.compare_digest(answer.get("state", ""), flow.state):
            raise SignInRefused("state", "the answer's state is not this sign-in's")
        if self.clock() - flow.started > FLOW_MAX_AGE:
            raise SignInRefused("expired", "the sign-in took too long; start again")
        if "error" in answer:
            detail = answer.get("error_description") or answer["error"]
            raise SignInRefused("provider", f"the provider refused: {detail[:300]}")
        code = answer.get("code")
        if not code:
            raise SignInRefused("code", "the answer carries no authorization code")
        metadata = await self.metadata()
        try:
            async with self._client(redirect_uri=flow.redirect_uri) as client:
                token = await client.fetch_token(
                    metadata["token_endpoint"],
                    code=code,
                    code_verifier=flow.code_verifier,
                    grant_type="authorization_code",
                )
        except OAuthError as error:
            detail = error.description or error.error
            raise SignInRefused("code", f"the provider did not redeem the code: {detail}") from None
        except httpx.HTTPError as error:
            raise ProviderUnavailable(f"token endpoint: {error}") from None
        id_token = token.get("id_token")
        if not isinstance(id_token, str):
            raise SignInRefused("id_token", "the provider sent no ID token")
        return id_token

    async def verify_id_token(self, id_token: str, nonce: str) -> dict[str, Any]:
        issuer = (await self.metadata())["issuer"]
        decoded = await self._decode(id_token)
        claims = dict(decoded.claims)
        expected_issuer = issuer
        if TENANT_PLACEHOLDER in issuer:
            tenant = claims.get("tid")
            if not isinstance(tenant, str) or tenant not in self.settings.allowed_tenants:
                raise SignInRefused(
                    "tenant", f"sign-ins from tenant {tenant!r} are not allowed here"
                )
            expected_issuer = issuer.replace(TENANT_PLACEHOLDER, tenant)
        registry = JWTClaimsRegistry(
            now=lambda: int(self.clock()),
            leeway=LEEWAY_SECONDS,
            iss={"essential": True, "value": expected_issuer},
            aud={"essential": True, "value": self.settings.client_id},
            sub={"essential": True},
            exp={"essential": True},
            iat={"essential": True},
            nonce={"essential": True, "value": nonce},
        )
        try:
            registry.validate(claims)
        except JoseError as error:
            field = getattr(error, "claim", None) or error.error
            raise SignInRefused(
                "id_token", f"the ID token's {field} is not valid: {error}"
            ) from None
        audience = claims.get("aud")
        if (
            isinstance(audience, list)
            and len(audience) > 1
            and claims.get("azp") != (self.settings.client_id)
        ):
            raise SignInRefused("id_token", "the ID token was issued to another client (azp)")
        return claims

    async def _decode(self, id_token: str) -> jwt.Token:
        for refresh in (False, True):  # a key the provider rotated in: read the JWKS again
            keys = await self._key_set(refresh)
            try:
                return jwt.decode(id_token, keys, algorithms=["RS256", "ES256", "PS256"])
            except JoseError as error:
                if refresh or "key" not in str(error).lower():
                    raise SignInRefused(
                        "id_token", f"the ID token's signature is not valid: {error}"
                    ) from None
            except ValueError as error:
                raise SignInRefused("id_token", f"the ID token cannot be read: {error}") from None
        raise AssertionError("unreachable")
