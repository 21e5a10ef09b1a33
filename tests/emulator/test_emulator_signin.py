"""The web sign-in (authorization code flow with PKCE) against the emulator process, with
msal as the app and httpx as the user's browser; ID tokens checked with PyJWT."""

from __future__ import annotations

import base64
import hashlib
import secrets
import uuid
from collections.abc import Iterator
from datetime import datetime
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, quote_plus, urlencode, urlsplit

import httpx
import jwt
import msal
import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from joserfc import jwt as joserfc_jwt
from joserfc.jwk import KeySet

from tests.emulator.support import TENANT, EmulatorProcess, bearer, ok

REDIRECT = "https://hub.example.test/auth/callback"
SIGNED_OUT = "https://hub.example.test/signed-out"


@pytest.fixture
def msal_session(
    emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch
) -> Iterator[requests.Session]:
    """What the product hands msal: a Session trusting the emulator's CA."""
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    session = requests.Session()
    session.verify = str(emulator.ca_file)
    yield session
    session.close()


@pytest.fixture
def browser(emulator: EmulatorProcess, control: httpx.Client) -> Iterator[httpx.Client]:
    """The user's browser: keeps cookies, does not follow redirects by itself."""
    with emulator.client() as client:
        yield client


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


class Form(HTMLParser):
    """The first form of a page: its action, method and fields (hidden, text, buttons)."""

    def __init__(self, page: str) -> None:
        super().__init__()
        self.action: str | None = None
        self.method = "get"
        self.fields: dict[str, str] = {}
        self.buttons: list[tuple[str, str]] = []
        self._in_form = False
        self.feed(page)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form" and self.action is None:
            self._in_form = True
            self.action = values.get("action", "")
            self.method = values.get("method", "get").lower()
        elif tag == "input" and self._in_form and "name" in values:
            self.fields[values["name"]] = values.get("value", "")
        elif tag == "button" and self._in_form and "name" in values:
            self.buttons.append((values["name"], values.get("value", "")))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._in_form = False


def register_app(
    control: httpx.Client,
    public: bool = False,
    secret: str | None = None,
    redirect_uris: tuple[str, ...] = (REDIRECT,),
    post_logout: tuple[str, ...] = (),
) -> tuple[str, str | None]:
    client_id = str(uuid.uuid4())
    if not public:
        secret = secret or "s3cret-" + uuid.uuid4().hex
    body: dict[str, Any] = {
        "client_id": client_id,
        "redirect_uris": list(redirect_uris),
        "post_logout_redirect_uris": list(post_logout),
    }
    if secret is not None:
        body["client_secret"] = secret
    answer = ok(control.post("/_emulator/apps", json=body), 201)
    assert answer["redirect_uris"] == list(redirect_uris)
    return client_id, secret


def directory_user(control: httpx.Client, groups: tuple[str, ...] = ()) -> dict[str, Any]:
    user_id = str(uuid.uuid4())
    name = unique("user")
    body = {
        "id": user_id,
        "displayName": f"Test {name}",
        "userPrincipalName": f"{name}@contoso.example",
        "mail": f"{name}.mail@contoso.example",
        "groups": list(groups),
    }
    ok(control.post("/_emulator/directory/users", json=body), 201)
    return body


def confidential(
    emulator: EmulatorProcess, session: requests.Session, client_id: str, secret: str | None
) -> msal.ConfidentialClientApplication:
    return msal.ConfidentialClientApplication(
        client_id,
        client_credential=secret,
        authority=f"{emulator.base_url}/{TENANT}",
        http_client=session,
        instance_discovery=False,
    )


def sign_in(browser: httpx.Client, auth_uri: str, login: str) -> httpx.Response:
    """Open the sign-in page, enter the user name, press "Sign in"."""
    page = browser.get(auth_uri)
    assert page.status_code == 200, page.text
    form = Form(page.text)
    assert form.action and form.method == "post" and "login" in form.fields
    return browser.post(form.action, data={**form.fields, "login": login})


