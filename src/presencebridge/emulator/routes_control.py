"""Control API, the rest: health, device-code approval, app registrations, the clock,
fault injection, statistics and reset."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import Field

from presencebridge import __version__
from presencebridge.emulator import model
from presencebridge.emulator.routes_users import user_or_404
from presencebridge.emulator.routing import State, Strict
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
    """An app registration; with --strict only registered apps get tokens."""
    state.identity.register_app(body.client_id, body.client_secret)
    return {"client_id": body.client_id, "confidential": body.client_secret is not None}


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
