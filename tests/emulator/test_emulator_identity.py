"""The identity provider with msal unchanged, token checks on the Graph paths, strict mode."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import msal
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.emulator.support import (
    APP_ID,
    APP_SECRET,
    PUBLIC_APP_ID,
    TENANT,
    EmulatorProcess,
    app_token,
    bearer,
    make_users,
    ok,
    user_tokens,
)

GRAPH_SCOPE = ["https://graph.microsoft.com/.default"]


@pytest.fixture
def msal_session(
    emulator: EmulatorProcess, monkeypatch: pytest.MonkeyPatch
) -> Iterator[requests.Session]:
    """What the product hands msal: a Session trusting the emulator's CA."""
    # requests lets these variables override Session.verify; they name the system bundle here.
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    session = requests.Session()
    session.verify = str(emulator.ca_file)
    yield session
    session.close()


def _claims(control: httpx.Client, token: str, audience: str, tenant: str = TENANT) -> Any:
    """Claims of `token` after checking its signature against the published JWKS."""
    config = ok(control.get(f"/{tenant}/v2.0/.well-known/openid-configuration"))
    keys = ok(control.get(config["jwks_uri"].replace(str(control.base_url).rstrip("/"), "")))
    kid = jwt.get_unverified_header(token)["kid"]
    key = next(jwt.PyJWK(k) for k in keys["keys"] if k["kid"] == kid)
    return jwt.decode(
        token,
        key.key,
        algorithms=["RS256"],
        audience=audience,
        issuer=config["issuer"],
        options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
    )


def test_msal_client_credentials_unchanged(
    emulator: EmulatorProcess, control: httpx.Client, msal_session: requests.Session
) -> None:
    app = msal.ConfidentialClientApplication(
        APP_ID,
        client_credential=APP_SECRET,
        authority=f"{emulator.base_url}/{TENANT}",
        http_client=msal_session,
        instance_discovery=False,
    )
    result = app.acquire_token_for_client(GRAPH_SCOPE)
    assert "access_token" in result, result
    again = app.acquire_token_for_client(GRAPH_SCOPE)
    assert again["token_source"] == "cache"
    claims = _claims(control, result["access_token"], "https://graph.microsoft.com")
    assert claims["appid"] == claims["azp"] == APP_ID
    assert "Presence.ReadWrite.All" in claims["roles"]
    assert claims["idtyp"] == "app"
    assert claims["exp"] - claims["iat"] == 3600
    assert "scp" not in claims
    make_users(control, "u1")
    assert ok(control.get("/v1.0/users/u1/presence", headers=bearer(result["access_token"])))


def test_msal_device_code_flow_then_silent(
    emulator: EmulatorProcess, control: httpx.Client, msal_session: requests.Session
) -> None:
    make_users(control, "agent-user")
    app = msal.PublicClientApplication(
        PUBLIC_APP_ID,
        authority=f"{emulator.base_url}/{TENANT}",
        http_client=msal_session,
        instance_discovery=False,
    )
    flow = app.initiate_device_flow(scopes=["Presence.Read.All"])
    assert "user_code" in flow, flow
    assert flow["user_code"] in flow["message"]

    def sign_in() -> None:
        time.sleep(0.3)
        with emulator.client() as client:
            ok(
                client.post(
                    "/_emulator/device/approve",
                    json={"user_code": flow["user_code"], "user": "agent-user"},
                )
            )

    approver = threading.Thread(target=sign_in)
    approver.start()
    result = app.acquire_token_by_device_flow(flow)
    approver.join()
    assert "access_token" in result, result
    claims = _claims(control, result["access_token"], "https://graph.microsoft.com")
    assert claims["oid"] == "agent-user"
    assert claims["preferred_username"] == "agent-user@presencebridge.test"
    assert "Presence.Read.All" in claims["scp"].split()
    assert claims["appid"] == claims["azp"] == PUBLIC_APP_ID
    assert "roles" not in claims
    accounts = app.get_accounts()
    assert [a["username"] for a in accounts] == ["agent-user@presencebridge.test"]
    cached = app.acquire_token_silent(["Presence.Read.All"], account=accounts[0])
    assert cached is not None and cached["token_source"] == "cache"
    refreshed = app.acquire_token_silent(
        ["Presence.Read.All"], account=accounts[0], force_refresh=True
    )
    assert refreshed is not None and refreshed["token_source"] == "identity_provider"
    me = ok(control.get("/v1.0/me/presence", headers=bearer(refreshed["access_token"])))
    assert me["id"] == "agent-user"
    tokens = ok(control.get("/_emulator/stats"))["tokens"]
    assert tokens["device_code"] == 1 and tokens["refresh_token"] == 1