def returned(response: httpx.Response) -> dict[str, str]:
    """What the app receives with response_mode=form_post: the auto-submitted form."""
    assert response.status_code == 200, response.text
    form = Form(response.text)
    assert form.action == REDIRECT and form.method == "post" and "submit()" in response.text
    return form.fields


def redirected_to(response: httpx.Response, target: str = REDIRECT) -> dict[str, str]:
    """The query the app receives; the response must send the browser to `target`."""
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    parts = urlsplit(location)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == target
    return {k: v[0] for k, v in parse_qs(parts.query).items()}


def verified(control: httpx.Client, token: str, audience: str) -> dict[str, Any]:
    """The ID token's claims after checking signature, issuer and audience with PyJWT."""
    config = ok(control.get(f"/{TENANT}/v2.0/.well-known/openid-configuration"))
    keys = ok(control.get(urlsplit(config["jwks_uri"]).path))
    key = jwt.PyJWKSet.from_dict(keys)[jwt.get_unverified_header(token)["kid"]]
    # Times are checked against the emulator's clock below, not this machine's.
    claims: dict[str, Any] = jwt.decode(
        token,
        key.key,
        algorithms=["RS256"],
        audience=audience,
        issuer=config["issuer"],
        options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
    )
    return claims


def emulator_now(control: httpx.Client) -> float:
    now = ok(control.get("/_emulator/clock"))["now"]
    return datetime.fromisoformat(now.replace("Z", "+00:00")).timestamp()


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest())
    return verifier, challenge.rstrip(b"=").decode()


def authorize_url(client_id: str, **params: str) -> str:
    query = {
        "client_id": client_id,
        "response_type": "code",
        "redirect_uri": REDIRECT,
        "scope": "openid profile offline_access",
        "state": unique("state"),
        **params,
    }
    return f"/{TENANT}/oauth2/v2.0/authorize?{urlencode(query)}"


# -- the whole flow with msal --------------------------------------------------------------


# msal recommends form_post; this one test takes the query answer, the default.
@pytest.mark.filterwarnings("ignore:response_mode='form_post' is recommended")
def test_msal_signs_a_user_in_with_the_claims_entra_issues(
    emulator: EmulatorProcess,
    control: httpx.Client,
    browser: httpx.Client,
    msal_session: requests.Session,
) -> None:
    group = unique("group")
    ok(control.post("/_emulator/directory/groups", json={"id": group, "displayName": "Ops"}), 201)
    user = directory_user(control, groups=(group,))
    client_id, secret = register_app(control)
    assigned = ok(
        control.put(
            f"/_emulator/apps/{client_id}/role-assignments/{user['userPrincipalName']}",
            json={"roles": ["PresenceBridge.Admin"]},
        )
    )
    assert assigned == {
        "client_id": client_id,
        "user": user["id"],
        "roles": ["PresenceBridge.Admin"],
    }
    app = confidential(emulator, msal_session, client_id, secret)
    flow = app.initiate_auth_code_flow(["Presence.Read", "email"], redirect_uri=REDIRECT)
    assert "code_challenge_method=S256" in flow["auth_uri"]

    # The user name is matched case-insensitively, as Entra does.
    answer = redirected_to(sign_in(browser, flow["auth_uri"], user["userPrincipalName"].upper()))
    assert answer["state"] == flow["state"] and answer["code"]
    result = app.acquire_token_by_auth_code_flow(flow, answer)
    assert "access_token" in result, result
    assert result["token_type"] == "Bearer" and result["expires_in"] == 3600
    assert {"Presence.Read", "openid", "profile", "email"} <= set(result["scope"].split())
    assert result["refresh_token"]

    claims = verified(control, result["id_token"], client_id)
    # The nonce sent (msal sends a hash of the flow's), which msal checked too.
    assert claims["nonce"] == parse_qs(urlsplit(flow["auth_uri"]).query)["nonce"][0]
    assert claims["oid"] == user["id"]
    assert claims["tid"] == claims["iss"].split("/")[-2]
    assert claims["iss"] == f"{emulator.base_url}/{claims['tid']}/v2.0"
    assert claims["preferred_username"] == user["userPrincipalName"]
    assert claims["name"] == user["displayName"]
    assert claims["email"] == user["mail"]
    assert claims["groups"] == [group]
    assert claims["roles"] == ["PresenceBridge.Admin"]
    assert claims["ver"] == "2.0"
    assert claims["sub"] != claims["oid"] and len(claims["sub"]) == 43
    assert claims["sid"] == answer["session_state"]
    assert claims["exp"] - claims["iat"] == 3600 and claims["nbf"] == claims["iat"]
    assert abs(claims["iat"] - emulator_now(control)) < 60
    assert jwt.get_unverified_header(result["id_token"])["alg"] == "RS256"

    # The access token is the user's Graph token, as from the device code flow.
    me = ok(control.get("/v1.0/me/presence", headers=bearer(result["access_token"])))
    assert me["id"] == user["id"]

    # msal keeps the account; a refresh brings the same user (same sub) back.
    [account] = app.get_accounts()
    assert account["username"] == user["userPrincipalName"]
    refreshed = app.acquire_token_silent(["Presence.Read"], account=account, force_refresh=True)
    assert refreshed is not None and refreshed["token_source"] == "identity_provider"
    again = verified(control, refreshed["id_token"], client_id)
    assert again["sub"] == claims["sub"] and again["roles"] == ["PresenceBridge.Admin"]
    # The refresh token is the confidential app's: without its secret it is refused.
    stolen = browser.post(
        f"/{TENANT}/oauth2/v2.0/token",
        data={"grant_type": "refresh_token", "client_id": client_id, "client_secret": "guess",
              "refresh_token": refreshed["refresh_token"]},
    )  # fmt: skip
    assert stolen.status_code == 401 and stolen.json()["error"] == "invalid_client"

    stats = ok(control.get("/_emulator/stats"))
    assert stats["authorization_codes"]["issued"] == stats["authorization_codes"]["redeemed"] == 1
    assert stats["tokens"]["authorization_code"] == 1


