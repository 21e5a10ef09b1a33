"""The ID token checks of the sign-in (adapters/oidc), on real tokens from real providers
(two oidc-provider instances): a token from another issuer, for another client, with
another nonce, expired, wrongly signed or unsigned is refused, naming why."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from presencebridge.adapters.oidc import OidcClient, ProviderSettings, SignInRefused
from tests.support.oidc_provider import (
    OidcAccount,
    OidcProvider,
    complete_login_with_httpx,
    start_oidc_provider,
)
from tests.support.oidc_provider import (
    OidcClient as ProviderClient,
)

REDIRECT = "http://127.0.0.1:1/callback"  # never opened: the answer is read off the URL
ACCOUNTS: dict[str, OidcAccount] = {"dana": {"sub": "sub-dana", "email": "dana@example.com"}}


def registered(client_id: str) -> ProviderClient:
    return {
        "client_id": client_id,
        "client_secret": f"secret-{client_id}",
        "redirect_uris": [REDIRECT],
    }


@dataclass
class Providers:
    a: OidcProvider
    b: OidcProvider


@pytest.fixture(scope="module")
def providers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Providers]:
    base = tmp_path_factory.mktemp("id-tokens")
    a = start_oidc_provider(base, [registered("hub"), registered("other-app")], ACCOUNTS)
    b = start_oidc_provider(base, [registered("hub")], ACCOUNTS)
    yield Providers(a, b)
    a.stop()
    b.stop()


def client_for(provider: OidcProvider, client_id: str = "hub", offset: float = 0.0) -> OidcClient:
    settings = ProviderSettings(provider.issuer, client_id, f"secret-{client_id}")
    return OidcClient(settings, clock=lambda: time.time() + offset)


def id_token_from(client: OidcClient) -> tuple[str, str]:
    """A real ID token for dana, and the nonce it was asked with."""

    async def flow() -> tuple[str, str]:
        url, started = await client.begin(REDIRECT)
        with httpx.Client(timeout=20) as browser:
            back = complete_login_with_httpx(browser, url, "dana")
        answer = dict(parse_qsl(urlsplit(back).query))
        return await client.redeem(started, answer), started.nonce

    return asyncio.run(flow())


def refused(client: OidcClient, token: str, nonce: str) -> SignInRefused:
    with pytest.raises(SignInRefused) as caught:
        asyncio.run(client.verify_id_token(token, nonce))
    assert caught.value.reason == "id_token"
    return caught.value


def test_a_good_token_is_taken(providers: Providers) -> None:
    client = client_for(providers.a)
    token, nonce = id_token_from(client)
    claims = asyncio.run(client.verify_id_token(token, nonce))
    assert claims["sub"] == "sub-dana" and claims["email"] == "dana@example.com"
    assert claims["iss"] == providers.a.issuer and claims["aud"] == "hub"


def test_another_nonce_is_refused(providers: Providers) -> None:
    client = client_for(providers.a)
    token, _ = id_token_from(client)
    assert "nonce" in refused(client, token, "a-nonce-of-another-sign-in").message


def test_a_token_from_another_issuer_is_refused(providers: Providers) -> None:
    token, nonce = id_token_from(client_for(providers.b))
    problem = refused(client_for(providers.a), token, nonce)
    assert "signature" in problem.message or "iss" in problem.message


def test_a_token_for_another_client_is_refused(providers: Providers) -> None:
    token, nonce = id_token_from(client_for(providers.a, "other-app"))
    assert "aud" in refused(client_for(providers.a), token, nonce).message


def test_an_expired_token_is_refused(providers: Providers) -> None:
    token, nonce = id_token_from(client_for(providers.a))
    two_hours_on = client_for(providers.a, offset=7200)  # the provider's tokens live 1 h
    assert "exp" in refused(two_hours_on, token, nonce).message


def test_a_wrongly_signed_token_is_refused(providers: Providers) -> None:
    client = client_for(providers.a)
    token, nonce = id_token_from(client)
    header, payload, signature = token.split(".")
    flipped = ("A" if signature[10] != "A" else "B").join((signature[:10], signature[11:]))
    assert "signature" in refused(client, f"{header}.{payload}.{flipped}", nonce).message
    # The claims changed under the provider's signature: refused too.
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["email"] = "boss@example.com"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    assert "signature" in refused(client, f"{header}.{forged}.{signature}", nonce).message


def test_an_unsigned_token_is_refused(providers: Providers) -> None:
    client = client_for(providers.a)
    token, nonce = id_token_from(client)
    _, payload, _ = token.split(".")
    none = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    refused(client, f"{none}.{payload}.", nonce)


def test_the_flow_must_match_the_answer(providers: Providers) -> None:
    client = client_for(providers.a)

    async def started() -> None:
        _, flow = await client.begin(REDIRECT)
        with pytest.raises(SignInRefused) as caught:
            await client.redeem(flow, {"state": "other", "code": "x"})
        assert caught.value.reason == "state"
        with pytest.raises(SignInRefused) as missing:
            await client.redeem(None, {"state": flow.state, "code": "x"})
        assert missing.value.reason == "state"
        late = client_for(providers.a, offset=3600)
        with pytest.raises(SignInRefused) as expired:
            await late.redeem(flow, {"state": flow.state, "code": "x"})
        assert expired.value.reason == "expired"
        with pytest.raises(SignInRefused) as denied:
            await client.redeem(flow, {"state": flow.state, "error": "access_denied"})
        assert denied.value.reason == "provider" and "access_denied" in denied.value.message

    asyncio.run(started())