def test_device_code_pending_declined_and_expired(control: httpx.Client) -> None:
    make_users(control, "u1")

    def start() -> dict[str, Any]:
        answer: dict[str, Any] = ok(
            control.post(
                f"/{TENANT}/oauth2/v2.0/devicecode",
                data={"client_id": PUBLIC_APP_ID, "scope": "Presence.Read.All"},
            )
        )
        return answer

    def poll(flow: dict[str, Any]) -> httpx.Response:
        return control.post(
            f"/{TENANT}/oauth2/v2.0/token",
            data={
                "grant_type": "urn:ietf:params:oauth:grant-type:device_code",
                "client_id": PUBLIC_APP_ID,
                "device_code": flow["device_code"],
            },
        )

    pending = start()
    assert poll(pending).json()["error"] == "authorization_pending"
    declined = start()
    ok(
        control.post(
            "/_emulator/device/approve",
            json={"user_code": declined["user_code"], "user": "u1", "deny": True},
        )
    )
    assert poll(declined).json()["error"] == "authorization_declined"
    ok(control.post("/_emulator/clock", json={"advance_seconds": 901}))
    assert poll(pending).json()["error"] == "expired_token"
    late = control.post(
        "/_emulator/device/approve", json={"user_code": pending["user_code"], "user": "u1"}
    )
    assert late.status_code == 409
    unknown = control.post("/_emulator/device/approve", json={"user_code": "NOPE", "user": "u1"})
    assert unknown.status_code == 404
    nobody = control.post(
        "/_emulator/device/approve", json={"user_code": start()["user_code"], "user": "nobody"}
    )
    assert nobody.status_code == 404


def _graph_401(control: httpx.Client, token: str | None) -> str:
    headers = {} if token is None else bearer(token)
    response = control.get("/v1.0/users/u1/presence", headers=headers)
    assert response.status_code == 401, response.text
    error = response.json()["error"]
    assert error["code"] == "InvalidAuthenticationToken"
    return str(error["message"])


def test_bad_tokens_are_401(control: httpx.Client) -> None:
    make_users(control, "u1")
    good = app_token(control)
    claims = jwt.decode(good, options={"verify_signature": False})
    kid = jwt.get_unverified_header(good)["kid"]
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(claims, other_key, algorithm="RS256", headers={"kid": kid})
    assert "signature" in _graph_401(control, forged).lower()
    unsigned = jwt.encode(claims, "", algorithm="none")
    _graph_401(control, unsigned)
    _graph_401(control, "not-a-jwt")
    assert "empty" in _graph_401(control, None).lower()
    id_token = user_tokens(control, "u1")["id_token"]  # signed by the emulator, aud = the app
    assert "audience" in _graph_401(control, id_token).lower()
    assert ok(control.get("/v1.0/users/u1/presence", headers=bearer(good)))
    ok(control.post("/_emulator/clock", json={"advance_seconds": 3601}))
    assert "expired" in _graph_401(control, good).lower()


def test_delegated_tokens_are_held_to_their_scopes(control: httpx.Client) -> None:
    make_users(control, "u1", "u2")
    reader = user_tokens(control, "u1", "Presence.Read.All openid")["access_token"]
    body = {"sessionId": PUBLIC_APP_ID, "availability": "Busy", "activity": "InACall"}
    refused = control.post("/v1.0/users/u1/presence/setPresence", json=body, headers=bearer(reader))
    assert refused.status_code == 403
    writer = user_tokens(control, "u1", "Presence.ReadWrite openid")["access_token"]
    ok(control.post("/v1.0/me/presence/setPresence", json=body, headers=bearer(writer)))
    other = control.post("/v1.0/users/u2/presence/setPresence", json=body, headers=bearer(writer))
    assert other.status_code == 403
    assert control.get("/v1.0/users/u2/presence", headers=bearer(writer)).status_code == 403
    assert ok(control.get("/v1.0/users/u2/presence", headers=bearer(reader)))["id"] == "u2"