def test_sub_is_pairwise_and_the_session_signs_in_again_without_the_page(
    emulator: EmulatorProcess,
    control: httpx.Client,
    browser: httpx.Client,
    msal_session: requests.Session,
) -> None:
    user = directory_user(control)
    first_id, first_secret = register_app(control)
    second_id, _ = register_app(control, public=True)  # a public client: PKCE only
    first = confidential(emulator, msal_session, first_id, first_secret)
    flow = first.initiate_auth_code_flow(
        ["User.Read"], redirect_uri=REDIRECT, response_mode="form_post"
    )
    result = first.acquire_token_by_auth_code_flow(
        flow, returned(sign_in(browser, flow["auth_uri"], user["userPrincipalName"]))
    )
    one = verified(control, result["id_token"], first_id)
    assert "roles" not in one and "groups" not in one

    # Signed in at the emulator: the next app gets its code without the page.
    second = msal.PublicClientApplication(
        second_id,
        authority=f"{emulator.base_url}/{TENANT}",
        http_client=msal_session,
        instance_discovery=False,
    )
    flow = second.initiate_auth_code_flow(
        ["User.Read"], redirect_uri=REDIRECT, response_mode="form_post"
    )
    silent = browser.get(flow["auth_uri"])
    result = second.acquire_token_by_auth_code_flow(flow, returned(silent))
    two = verified(control, result["id_token"], second_id)
    assert two["oid"] == one["oid"] == user["id"]
    assert two["sub"] != one["sub"]

    # prompt=login shows the page even so; the same app and user keep their sub.
    flow = first.initiate_auth_code_flow(
        ["User.Read"], redirect_uri=REDIRECT, prompt="login", response_mode="form_post"
    )
    page = browser.get(flow["auth_uri"])
    assert page.status_code == 200 and "Sign in" in page.text
    result = first.acquire_token_by_auth_code_flow(
        flow, returned(sign_in(browser, flow["auth_uri"], user["userPrincipalName"]))
    )
    assert verified(control, result["id_token"], first_id)["sub"] == one["sub"]


# -- hostile and failing cases -------------------------------------------------------------


