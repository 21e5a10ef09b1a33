"""Control API, the rest: health, device-code approval, app registrations (with the web
sign-in's redirect URIs and app-role assignments), the clock, fault injection,
statistics and reset."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import Field, field_validator

from presencebridge import __version__
from presencebridge.emulator import model
from presencebridge.emulator.routes_users import user_or_404
from presencebridge.emulator.routing import State, Strict
from presencebridge.emulator.signin import valid_redirect_uri
from presencebridge.emulator.state import Emulator

# Full paths in every route, as SPEC §7 names them, so a grep for one finds it.
router = APIRouter()


class ApproveIn(Strict):
    user_code: str = Field(min_length=1, max_length=32)
    user: str = Field(min_length=1, max_length=256, description="user id or upn")
    deny: bool = False


class ClockIn(Strict):
    advance_seconds: float = Field(ge=0, le=366 * 86400)


class FaultsIn(Strict):
    rate_429: float = Field(0.0, ge=0, le=1)
    rate_503: float = Field(0.0, ge=0, le=1)
    latency_ms: float = Field(0.0, ge=0, le=60_000)
    retry_after_seconds: float = Field(1.0, gt=0, le=3600)
    seed: int | None = None


class AppIn(Strict):
    client_id: str = Field(min_length=1, max_length=128)
    client_secret: str | None = Field(None, min_length=1, max_length=512)
    # Entra allows 256 redirect URIs of up to 256 characters each.
    redirect_uris: list[str] = Field(default_factory=list, max_length=256)
    post_logout_redirect_uris: list[str] = Field(default_factory=list, max_length=256)

    @field_validator("redirect_uris", "post_logout_redirect_uris")
    @classmethod
    def _absolute(cls, uris: list[str]) -> list[str]:
        for uri in uris:
            if len(uri) > 256 or not valid_redirect_uri(uri):
                raise ValueError(f"{uri!r} is not an absolute URI without a fragment")
        return uris


class RolesIn(Strict):
    # App role values have no spaces (Entra refuses them in the manifest).
    roles: list[str] = Field(max_length=100)

    @field_validator("roles")
    @classmethod
    def _values(cls, roles: list[str]) -> list[str]:
        for role in roles:
            if not role or len(role) > 120 or any(c.isspace() for c in role):
                raise ValueError(f"{role!r} is not an app role value (1-120 chars, no spaces)")
        return roles


@router.get("/_emulator/health")
async def health(state: State) -> dict[str, Any]:
    return {"status": "ok", "version": __version__, "strict": state.strict}


@router.post("/_emulator/device/approve")
async def approve(body: ApproveIn, state: State) -> dict[str, Any]:
    user = user_or_404(state, body.user)
    try:
        grant = state.identity.approve(
            body.user_code, user.id, user.upn, state.now(), deny=body.deny
        )
    except LookupError as error:
        raise HTTPException(404, str(error.args[0])) from None
    except ValueError as error:
        raise HTTPException(409, str(error)) from None
    return {
        "user_code": grant.user_code,
        "user": user.id,
        "client_id": grant.client_id,
        "scopes": list(grant.scopes),
        "approved": not body.deny,
    }


@router.post("/_emulator/apps", status_code=201)
async def register_app(body: AppIn, state: State) -> dict[str, Any]:
    """An app registration; with --strict only registered apps get tokens. A web sign-in
    needs one in any mode, with its redirect URIs. Registering again replaces secret and
    URIs and keeps role assignments."""
    state.identity.register_app(
        body.client_id,
        body.client_secret,
        tuple(dict.fromkeys(body.redirect_uris)),
        tuple(dict.fromkeys(body.post_logout_redirect_uris)),
    )
    return _app_json(state, body.client_id)


def _app_json(state: Emulator, client_id: str) -> dict[str, Any]:
    identity = state.identity
    app = identity.web.apps.get(client_id)
    if app is None:
        raise HTTPException(404, f"no app {client_id!r}; register it with POST /_emulator/apps")
    return app.to_json(confidential=identity.apps.get(client_id) is not None)


@router.get("/_emulator/apps/{client_id}")
async def get_app(client_id: str, state: State) -> dict[str, Any]:
    return _app_json(state, client_id)


@router.put("/_emulator/apps/{client_id}/role-assignments/{user}")
async def assign_roles(client_id: str, user: str, body: RolesIn, state: State) -> dict[str, Any]:
    """The app roles `user` (object id or UPN) holds in the app; they appear in the ID
    token's `roles`. An empty list removes the assignment."""
    _app_json(state, client_id)
    profile = state.profile(user)
    if profile is None:
        raise HTTPException(404, f"no user {user!r}")
    roles = state.identity.web.apps[client_id].roles
    if body.roles:
        roles[profile.user_id] = tuple(dict.fromkeys(body.roles))
    else:
        roles.pop(profile.user_id, None)
    return {"client_id": client_id, "user": profile.user_id, "roles": list(body.roles)}


@router.delete("/_emulator/apps/{client_id}/role-assignments/{user}")
async def remove_roles(client_id: str, user: str, state: State) -> dict[str, Any]:
    _app_json(state, client_id)
    profile = state.profile(user)
    if profile is None:
        raise HTTPException(404, f"no user {user!r}")
    state.identity.web.apps[client_id].roles.pop(profile.user_id, None)
    return {"client_id": client_id, "user": profile.user_id, "roles": []}


def _clock(state: Emulator) -> dict[str, Any]:
    return {"now": model.graph_time(state.now()), "offset_seconds": state.clock.offset_seconds}


@router.get("/_emulator/clock")
async def get_clock(state: State) -> dict[str, Any]:
    return _clock(state)


@router.post("/_emulator/clock")
async def move_clock(body: ClockIn, state: State) -> dict[str, Any]:
    state.advance(body.advance_seconds)
    return _clock(state)


@router.get("/_emulator/faults")
async def get_faults(state: State) -> dict[str, Any]:
    return state.faults.to_json()


@router.post("/_emulator/faults")
async def set_faults(body: FaultsIn, state: State) -> dict[str, Any]:
    state.faults.configure(
        body.rate_429, body.rate_503, body.latency_ms, body.retry_after_seconds, body.seed
    )
    return state.faults.to_json()


@router.get("/_emulator/stats")
async def stats(state: State) -> dict[str, Any]:
    return state.stats_json()


@router.post("/_emulator/reset")
async def reset(state: State) -> dict[str, Any]:
    state.reset()
    return {"reset": True}
