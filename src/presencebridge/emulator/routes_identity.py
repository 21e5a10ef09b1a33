"""The identity provider's paths: OpenID configuration, JWKS, token, device code, realm.

The web sign-in (/authorize, /logout) is in routes_signin.py."""

from __future__ import annotations

import base64
import html
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse

from presencebridge.emulator.identity import OAuthError, issuer_for, tenant_id
from presencebridge.emulator.routing import State, base_url
from presencebridge.emulator.state import EmulatedUser, Emulator

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}

router = APIRouter()


async def _form(request: Request) -> dict[str, str]:
    """An OAuth form body; HTTP Basic client authentication is folded in."""
    body = (await request.body()).decode("utf-8", "replace")
    form = dict(parse_qsl(body, keep_blank_values=True))
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic" and value:
        try:
            client_id, _, secret = base64.b64decode(value).decode().partition(":")
        except ValueError:
            client_id, secret = "", ""
        # RFC 6749 2.3.1: both are form-urlencoded before encoding (Authlib does so).
        form.setdefault("client_id", unquote_plus(client_id))
        form.setdefault("client_secret", unquote_plus(secret))
    return form


def openid_configuration_for(root: str, tenant: str) -> dict[str, Any]:
    """The OpenID configuration document of `tenant`, served under `root`."""
    base = f"{root}/{tenant}"
    # For the multi-tenant authorities Entra publishes the issuer as a template.
    multi = tenant.lower() in ("common", "organizations", "consumers")
    issuer = f"{root}/{{tenantid}}/v2.0" if multi else issuer_for(root, tenant_id(tenant))
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
        "token_endpoint": f"{base}/oauth2/v2.0/token",
        "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
        "jwks_uri": f"{base}/discovery/v2.0/keys",
        "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
        "response_modes_supported": ["query", "fragment", "form_post"],
        # Entra lists the implicit and hybrid types too; the emulator issues codes only.
        "response_types_supported": ["code"],
        "grant_types_supported": [
            "authorization_code",
            "client_credentials",
            "urn:ietf:params:oauth:grant-type:device_code",
            "refresh_token",
        ],
        "code_challenge_methods_supported": ["S256", "plain"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "claims_supported": [
            "sub", "iss", "aud", "exp", "iat", "nbf", "nonce", "name", "oid", "tid",
            "preferred_username", "email", "groups", "roles", "sid", "ver",
        ],
        "request_uri_parameter_supported": False,
        "tenant_region_scope": None,
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": "graph.microsoft.com",
    }  # fmt: skip


@router.get("/{tenant}/v2.0/.well-known/openid-configuration")
async def openid_configuration(tenant: str, request: Request) -> dict[str, Any]:
    return openid_configuration_for(base_url(request), tenant)


@router.get("/{tenant}/discovery/v2.0/keys")
async def jwks(tenant: str, state: State) -> dict[str, Any]:
    return state.identity.signer.jwks()


@router.post("/{tenant}/oauth2/v2.0/token")
async def token(tenant: str, request: Request, state: State) -> JSONResponse:
    form = await _form(request)
    try:
        answer = state.identity.token(form, base_url(request), tenant_id(tenant), state.now())
    except OAuthError as error:
        return JSONResponse(error.to_json(state.now()), error.status, headers=NO_STORE)
    return JSONResponse(answer, headers=NO_STORE)


@router.post("/{tenant}/oauth2/v2.0/devicecode")
async def devicecode(tenant: str, request: Request, state: State) -> JSONResponse:
    form = await _form(request)
    try:
        answer = state.identity.start_device_flow(
            form, f"{base_url(request)}/devicelogin", state.now()
        )
    except OAuthError as error:
        return JSONResponse(error.to_json(state.now()), error.status, headers=NO_STORE)
    return JSONResponse(answer, headers=NO_STORE)


def _federated(state: Emulator, user: EmulatedUser | None, domain: str) -> bool | None:
    """True/False for a known user or domain, None when the domain is unknown."""
    return user.federated if user is not None else state.domain_federated(domain)


@router.get("/{tenant}/userrealm/{username}")
async def user_realm(tenant: str, username: str, state: State) -> dict[str, Any]:
    """Home-realm discovery as msal asks for it (Federated for federated users)."""
    domain = username.rpartition("@")[2].lower()
    federated = _federated(state, state.find_user(username), domain)
    account_type = {None: "Unknown", True: "Federated", False: "Managed"}[federated]
    answer: dict[str, Any] = {
        "ver": "1.0",
        "account_type": account_type,
        "domain_name": domain,
        "cloud_instance_name": "microsoftonline.com",
        "cloud_audience_urn": "urn:federation:MicrosoftOnline",
    }
    if federated:
        answer |= {
            "federation_protocol": "WSTrust",
            "federation_metadata_url": f"https://adfs.{domain}/adfs/services/trust/mex",
            "federation_active_auth_url": f"https://adfs.{domain}/adfs/services/trust/2005/usernamemixed",
        }
    return answer


@router.get("/devicelogin", response_class=HTMLResponse)
async def devicelogin() -> HTMLResponse:
    return HTMLResponse(DEVICE_LOGIN_PAGE)


DEVICE_LOGIN_PAGE = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Emulated sign-in</title></head>
<body style="font-family: sans-serif; max-width: 36em; margin: 3em auto">
<h1>Emulated Microsoft sign-in</h1>
<p>{html.escape("Enter the code your app shows and the user (id or UPN) to sign in as.")}</p>
<form id="f"><p><label>Code <input name="user_code" required></label></p>
<p><label>User <input name="user" required></label></p><button>Sign in</button></form>
<p id="out"></p>
<script>
document.getElementById("f").onsubmit = async (e) => {{
  e.preventDefault();
  const data = Object.fromEntries(new FormData(e.target));
  const r = await fetch("/_emulator/device/approve", {{method: "POST",
    headers: {{"Content-Type": "application/json"}}, body: JSON.stringify(data)}});
  document.getElementById("out").textContent = r.ok ? "Signed in. You may close this page."
    : "Refused: " + (await r.json()).detail;
}};
</script></body></html>
"""