def test_an_unregistered_redirect_uri_gets_an_error_page_never_a_redirect(
    control: httpx.Client, browser: httpx.Client
) -> None:
    client_id, _ = register_app(control)
    _, challenge = pkce()
    for uri in ("https://evil.example/steal", REDIRECT + "/", REDIRECT.upper()):
        response = browser.get(
            authorize_url(
                client_id, redirect_uri=uri, code_challenge=challenge, code_challenge_method="S256"
            )
        )
        assert response.status_code == 400
        assert "location" not in response.headers
        assert "AADSTS50011" in response.text and "text/html" in response.headers["content-type"]
    unknown = browser.get(authorize_url(str(uuid.uuid4())))
    assert unknown.status_code == 400 and "AADSTS700016" in unknown.text
    assert "location" not in unknown.headers


def test_a_wrong_code_verifier_is_refused(
    emulator: EmulatorProcess,
    control: httpx.Client,
    browser: httpx.Client,
    msal_session: requests.Session,
) -> None:
    user = directory_user(control)
    client_id, secret = register_app(control)
    app = confidential(emulator, msal_session, client_id, secret)
    flow = app.initiate_auth_code_flow(
        ["User.Read"], redirect_uri=REDIRECT, response_mode="form_post"
    )
    answer = returned(sign_in(browser, flow["auth_uri"], user["userPrincipalName"]))
    forged = {**flow, "code_verifier": secrets.token_urlsafe(48)}
    refused = app.acquire_token_by_auth_code_flow(forged, answer)
    assert refused.get("error") == "invalid_grant", refused
    assert "AADSTS501481" in refused["error_description"]
    assert "access_token" not in refused
    # No verifier at all is refused the same way.
    bare = browser.post(
        f"/{TENANT}/oauth2/v2.0/token",
        data={"grant_type": "authorization_code", "client_id": client_id, "client_secret": secret,
              "code": answer["code"], "redirect_uri": REDIRECT},
    )  # fmt: skip
    assert bare.status_code == 400 and "AADSTS501481" in bare.json()["error_description"]


def test_a_code_is_redeemed_once(
    emulator: EmulatorProcess,
    control: httpx.Client,
    browser: httpx.Client,
    msal_session: requests.Session,
) -> None:
    user = directory_user(control)
    client_id, secret = register_app(control)
    app = confidential(emulator, msal_session, client_id, secret)
    flow = app.initiate_auth_code_flow(
        ["User.Read"], redirect_uri=REDIRECT, response_mode="form_post"
    )
    answer = returned(sign_in(browser, flow["auth_uri"], user["userPrincipalName"]))
    assert "access_token" in app.acquire_token_by_auth_code_flow(flow, answer)
    replayed = app.acquire_token_by_auth_code_flow(flow, answer)
    assert replayed.get("error") == "invalid_grant", replayed
    assert "AADSTS54005" in replayed["error_description"]
    stats = ok(control.get("/_emulator/stats"))["authorization_codes"]
    assert (stats["issued"], stats["redeemed"], stats["refused"]) == (1, 1, 1)


def test_a_code_for_another_client_is_refused(
    emulator: EmulatorProcess,
    control: httpx.Client,
    browser: httpx.Client,
    msal_session: requests.Session,
) -> None:
    user = directory_user(control)
    victim_id, victim_secret = register_app(control)
    thief_id, thief_secret = register_app(control)
    victim = confidential(emulator, msal_session, victim_id, victim_secret)
    thief = confidential(emulator, msal_session, thief_id, thief_secret)
    flow = victim.initiate_auth_code_flow(
        ["User.Read"], redirect_uri=REDIRECT, response_mode="form_post"
    )
    answer = returned(sign_in(browser, flow["auth_uri"], user["userPrincipalName"]))
    # The thief has the code and even the verifier, but not the victim's identity.
    stolen = thief.acquire_token_by_auth_code_flow({**flow, "client_id": thief_id}, answer)
    assert stolen.get("error") == "invalid_grant", stolen
    assert "access_token" not in stolen
    wrong_secret = browser.post(
        f"/{TENANT}/oauth2/v2.0/token",
        data={"grant_type": "authorization_code", "client_id": victim_id,
              "client_secret": thief_secret, "code": answer["code"], "redirect_uri": REDIRECT,
              "code_verifier": flow["code_verifier"]},
    )  # fmt: skip
    assert wrong_secret.status_code == 401 and wrong_secret.json()["error"] == "invalid_client"
    # The refusals did not use the code up for its own client.
    result = victim.acquire_token_by_auth_code_flow(flow, answer)
    assert verified(control, result["id_token"], victim_id)["oid"] == user["id"]


