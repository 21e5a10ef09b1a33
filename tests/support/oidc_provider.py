"""A real OpenID Connect provider on loopback: panva's certified `oidc-provider` (Node.js),
run by tests/support/oidc/server.mjs, and helpers that sign in at it.

    with start_oidc_provider(tmp_path, [client], {"alice": account}) as provider:
        metadata = httpx.get(provider.discovery_url).json()
        ...  # send a browser or an httpx client to the authorization endpoint, then:
        redirect = complete_login_with_httpx(client, authorize_url, "alice")
        # or, in a browser that the relying party sent to the provider:
        sign_in_at_oidc_provider(page, "alice")

The provider runs the authorization code flow with PKCE (S256, required of every
client), `openid profile email` and a `groups` scope (profile also yields `groups`), with
every claim the granted scopes allow in the ID token (signed RS256 by a key made at
start), and RP-initiated logout. Its sign-in page asks for a login name only (no
password); an unknown login is refused on the page and no code is issued. Consent is
granted without a page. The package comes from `make pytest` (npm ci in
tests/support/oidc).
"""

from __future__ import annotations

import html
import json
import os
import re
import selectors
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import NotRequired, TypedDict
from urllib.parse import urljoin, urlsplit

import httpx
from playwright.sync_api import Page

OIDC_DIR = Path(__file__).resolve().parent / "oidc"
SERVER = OIDC_DIR / "server.mjs"
INSTALLED = OIDC_DIR / "node_modules" / ".installed"
# A bound only: the wait ends as soon as the provider prints its ready line (well under a
# second on an idle machine).
START_TIMEOUT = 60.0


class OidcClient(TypedDict):
    """A client (relying party) registered at the provider; more client metadata, such as
    token_endpoint_auth_method, may be given (oidc-provider's names)."""

    client_id: str
    client_secret: str
    redirect_uris: list[str]
    post_logout_redirect_uris: NotRequired[list[str]]
    token_endpoint_auth_method: NotRequired[str]


class OidcAccount(TypedDict):
    """An account at the provider, signed in by its login name (the key in `accounts`)."""

    sub: str
    email: NotRequired[str]
    email_verified: NotRequired[bool]
    name: NotRequired[str]
    preferred_username: NotRequired[str]
    groups: NotRequired[list[str]]


class OidcSignInFailed(Exception):
    """The provider did not let the sign-in through: an unknown login, or an error page."""


@dataclass
class OidcProvider:
    """A running provider; `stop()` (or leaving the `with` block) ends it."""

    issuer: str  # http://127.0.0.1:<port>, no trailing slash
    process: subprocess.Popen[bytes] = field(repr=False)
    log_path: Path

    @property
    def port(self) -> int:
        port = urlsplit(self.issuer).port
        assert port is not None
        return port

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        if self.process.stdout is not None:
            self.process.stdout.close()

    def __enter__(self) -> OidcProvider:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def start_oidc_provider(
    tmp_path: Path,
    clients: list[OidcClient],
    accounts: dict[str, OidcAccount],
    port: int = 0,
) -> OidcProvider:
    """Start a provider; its issuer is http://127.0.0.1:<port>, the port the OS's choice
    unless given. Returns once it answers.

    The config and the provider's log (stderr) go to a new directory under `tmp_path`.
    """
    if not INSTALLED.exists():
        raise RuntimeError(
            f"oidc-provider is not installed in {INSTALLED.parent}: run make pytest "
            "(it runs npm ci there; Node.js and npm come with make sysdeps)"
        )
    directory = Path(tempfile.mkdtemp(prefix="oidc-provider-", dir=tmp_path))
    config_path = directory / "config.json"
    # Port 0: the provider listens first and takes its issuer from the port it got, so
    # providers started side by side (pytest -n) cannot race for a port.
    config = {"port": port, "clients": clients, "accounts": accounts}
    config_path.write_text(json.dumps(config, indent=2))
    log_path = directory / "provider.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            ["node", str(SERVER), str(config_path)],
            cwd=OIDC_DIR,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
        )
    provider = OidcProvider("", process, log_path)
    try:
        line = _first_line(provider, START_TIMEOUT)
        if not line.startswith("ready "):
            raise RuntimeError(f"oidc provider said {line!r}, not ready:\n{provider.log()}")
    except BaseException:
        provider.stop()
        raise
    provider.issuer = line.removeprefix("ready ")
    return provider


