"""App-only Graph tokens through msal (client credentials).

msal's own HTTP goes through a `requests.Session` whose `verify` is our CA bundle,
so an emulator with its own CA works without switching verification off.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msal
import requests

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
# Hosts msal knows; for any other authority (the emulator) instance discovery is off.
MICROSOFT_AUTHORITY_HOSTS = frozenset(
    {"login.microsoftonline.com", "login.microsoftonline.us", "login.partner.microsoftonline.cn"}
)


FRESH_TOKEN_CLAIMS = '{"access_token": {"nbf": {"essential": true}}}'  # noqa: S105 - not a secret


class TokenError(RuntimeError):
    """The identity provider refused to issue a token; the message says why."""


class _PinnedVerifySession(requests.Session):
    """A session whose own `verify` wins over REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE.

    requests lets those environment variables override `Session.verify`, which would
    silently drop the CA we were told to trust; passing it per request keeps it.
    """

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        kwargs.setdefault("verify", self.verify)
        return super().request(method, url, *args, **kwargs)


def msal_http_client(ca_bundle: Path | None) -> requests.Session:
    session = _PinnedVerifySession()
    if ca_bundle is not None:
        session.verify = str(ca_bundle)
    return session


def authority_url(authority: str, tenant_id: str) -> str:
    return f"{authority.rstrip('/')}/{tenant_id}"


def instance_discovery(authority: str) -> bool:
    return urlsplit(authority).hostname in MICROSOFT_AUTHORITY_HOSTS


class AppTokenProvider:
    """Caches the app token and renews it five minutes before it expires."""

    def __init__(
        self,
        authority: str,
        tenant_id: str,
        client_id: str,
        client_secret: str,
        ca_bundle: Path | None = None,
    ) -> None:
        # msal reads the authority's OpenID configuration when the app is made: that is
        # blocking I/O (and may reach an emulator in this very event loop), so it is made
        # on a worker thread at the first token request.
        self._http = msal_http_client(ca_bundle)
        self._make_app = lambda: msal.ConfidentialClientApplication(
            client_id,
            client_credential=client_secret,
            authority=authority_url(authority, tenant_id),
            http_client=self._http,
            instance_discovery=instance_discovery(authority),
        )
        self._app: msal.ConfidentialClientApplication | None = None
        self._token: str | None = None
        self._expires = 0.0
        self._lock = asyncio.Lock()
        self._bypass_cache = False

    def close(self) -> None:
        """Closes msal's keep-alive connections (an embedded emulator waits for them)."""
        self._http.close()

    def invalidate(self) -> None:
        """Graph refused the token (e.g. revoked, or a clock ahead of ours): get a new one."""
        self._token = None
        self._bypass_cache = True

    async def token(self) -> str:
        if self._token is not None and time.monotonic() < self._expires:
            return self._token
        async with self._lock:
            if self._token is None or time.monotonic() >= self._expires:
                # msal serves its cached token until it thinks it expired; a claims
                # challenge is msal's documented way to skip that cache.
                claims = FRESH_TOKEN_CLAIMS if self._bypass_cache else None
                if self._app is None:
                    self._app = await asyncio.to_thread(self._make_app)
                app = self._app
                assert app is not None
                result = await asyncio.to_thread(
                    app.acquire_token_for_client, [GRAPH_SCOPE], claims_challenge=claims
                )
                self._bypass_cache = False
                if "access_token" not in result:
                    # error_description names the problem; it never contains the secret.
                    error = result.get("error", "token error")
                    raise TokenError(f"{error}: {result.get('error_description', '')}")
                self._token = str(result["access_token"])
                lifetime = float(result.get("expires_in", 3600))
                self._expires = time.monotonic() + max(60.0, lifetime - 300)
            return self._token