def test_a_code_expires_after_ten_minutes_of_the_emulator_clock(
    control: httpx.Client, browser: httpx.Client
) -> None:
    user = directory_user(control)
    # client_secret_basic form-urlencodes the secret first (RFC 6749 2.3.1).
    secret = "a+b/c%d:e~" + uuid.uuid4().hex
    client_id, _ = register_app(control, secret=secret)
    verifier, challenge = pkce()

    def code() -> str:
        url = authorize_url(client_id, code_challenge=challenge, code_challenge_method="S256",
                            prompt="login")  # fmt: skip
        return redirected_to(sign_in(browser, url, user["userPrincipalName"]))["code"]

    def redeem(value: str) -> httpx.Response:
        # client_secret_basic this time, as confidential clients may.
        return browser.post(
            f"/{TENANT}/oauth2/v2.0/token",
            auth=(client_id, quote_plus(secret)),
            data={"grant_type": "authorization_code", "code": value, "redirect_uri": REDIRECT,
                  "code_verifier": verifier},
        )  # fmt: skip

    fresh, stale = code(), code()
    ok(control.post("/_emulator/clock", json={"advance_seconds": 590}))
    assert "id_token" in ok(redeem(fresh))
    ok(control.post("/_emulator/clock", json={"advance_seconds": 20}))
    expired = redeem(stale)
    assert expired.status_code == 400 and expired.json()["error"] == "invalid_grant"
    assert "AADSTS70008" in expired.json()["error_description"]


def test_an_unknown_user_sees_the_page_again(control: httpx.Client, browser: httpx.Client) -> None:
    user = directory_user(control)
    client_id, _ = register_app(control)
    _, challenge = pkce()
    state = unique("state")
    page = browser.get(authorize_url(client_id, state=state, code_challenge=challenge,
                                     login_hint=user["userPrincipalName"]))  # fmt: skip
    form = Form(page.text)
    assert form.fields["login"] == user["userPrincipalName"]  # login_hint prefills
    assert ("pick", user["userPrincipalName"]) in form.buttons
    unknown = browser.post(form.action or "", data={**form.fields, "login": "nobody@nowhere.test"})
    assert unknown.status_code == 400 and "location" not in unknown.headers
    assert "AADSTS50034" in unknown.text and "nobody@nowhere.test" in unknown.text
    # The object id is no user name either.
    by_id = browser.post(form.action or "", data={**form.fields, "login": user["id"]})
    assert by_id.status_code == 400 and "AADSTS50034" in by_id.text
    retry = Form(unknown.text)
    picked = browser.post(
        retry.action or "", data={**retry.fields, "pick": user["userPrincipalName"]}
    )
    assert redirected_to(picked)["state"] == state


def test_prompt_none_without_a_session_returns_login_required(
    control: httpx.Client, browser: httpx.Client
) -> None:
    client_id, _ = register_app(control)
    _, challenge = pkce()
    state = unique("state")
    answer = redirected_to(
        browser.get(authorize_url(client_id, prompt="none", state=state, code_challenge=challenge))
    )
    assert answer["error"] == "login_required" and answer["state"] == state
    assert "AADSTS50058" in answer["error_description"] and "code" not in answer


def test_bad_requests_go_back_to_the_app_as_errors(
    control: httpx.Client, browser: httpx.Client
) -> None:
    public_id, _ = register_app(control, public=True)
    no_pkce = redirected_to(browser.get(authorize_url(public_id)))
    assert no_pkce["error"] == "invalid_request"
    _, challenge = pkce()
    no_openid = redirected_to(
        browser.get(authorize_url(public_id, scope="User.Read", code_challenge=challenge))
    )
    assert no_openid["error"] == "invalid_scope"
    token = redirected_to(
        browser.get(authorize_url(public_id, response_type="token", code_challenge=challenge))
    )
    assert token["error"] == "unsupported_response_type"