def test_token_endpoint_refuses_what_entra_refuses(control: httpx.Client) -> None:
    wrong_scope = control.post(
        f"/{TENANT}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": APP_ID,
            "client_secret": APP_SECRET,
            "scope": "Presence.Read.All",
        },
    )
    assert wrong_scope.status_code == 400 and wrong_scope.json()["error"] == "invalid_scope"
    password = control.post(
        f"/{TENANT}/oauth2/v2.0/token",
        data={"grant_type": "password", "client_id": APP_ID, "username": "u", "password": "p"},
    )
    assert password.status_code == 400
    assert password.json()["error"] == "unsupported_grant_type"
    bad_refresh = control.post(
        f"/{TENANT}/oauth2/v2.0/token",
        data={"grant_type": "refresh_token", "client_id": APP_ID, "refresh_token": "nope"},
    )
    assert bad_refresh.json()["error"] == "invalid_grant"


def test_openid_configuration_and_home_realm_discovery(control: httpx.Client) -> None:
    base = str(control.base_url).rstrip("/")
    config = ok(control.get("/any-tenant/v2.0/.well-known/openid-configuration"))
    assert config["token_endpoint"] == f"{base}/any-tenant/oauth2/v2.0/token"
    assert config["device_authorization_endpoint"] == f"{base}/any-tenant/oauth2/v2.0/devicecode"
    assert config["issuer"].startswith(base + "/") and config["issuer"].endswith("/v2.0")
    guid = "0a1b2c3d-1111-4222-8333-444455556666"
    guid_config = ok(control.get(f"/{guid}/v2.0/.well-known/openid-configuration"))
    assert guid_config["issuer"] == f"{base}/{guid}/v2.0"
    keys = ok(control.get(f"/{guid}/discovery/v2.0/keys"))["keys"]
    assert keys[0]["kty"] == "RSA" and keys[0]["kid"] and keys[0]["alg"] == "RS256"
    ok(
        control.post(
            "/_emulator/users", json={"id": "fed", "upn": "fed@adfs.example.org", "federated": True}
        ),
        201,
    )
    make_users(control, "managed")
    fed = ok(control.get("/common/userrealm/fed@adfs.example.org?api-version=1.0"))
    assert fed["account_type"] == "Federated" and fed["domain_name"] == "adfs.example.org"
    managed = ok(control.get("/common/userrealm/managed@presencebridge.test?api-version=1.0"))
    assert managed["account_type"] == "Managed"
    unknown = ok(control.get("/common/userrealm/x@elsewhere.example?api-version=1.0"))
    assert unknown["account_type"] == "Unknown"


# -- strict mode ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def strict_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    process = EmulatorProcess(tmp_path_factory.mktemp("strict") / "tls", "--strict")
    process.start()
    yield process
    process.stop()


def test_strict_mode_accepts_registered_apps_only(strict_emulator: EmulatorProcess) -> None:
    with strict_emulator.client() as control:
        ok(control.post("/_emulator/reset"))
        refused = control.post(
            f"/{TENANT}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": APP_ID,
                "client_secret": APP_SECRET,
                "scope": GRAPH_SCOPE[0],
            },
        )
        assert refused.status_code == 401 and refused.json()["error"] == "invalid_client"
        ok(
            control.post(
                "/_emulator/apps", json={"client_id": APP_ID, "client_secret": APP_SECRET}
            ),
            201,
        )
        wrong = control.post(
            f"/{TENANT}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": APP_ID,
                "client_secret": "guess",
                "scope": GRAPH_SCOPE[0],
            },
        )
        assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"
        token = app_token(control)
        make_users(control, "u1")
        body = {"availability": "Busy", "activity": "InACall"}
        foreign = control.post(
            "/v1.0/users/u1/presence/setPresence",
            json={"sessionId": "someone-else", **body},
            headers=bearer(token),
        )
        assert foreign.status_code == 400 and "sessionId" in foreign.json()["error"]["message"]
        ok(
            control.post(
                "/v1.0/users/u1/presence/setPresence",
                json={"sessionId": APP_ID, **body},
                headers=bearer(token),
            )
        )
        public = control.post(
            f"/{TENANT}/oauth2/v2.0/devicecode",
            data={"client_id": PUBLIC_APP_ID, "scope": "Presence.Read.All"},
        )
        assert public.status_code == 401 and public.json()["error"] == "invalid_client"
        ok(control.post("/_emulator/apps", json={"client_id": PUBLIC_APP_ID}), 201)
        assert user_tokens(control, "u1")["access_token"]
