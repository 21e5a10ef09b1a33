"""The OpenID Connect provider the sign-in tests start (tests/support/oidc_provider.py):
what the hub's sign-in needs of it, checked with Authlib's client as the relying party,
the user agent an httpx client or Debian's Chromium."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import jwt
import pytest
from authlib.common.errors import AuthlibBaseError
from authlib.common.security import generate_token
from authlib.integrations.httpx_client import OAuth2Client
from playwright.sync_api import Browser, sync_playwright

from tests.browser.helpers import CHROMIUM, CHROMIUM_ARGS
from tests.support.oidc_provider import (
    OidcAccount,
    OidcClient,
    OidcProvider,
    OidcSignInFailed,
    complete_login_with_httpx,
    complete_logout_with_httpx,
    sign_in_at_oidc_provider,
    sign_out_at_oidc_provider,
    start_oidc_provider,
)
from tests.support.ports import free_port

# The relying party: the httpx flows stop at the provider's redirect to it; for the
# browser, `relying_party_site` answers there. (A free port, not a fixed one such as 9:
# Chromium refuses to go to ports it deems unsafe.)
RELYING_PARTY = f"http://127.0.0.1:{free_port()}"
REDIRECT_URI = f"{RELYING_PARTY}/signin/callback"
SIGNED_OUT_URI = f"{RELYING_PARTY}/signin/signed-out"
CLIENT: OidcClient = {
    "client_id": "presencebridge",
    "client_secret": "harness-client-secret-0123456789",
    "redirect_uris": [REDIRECT_URI],
    "post_logout_redirect_uris": [SIGNED_OUT_URI],
}
ALICE: OidcAccount = {
    "sub": "8c0b6d2e-alice",
    "email": "alice@example.org",
    "email_verified": True,
    "name": "Alice Example",
    "preferred_username": "alice",
    "groups": ["presence-admins", "hq"],
}


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OidcProvider]:
    with start_oidc_provider(
        tmp_path_factory.mktemp("oidc"), [CLIENT], {"alice": ALICE}
    ) as provider:
        yield provider


@pytest.fixture(scope="module")
def metadata(provider: OidcProvider) -> dict[str, Any]:
    response = httpx.get(provider.discovery_url, timeout=10)
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


@pytest.fixture
def user_agent() -> Iterator[httpx.Client]:
    """The user's browser as far as the provider sees it: its own cookies (session)."""
    with httpx.Client(timeout=10) as client:
        yield client


class RelyingParty:
    """The hub's side of the flow: Authlib's client with PKCE (S256) and a nonce."""

    def __init__(self, metadata: dict[str, Any], scope: str = "openid profile email") -> None:
        self.metadata = metadata
        self.oauth = OAuth2Client(
            CLIENT["client_id"],
            CLIENT["client_secret"],
            scope=scope,
            redirect_uri=REDIRECT_URI,
            code_challenge_method="S256",
            timeout=10,
        )
        self.code_verifier = generate_token(48)
        self.nonce = generate_token(20)
        self.state = ""

    def authorize_url(self) -> str:
        url, self.state = self.oauth.create_authorization_url(
            self.metadata["authorization_endpoint"],
            code_verifier=self.code_verifier,
            nonce=self.nonce,
        )
        return str(url)

    def fetch_token(self, redirect: str) -> dict[str, Any]:
        token: dict[str, Any] = self.oauth.fetch_token(
            self.metadata["token_endpoint"],
            authorization_response=redirect,
            state=self.state,
            code_verifier=self.code_verifier,
        )
        return token

    def verify_id_token(self, id_token: str) -> dict[str, Any]:
        """The ID token's claims, its signature checked against a key in the JWKS."""
        header = jwt.get_unverified_header(id_token)
        assert header["alg"] == "RS256"
        jwks = httpx.get(self.metadata["jwks_uri"], timeout=10).json()
        key = jwt.PyJWKSet.from_dict(jwks)[header["kid"]]
        claims: dict[str, Any] = jwt.decode(
            id_token,
            key,
            algorithms=["RS256"],
            audience=CLIENT["client_id"],
            issuer=self.metadata["issuer"],
        )
        assert claims["nonce"] == self.nonce
        return claims


def query(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


def test_discovery_lists_the_endpoints_the_sign_in_needs(
    provider: OidcProvider, metadata: dict[str, Any]
) -> None:
    assert metadata["issuer"] == provider.issuer == f"http://127.0.0.1:{provider.port}"
    for endpoint in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
        assert metadata[endpoint].startswith(provider.issuer + "/")
    assert metadata["end_session_endpoint"].startswith(provider.issuer + "/")
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert "RS256" in metadata["id_token_signing_alg_values_supported"]
    assert {"openid", "profile", "email", "groups"} <= set(metadata["scopes_supported"])
    assert "groups" in metadata["claims_supported"]


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        (
            "openid profile email",
            {"email", "email_verified", "name", "preferred_username", "groups"},
        ),
        ("openid email groups", {"email", "email_verified", "groups"}),
    ],
)
def test_a_code_flow_with_pkce_yields_a_signed_id_token_with_the_accounts_claims(
    metadata: dict[str, Any], user_agent: httpx.Client, scope: str, expected: set[str]
) -> None:
    rp = RelyingParty(metadata, scope)
    authorize_url = rp.authorize_url()
    assert query(authorize_url)["code_challenge_method"] == "S256"

    redirect = complete_login_with_httpx(user_agent, authorize_url, "alice")
    assert redirect.startswith(REDIRECT_URI + "?")
    params = query(redirect)
    assert params["state"] == rp.state
    assert params["iss"] == metadata["issuer"]
    assert params["code"]

    token = rp.fetch_token(redirect)
    claims = rp.verify_id_token(token["id_token"])
    assert claims["sub"] == ALICE["sub"]
    assert {claim: claims[claim] for claim in expected} == {
        claim: ALICE[claim]  # type: ignore[literal-required]
        for claim in expected
    }
    # Only what the scopes grant: no name without profile.
    assert "name" in claims if "profile" in scope else "name" not in claims
    userinfo = httpx.get(
        metadata["userinfo_endpoint"],
        headers={"Authorization": f"Bearer {token['access_token']}"},
        timeout=10,
    )
    assert userinfo.status_code == 200, userinfo.text
    assert userinfo.json()["sub"] == ALICE["sub"]