def test_form_post_answers_with_an_auto_submitting_form(
    control: httpx.Client, browser: httpx.Client
) -> None:
    user = directory_user(control)
    client_id, _ = register_app(control, public=True)
    verifier, challenge = pkce()
    state = unique("state")
    url = authorize_url(client_id, response_mode="form_post", state=state,
                        code_challenge=challenge, code_challenge_method="S256")  # fmt: skip
    posted = sign_in(browser, url, user["userPrincipalName"])
    assert posted.status_code == 200
    form = Form(posted.text)
    assert form.action == REDIRECT and form.method == "post"
    assert form.fields["state"] == state and "submit()" in posted.text
    # A public client redeems with the verifier only; a secret would be refused.
    data = {
        "grant_type": "authorization_code",
        "client_id": client_id,
        "code": form.fields["code"],
        "redirect_uri": REDIRECT,
        "code_verifier": verifier,
    }
    with_secret = browser.post(f"/{TENANT}/oauth2/v2.0/token", data={**data, "client_secret": "x"})
    assert with_secret.status_code == 401 and "AADSTS700025" in with_secret.text
    answer = ok(browser.post(f"/{TENANT}/oauth2/v2.0/token", data=data))
    assert verified(control, answer["id_token"], client_id)["oid"] == user["id"]


def test_logout_ends_the_session_and_returns_only_to_registered_uris(
    control: httpx.Client, browser: httpx.Client
) -> None:
    user = directory_user(control)
    client_id, _ = register_app(control, public=True, post_logout=(SIGNED_OUT,))
    _, challenge = pkce()
    redirected_to(sign_in(browser, authorize_url(client_id, code_challenge=challenge),
                          user["userPrincipalName"]))  # fmt: skip
    silent = browser.get(authorize_url(client_id, prompt="none", code_challenge=challenge))
    assert "code" in redirected_to(silent)

    out = browser.get(
        f"/{TENANT}/oauth2/v2.0/logout",
        params={"post_logout_redirect_uri": SIGNED_OUT, "client_id": client_id, "state": "bye"},
    )
    assert redirected_to(out, SIGNED_OUT) == {"state": "bye"}
    after = browser.get(authorize_url(client_id, prompt="none", code_challenge=challenge))
    assert redirected_to(after)["error"] == "login_required"

    elsewhere = browser.get(
        f"/{TENANT}/oauth2/v2.0/logout",
        params={"post_logout_redirect_uri": "https://evil.example/", "client_id": client_id},
    )
    assert elsewhere.status_code == 200 and "location" not in elsewhere.headers
    assert "You signed out" in elsewhere.text


def test_openid_configuration_announces_the_sign_in(control: httpx.Client) -> None:
    base = str(control.base_url).rstrip("/")
    config = ok(control.get(f"/{TENANT}/v2.0/.well-known/openid-configuration"))
    assert config["authorization_endpoint"] == f"{base}/{TENANT}/oauth2/v2.0/authorize"
    assert config["end_session_endpoint"] == f"{base}/{TENANT}/oauth2/v2.0/logout"
    assert "code" in config["response_types_supported"]
    assert {"query", "form_post"} <= set(config["response_modes_supported"])
    assert "S256" in config["code_challenge_methods_supported"]
    assert config["id_token_signing_alg_values_supported"] == ["RS256"]
    assert config["subject_types_supported"] == ["pairwise"]
    assert {"openid", "profile", "email", "offline_access"} <= set(config["scopes_supported"])
    assert {"nonce", "oid", "tid", "groups", "roles"} <= set(config["claims_supported"])
    assert "authorization_code" in config["grant_types_supported"]
    common = ok(control.get("/common/v2.0/.well-known/openid-configuration"))
    assert common["issuer"] == f"{base}/{{tenantid}}/v2.0"
    assert config["issuer"] != common["issuer"] and "{tenantid}" not in config["issuer"]


