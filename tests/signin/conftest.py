"""A presencebridge server whose console signs people in at a real OpenID Connect
provider (panva's certified oidc-provider on loopback), and the people in it."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.support.oidc_provider import (
    OidcAccount,
    OidcClient,
    OidcProvider,
    complete_login_with_httpx,
    start_oidc_provider,
)
from tests.support.server import ServerProcess

CLIENT_ID = "presencebridge-console"
CLIENT_SECRET = "client-secret-" + uuid.uuid4().hex
ADMIN_GROUP = "pb-admins"


@dataclass
class SignInWorld:
    server: ServerProcess
    provider: OidcProvider
    group: str
    alice: str  # hub users (ids)
    bob: str

    def browser(self) -> httpx.Client:
        """A client as a browser: cookies kept, redirects not followed by itself."""
        return httpx.Client(base_url=self.server.url, timeout=20)

    def start(self, client: httpx.Client, next_: str = "/") -> str:
        """Press "Sign in with …": the provider's authorization URL."""
        response = client.get("/console/sso", params={"next": next_})
        assert response.status_code == 303, response.text
        location = response.headers["location"]
        assert location.startswith(self.provider.issuer), location
        return location

    def sign_in(self, login: str, next_: str = "/") -> tuple[httpx.Client, httpx.Response]:
        """The whole flow for `login`; the client and the console's answer to the callback."""
        client = self.browser()
        back = complete_login_with_httpx(client, self.start(client, next_), login)
        return client, client.get(back)


def callback_state(url: str) -> str:
    return parse_qs(urlsplit(url).query)["state"][0]


ACCOUNTS: dict[str, OidcAccount] = {
    "alice": {"sub": "sub-alice", "email": "Alice@Example.com", "name": "Alice A."},
    "bob": {"sub": "sub-bob", "email": "bob@example.com", "name": "Bob B."},
    "carol": {
        "sub": "sub-carol", "email": "carol@example.com", "name": "Carol C.",
        "groups": [ADMIN_GROUP],
    },
    "stranger": {"sub": "sub-stranger", "email": "stranger@example.com", "name": "S."},
    "erin": {"sub": "sub-erin", "email": "erin@example.com", "name": "Erin E."},
}  # fmt: skip


@pytest.fixture(scope="package")
def signin_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SignInWorld]:
    base = tmp_path_factory.mktemp("signin")
    server = ServerProcess(base / "server", PB_TEST_OIDC_SECRET=CLIENT_SECRET)
    redirect = f"{server.url}/console/sso/callback"
    client: OidcClient = {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "redirect_uris": [redirect],
        "post_logout_redirect_uris": [f"{server.url}/console/login"],
    }
    provider = start_oidc_provider(base, [client], ACCOUNTS)
    config = Path(base / "presencebridge.toml")
    config.write_text(
        "[sign_in]\n"
        f'issuer = "{provider.issuer}"\n'
        f'client_id = "{CLIENT_ID}"\n'
        'client_secret_env = "PB_TEST_OIDC_SECRET"\n'
        f'admin_groups = ["{ADMIN_GROUP}"]\n'
        'label = "Example SSO"\n'
    )
    server.extra_args = ("--config", str(config))
    server.start()
    admin = server.client()
    group = "g-" + uuid.uuid4().hex[:8]
    assert admin.post("/api/v1/groups", json={"id": group, "name": "Sign-in"}).is_success
    users = {}
    for login in ("alice", "bob"):
        body = {
            "id": f"{login}-{uuid.uuid4().hex[:6]}",
            "display_name": ACCOUNTS[login]["name"],
            "group": group,
            "email": f"{login}@example.com",
        }
        assert admin.post("/api/v1/users", json=body).status_code == 201
        users[login] = body["id"]
    try:
        yield SignInWorld(server, provider, group, users["alice"], users["bob"])
    finally:
        server.stop()
        provider.stop()
