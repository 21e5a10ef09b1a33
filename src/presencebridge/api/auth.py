"""Who is calling: the administrator (admin token) or one user's agent (agent token)."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from fastapi import HTTPException, Request, WebSocket, status

from presencebridge.service.hub import Hub


@dataclass(frozen=True, slots=True)
class Principal:
    is_admin: bool
    user_id: str | None = None  # set for an agent token

    def may_act_for(self, user_id: str) -> bool:
        return self.is_admin or self.user_id == user_id


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
    user_id = await hub.agent_token_user(token)
    return None if user_id is None else Principal(is_admin=False, user_id=user_id)


async def principal(request: Request) -> Principal:
    """FastAPI dependency: the caller, or 401."""
    header = request.headers.get("authorization")
    token = bearer_token(header, None)
    if token is None:
        message = "missing bearer token" if not header else "malformed Authorization header"
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, message, {"WWW-Authenticate": "Bearer"})
    state = request.app.state
    who = await identify(token, state.admin_token, state.hub)
    if who is None:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, "invalid token", {"WWW-Authenticate": "Bearer"}
        )
    return who


async def websocket_principal(websocket: WebSocket) -> Principal | None:
    token = bearer_token(
        websocket.headers.get("authorization"), websocket.query_params.get("token")
    )
    state = websocket.app.state
    return await identify(token, state.admin_token, state.hub)


def require_admin(who: Principal) -> None:
    if not who.is_admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "this needs the admin token")


def require_user(who: Principal, user_id: str) -> None:
    if not who.may_act_for(user_id):
        raise HTTPException(status.HTTP_403_FORBIDDEN, "an agent token acts only for its own user")