def _first_line(provider: OidcProvider, timeout: float) -> str:
    """The provider's first line on stdout, waited for `timeout` seconds at most."""
    stdout = provider.process.stdout
    assert stdout is not None
    received = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(stdout, selectors.EVENT_READ)
        while b"\n" not in received:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(
                    f"oidc provider did not come up in {timeout} s:\n{provider.log()}"
                )
            if not selector.select(left):
                continue
            chunk = os.read(stdout.fileno(), 4096)
            if not chunk:
                provider.process.wait(10)
                raise RuntimeError(
                    f"oidc provider exited early ({provider.process.returncode}):\n{provider.log()}"
                )
            received += chunk
    return received.split(b"\n", 1)[0].decode()


def sign_in_at_oidc_provider(page: Page, login: str) -> None:
    """Sign in as `login` on the provider's sign-in page, where the relying party sent
    `page`; returns once the browser has left the provider (back at the relying party,
    consent needs no page). An unknown login raises OidcSignInFailed."""
    page.get_by_label("Login name").fill(login)
    origin = _origin(page.url)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()
    alert = page.get_by_role("alert")
    if _origin(page.url) == origin and alert.count():
        raise OidcSignInFailed(alert.inner_text())


def sign_out_at_oidc_provider(page: Page) -> None:
    """Confirm the sign-out on the provider's page, where the relying party sent `page`
    (its end_session endpoint); returns once the browser has followed the redirect."""
    with page.expect_navigation():
        page.get_by_role("button", name="Sign out").click()


def complete_login_with_httpx(client: httpx.Client, authorize_url: str, login: str) -> str:
    """What a browser does between the relying party's redirect to `authorize_url` and the
    provider's redirect back: sign in as `login` (consent needs no page). The URL the
    provider sends the browser back to: the client's redirect URI with `code`, `state`
    and `iss`, or with `error` when the provider refuses the request itself. `client`
    keeps the provider's cookies (a session, as a browser would). An unknown login, or an
    error page at the provider, raises OidcSignInFailed."""
    provider = _origin(authorize_url)
    response = client.get(authorize_url, follow_redirects=False)
    for _ in range(20):
        location: str | None = response.headers.get("location")
        if response.is_redirect and location is not None:
            target = urljoin(str(response.url), location)
            if _origin(target) != provider:
                return target
            response = client.get(target, follow_redirects=False)
        elif response.status_code == 200 and (action := _form_action(response.text, "/login")):
            url = urljoin(str(response.url), action)
            response = client.post(url, data={"login": login}, follow_redirects=False)
        else:
            raise OidcSignInFailed(f"{response.status_code}: {_alert(response.text)}")
    raise OidcSignInFailed(f"more than 20 steps at the provider; last at {response.url}")


def complete_logout_with_httpx(client: httpx.Client, end_session_url: str) -> str:
    """RP-initiated logout as a browser does it: open `end_session_url` (with
    id_token_hint, post_logout_redirect_uri, state as the relying party chose), confirm
    on the provider's page; the URL the provider sends the browser back to. `client` must
    be the one that signed in (it holds the provider's session cookie)."""
    provider = _origin(end_session_url)
    response = client.get(end_session_url, follow_redirects=False)
    form = re.search(r'<form[^>]*id="op\.logoutForm"[^>]*>.*?</form>', response.text, re.S)
    if response.status_code != 200 or form is None:
        raise OidcSignInFailed(f"{response.status_code}: {_alert(response.text)}")
    action = re.search(r'action="([^"]+)"', form.group(0))
    assert action is not None, form.group(0)
    fields = {
        html.unescape(name): html.unescape(value)
        for name, value in re.findall(
            r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', form.group(0)
        )
    }
    url = urljoin(str(response.url), html.unescape(action.group(1)))
    response = client.post(url, data={**fields, "logout": "yes"}, follow_redirects=False)
    while response.is_redirect:
        target = urljoin(str(response.url), response.headers["location"])
        if _origin(target) != provider:
            return target
        response = client.get(target, follow_redirects=False)
    return str(response.url)


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


def _form_action(page: str, suffix: str) -> str | None:
    for action in re.findall(r'<form method="post" action="([^"]+)"', page):
        if action.endswith(suffix):
            return html.unescape(action)
    return None


def _alert(page: str) -> str:
    found = re.search(r'role="alert"[^>]*>(.*?)<', page, re.S)
    return html.unescape(found.group(1)) if found else page[:500]