def test_control_api_for_apps_and_role_assignments(control: httpx.Client) -> None:
    user = directory_user(control)
    client_id, _ = register_app(control, post_logout=(SIGNED_OUT,))
    path = f"/_emulator/apps/{client_id}/role-assignments/{user['id']}"
    ok(control.put(path, json={"roles": ["PresenceBridge.Admin", "PresenceBridge.Reader"]}))
    shown = ok(control.get(f"/_emulator/apps/{client_id}"))
    assert shown["confidential"] is True
    assert shown["post_logout_redirect_uris"] == [SIGNED_OUT]
    assert shown["role_assignments"] == {
        user["id"]: ["PresenceBridge.Admin", "PresenceBridge.Reader"]
    }
    ok(control.put(path, json={"roles": []}))
    assert ok(control.get(f"/_emulator/apps/{client_id}"))["role_assignments"] == {}
    missing_app = control.put(
        f"/_emulator/apps/{uuid.uuid4()}/role-assignments/{user['id']}", json={"roles": ["A"]}
    )
    assert missing_app.status_code == 404
    missing_user = control.put(
        f"/_emulator/apps/{client_id}/role-assignments/nobody", json={"roles": ["A"]}
    )
    assert missing_user.status_code == 404
    assert control.put(path, json={"roles": ["has space"]}).status_code == 422
    bad_uri = control.post(
        "/_emulator/apps", json={"client_id": "x", "redirect_uris": ["/relative#frag"]}
    )
    assert bad_uri.status_code == 422


def test_a_disabled_user_is_refused_and_loses_the_session(
    control: httpx.Client, browser: httpx.Client
) -> None:
    user = directory_user(control)
    client_id, _ = register_app(control, public=True)
    _, challenge = pkce()
    url = authorize_url(client_id, code_challenge=challenge)
    redirected_to(sign_in(browser, url, user["userPrincipalName"]))
    disable = {"accountEnabled": False}
    ok(control.patch(f"/_emulator/directory/users/{user['id']}", json=disable))
    silent = browser.get(authorize_url(client_id, prompt="none", code_challenge=challenge))
    assert redirected_to(silent)["error"] == "login_required"
    refused = sign_in(browser, url, user["userPrincipalName"])
    assert refused.status_code == 400 and "AADSTS50057" in refused.text


def test_authlib_and_joserfc_sign_in_as_the_hub_would(
    emulator: EmulatorProcess,
    control: httpx.Client,
    browser: httpx.Client,
    msal_session: requests.Session,
) -> None:
    """The hub's own libraries: an Authlib OAuth 2 client (client_secret_basic, S256)
    and joserfc's ID token checks against the discovery document."""
    user = directory_user(control)
    client_id, secret = register_app(control)
    config = ok(control.get(f"/{TENANT}/v2.0/.well-known/openid-configuration"))
    keys = KeySet.import_key_set(ok(control.get(urlsplit(config["jwks_uri"]).path)))
    verifier = secrets.token_urlsafe(48)
    nonce = secrets.token_urlsafe(16)
    with OAuth2Session(
        client_id,
        secret,
        scope="openid profile email offline_access",
        redirect_uri=REDIRECT,
        code_challenge_method="S256",
    ) as client:
        client.verify = msal_session.verify  # the emulator's CA only
        url, state = client.create_authorization_url(
            config["authorization_endpoint"], code_verifier=verifier, nonce=nonce
        )
        back = sign_in(browser, url, user["userPrincipalName"])
        assert redirected_to(back)["state"] == state
        token = client.fetch_token(
            config["token_endpoint"],
            authorization_response=back.headers["location"],
            code_verifier=verifier,
        )
    decoded = joserfc_jwt.decode(token["id_token"], keys, algorithms=["RS256"])
    checks = joserfc_jwt.JWTClaimsRegistry(
        now=int(emulator_now(control)),
        leeway=60,
        iss={"essential": True, "value": config["issuer"]},
        aud={"essential": True, "value": client_id},
        nonce={"essential": True, "value": nonce},
        sub={"essential": True},
    )
    checks.validate(decoded.claims)
    assert decoded.claims["oid"] == user["id"]
    assert decoded.claims["email"] == user["mail"]
