"""Who is calling: the administrator (admin token), one user's agent (agent token) or a
user's script (personal token); what they may do is `api.access`'s table."""

from __future__ import annotations

import hmac

from fastapi import HTTPException, Request, WebSocket, status

from presencebridge.api.access import (
    ACCESS,
    ADMIN_TOKEN,
    AGENT_TOKEN,
    PERSONAL_TOKEN,
    Principal,
    decide,
    refusal,
    route_key,
)
from presencebridge.service import audit
from presencebridge.service.hub import Hub

__all__ = ["Principal", "bearer_token", "identify", "principal", "websocket_principal"]

# The command line (cli.py) says so: its changes are recorded as the command line's.
CLIENT_HEADER = "x-presencebridge-client"


def bearer_token(authorization: str | None, query_token: str | None) -> str | None:
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        return None
    return query_token or None


async def identify(token: str | None, admin_token: str, hub: Hub) -> Principal | None:
    if not token:
        return None
    if hmac.compare_digest(token.encode(), admin_token.encode()):
        return Principal(is_admin=True)
    owner = await hub.token_owner(token)
    if owner is None:
        return None
    user_id, kind = owner
    return Principal(False, user_id, AGENT_TOKEN if kind == "agent" else PERSONAL_TOKEN)


async def principal(request: Request) -> Principal:
    """FastAPI dependency: the caller, allowed by the authorisation table; else 401/403."""
    header = request.headers.get("authorization")
    token = bearer_token(header, None)
    state = request.app.state
    who = None if token is None else await identify(token, state.admin_token, state.hub)
    access = ACCESS[route_key(request.scope)]
    answer = decide(access, who, request.path_params.get("user_id"))
    if answer == 401:
        if token is None:
            message = "missing bearer token" if not header else "malformed Authorization header"
        else:
            message = "invalid token"
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, message, {"WWW-Authenticate": "Bearer"})
    if answer == 403:
        raise HTTPException(status.HTTP_403_FORBIDDEN, refusal(access))
    assert who is not None
    audit.acting.set(token_actor(who, request.headers.get(CLIENT_HEADER)))
    return who


def token_actor(who: Principal, client: str | None) -> audit.Actor:
    """Who the audit log names for a token's request: never the token itself."""
    if who.via == ADMIN_TOKEN:
        kind = audit.CLI if client == "cli" else audit.ADMIN_TOKEN
        return audit.Actor(kind, "administrator")
    kind = audit.AGENT_TOKEN if who.via == AGENT_TOKEN else audit.PERSONAL_TOKEN
    return audit.Actor(kind, who.user_id or "")


async def websocket_principal(websocket: WebSocket) -> Principal | None:
    token = bearer_token(
        websocket.headers.get("authorization"), websocket.query_params.get("token")
    )
    state = websocket.app.state
    return await identify(token, state.admin_token, state.hub)
