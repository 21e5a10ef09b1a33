"""Control API, users: create and read emulated users, play their Teams client.

`/client` is the user's own Teams client session, `/preferred` a status the user
sets by hand in Teams (SPEC §7). Refusals are 422 `{"detail", "code"}`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import JSONResponse
from pydantic import Field

from presencebridge.emulator import model
from presencebridge.emulator.routing import State, Strict, problem
from presencebridge.emulator.state import USER_ID, EmulatedUser, Emulator

# Full paths in every route, as SPEC §7 names them, so a grep for one finds it.
router = APIRouter()


class UserIn(Strict):
    id: str = Field(pattern=f"^{USER_ID.pattern}$", description="the Entra object id to emulate")
    upn: str | None = Field(None, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=256)
    federated: bool = False


class ClientIn(Strict):
    availability: str = Field(min_length=1, max_length=32)
    activity: str | None = Field(None, max_length=64)


class PreferredIn(Strict):
    availability: str
    activity: str
    expirationDuration: str | None = None


class OutOfOfficeIn(Strict):
    isOutOfOffice: bool
    message: str | None = Field(None, max_length=4000)


def user_or_404(state: Emulator, key: str) -> EmulatedUser:
    user = state.find_user(key)
    if user is None:
        raise HTTPException(404, f"no user {key!r}; create it with POST /_emulator/users")
    return user


def _apply(
    state: Emulator, user_id: str, change: Callable[[model.UserPresence, Any], None]
) -> dict[str, Any]:
    user = user_or_404(state, user_id)
    try:
        state.update(user, change)
    except model.Invalid as error:
        raise HTTPException(422, str(error)) from None
    return user.describe(state.now())


@router.post("/_emulator/users")
async def create_user(body: UserIn, state: State) -> JSONResponse:
    try:
        user, created = state.create_user(body.id, body.upn, body.federated)
    except ValueError as error:
        return problem(409, str(error), "conflict")
    if not created and (
        (body.upn is not None and body.upn.lower() != user.upn.lower())
        or body.federated != user.federated
    ):
        return problem(409, f"user {body.id!r} exists with other details", "conflict")
    state.touch(user)
    return JSONResponse(user.describe(state.now()), 201 if created else 200)


@router.get("/_emulator/users")
async def list_users(state: State) -> dict[str, Any]:
    value = []
    for user in state.users.values():
        value.append({"upn": user.upn, **state.read(user)})
    return {"value": value}


@router.get("/_emulator/users/{user_id}")
async def get_user(user_id: str, state: State) -> dict[str, Any]:
    user = user_or_404(state, user_id)
    state.touch(user)
    return user.describe(state.now())


@router.post("/_emulator/users/{user_id}/client")
async def set_client(user_id: str, body: ClientIn, state: State) -> dict[str, Any]:
    """The Teams client's own session: a pair of GRAPH.md's "What Teams shows" list
    (`model.CLIENT_PAIRS`), PresenceUnknown/PresenceUnknown included; Offline/Offline or
    Offline alone closes Teams. Any other pair is 422, naming it and the valid ones."""
    return _apply(
        state, user_id, lambda p, now: p.set_client(body.availability, body.activity, now)
    )


@router.delete("/_emulator/users/{user_id}/client")
async def close_client(user_id: str, state: State) -> dict[str, Any]:
    return _apply(state, user_id, lambda p, now: p.set_client("Offline", None, now))


@router.post("/_emulator/users/{user_id}/preferred")
async def set_preferred(user_id: str, body: PreferredIn, state: State) -> dict[str, Any]:
    """The user sets a status by hand in Teams."""
    try:
        model.validate_preferred_pair(body.availability, body.activity)
        duration = model.preferred_duration(body.availability, body.expirationDuration)
    except model.Invalid as error:
        raise HTTPException(422, str(error)) from None
    return _apply(
        state,
        user_id,
        lambda p, now: p.set_preferred(body.availability, body.activity, duration, now),
    )


@router.delete("/_emulator/users/{user_id}/preferred")
async def clear_preferred(user_id: str, state: State) -> dict[str, Any]:
    return _apply(state, user_id, lambda p, now: p.clear_preferred(now))


@router.put("/_emulator/users/{user_id}/out-of-office")
async def set_out_of_office(user_id: str, body: OutOfOfficeIn, state: State) -> dict[str, Any]:
    """What Outlook's automatic replies, a scheduled out of office in Teams or an
    out-of-office calendar event do: presence.outOfOfficeSettings, read-only in Graph.
    Shown in every read of the presence and notified like any presence change."""
    settings = model.OutOfOffice(body.isOutOfOffice, body.message)
    return _apply(state, user_id, lambda p, now: p.set_out_of_office(settings, now))


@router.delete("/_emulator/users/{user_id}/out-of-office")
async def clear_out_of_office(user_id: str, state: State) -> dict[str, Any]:
    """Automatic replies off and the message gone."""
    return _apply(state, user_id, lambda p, now: p.set_out_of_office(model.OutOfOffice(), now))