def test_a_replayed_code_is_refused(metadata: dict[str, Any], user_agent: httpx.Client) -> None:
    rp = RelyingParty(metadata)
    redirect = complete_login_with_httpx(user_agent, rp.authorize_url(), "alice")
    rp.fetch_token(redirect)

    with pytest.raises(AuthlibBaseError) as refused:
        rp.fetch_token(redirect)
    assert refused.value.error == "invalid_grant"


def test_a_code_is_refused_without_the_pkce_verifier(
    metadata: dict[str, Any], user_agent: httpx.Client
) -> None:
    rp = RelyingParty(metadata)
    redirect = complete_login_with_httpx(user_agent, rp.authorize_url(), "alice")
    rp.code_verifier = generate_token(48)

    with pytest.raises(AuthlibBaseError) as refused:
        rp.fetch_token(redirect)
    assert refused.value.error == "invalid_grant"


def test_an_authorization_request_without_pkce_is_sent_back_with_an_error(
    metadata: dict[str, Any], user_agent: httpx.Client
) -> None:
    params = {
        "client_id": CLIENT["client_id"],
        "response_type": "code",
        "scope": "openid",
        "redirect_uri": REDIRECT_URI,
        "state": "no-pkce",
    }
    authorize_url = f"{metadata['authorization_endpoint']}?{urlencode(params)}"

    redirect = complete_login_with_httpx(user_agent, authorize_url, "alice")
    assert redirect.startswith(REDIRECT_URI + "?")
    assert query(redirect)["error"] == "invalid_request"
    assert "code" not in query(redirect)


def test_an_unknown_login_gets_no_code(metadata: dict[str, Any], user_agent: httpx.Client) -> None:
    rp = RelyingParty(metadata)

    with pytest.raises(OidcSignInFailed, match="Unknown login name: mallory"):
        complete_login_with_httpx(user_agent, rp.authorize_url(), "mallory")


def test_rp_initiated_logout_ends_the_providers_session(
    metadata: dict[str, Any], user_agent: httpx.Client
) -> None:
    rp = RelyingParty(metadata)
    token = rp.fetch_token(complete_login_with_httpx(user_agent, rp.authorize_url(), "alice"))
    # Signed in at the provider: the next authorization request needs no sign-in.
    again = user_agent.get(RelyingParty(metadata).authorize_url())
    assert again.headers["location"].startswith(REDIRECT_URI + "?code=")

    logout = {
        "id_token_hint": token["id_token"],
        "post_logout_redirect_uri": SIGNED_OUT_URI,
        "state": "bye",
    }
    end_session_url = f"{metadata['end_session_endpoint']}?{urlencode(logout)}"
    assert complete_logout_with_httpx(user_agent, end_session_url) == f"{SIGNED_OUT_URI}?state=bye"

    # Signed out: the next one goes to the sign-in page.
    again = user_agent.get(RelyingParty(metadata).authorize_url())
    assert again.headers["location"].startswith("/interaction/")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        raise RuntimeError("Debian's chromium is not installed: run make test (it installs it)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class RelyingPartyPage(BaseHTTPRequestHandler):
    """Where the provider sends the browser back: a page, nothing more (the test reads the
    code from the browser's URL)."""

    def do_GET(self) -> None:
        body = b"relying party"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def relying_party_site() -> Iterator[None]:
    port = urlsplit(RELYING_PARTY).port
    assert port is not None
    with ThreadingHTTPServer(("127.0.0.1", port), RelyingPartyPage) as site:
        thread = threading.Thread(target=site.serve_forever, daemon=True)
        thread.start()
        yield
        site.shutdown()
        thread.join()


@pytest.mark.usefixtures("relying_party_site")
def test_signing_in_and_out_in_a_browser(metadata: dict[str, Any], browser: Browser) -> None:
    context = browser.new_context()
    context.set_default_timeout(20_000)
    page = context.new_page()
    try:
        rp = RelyingParty(metadata)
        page.goto(rp.authorize_url())
        sign_in_at_oidc_provider(page, "alice")
        assert page.url.startswith(REDIRECT_URI + "?")
        claims = rp.verify_id_token(rp.fetch_token(page.url)["id_token"])
        assert claims["groups"] == ALICE["groups"]

        logout = {"client_id": CLIENT["client_id"], "post_logout_redirect_uri": SIGNED_OUT_URI}
        page.goto(f"{metadata['end_session_endpoint']}?{urlencode(logout)}")
        sign_out_at_oidc_provider(page)
        assert page.url == SIGNED_OUT_URI

        page.goto(RelyingParty(metadata).authorize_url())
        with pytest.raises(OidcSignInFailed, match="Unknown login name: mallory"):
            sign_in_at_oidc_provider(page, "mallory")
        assert page.url.startswith(metadata["issuer"] + "/interaction/")
    finally:
        context.close()
