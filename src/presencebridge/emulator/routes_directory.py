"""Control API, the directory (issue 12): Entra ID users' directory attributes and groups.

`POST /_emulator/directory/users` adds (or replaces) a user with display name, UPN, mail,
accountEnabled, phones, extension attributes and group memberships; by default the user
also gets a Teams account (presence) under the same object id. `PATCH` changes fields,
`DELETE` removes the user (`?permanent=true`: a hard delete, `@removed` reason
"deleted"; else "changed", as a soft delete). Groups are made with
`POST /_emulator/directory/groups`. `POST /_emulator/directory/faults`
`{"fail_after_pages": n}` lets n more directory requests answer, then 503s (null: off).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException
from fastapi.responses import JSONResponse
from pydantic import Field

from presencebridge.emulator.directory import EXTENSION_ATTRIBUTES, DirectoryGroup, DirectoryUser
from presencebridge.emulator.routing import State, Strict, problem
from presencebridge.emulator.state import USER_ID, Emulator

router = APIRouter()
UPN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


class DirectoryUserIn(Strict):
    id: str = Field(pattern=f"^{USER_ID.pattern}$")
    displayName: str = Field(min_length=1, max_length=256)
    userPrincipalName: str = Field(pattern=UPN, max_length=256)
    mail: str | None = Field(None, max_length=256)
    accountEnabled: bool = True
    businessPhones: list[str] = Field(default_factory=list, max_length=5)
    mobilePhone: str | None = Field(None, max_length=64)
    employeeId: str | None = Field(None, max_length=16)
    department: str | None = Field(None, max_length=64)
    jobTitle: str | None = Field(None, max_length=128)
    extensionAttributes: dict[str, str] = Field(default_factory=dict)
    groups: list[str] = Field(default_factory=list, description="group ids")
    teams: bool = Field(True, description="also a Teams account (presence) under this id")


class DirectoryUsersIn(Strict):
    users: list[DirectoryUserIn] = Field(max_length=200_000)


class DirectoryPatch(Strict):
    displayName: str | None = Field(None, min_length=1, max_length=256)
    userPrincipalName: str | None = Field(None, pattern=UPN, max_length=256)
    mail: str | None = None
    accountEnabled: bool | None = None
    businessPhones: list[str] | None = None
    mobilePhone: str | None = None
    employeeId: str | None = None
    department: str | None = None
    extensionAttributes: dict[str, str] | None = None
    groups: list[str] | None = None


class GroupIn(Strict):
    id: str = Field(pattern=f"^{USER_ID.pattern}$")
    displayName: str = Field(min_length=1, max_length=256)


class DirectoryFaultsIn(Strict):
    fail_after_pages: int | None = Field(None, ge=0)


def _check_extension_attributes(values: dict[str, str]) -> None:
    for name in values:
        if name not in EXTENSION_ATTRIBUTES:
            raise HTTPException(
                422, f"extensionAttributes: {name!r} is not extensionAttribute1..15"
            )


def _set_groups(state: Emulator, user_id: str, groups: list[str]) -> None:
    directory = state.directory
    for group_id in groups:
        if group_id not in directory.groups:
            raise HTTPException(422, f"groups: no group {group_id!r}; create it first")
    for group in directory.groups.values():
        group.members.discard(user_id)
    for group_id in groups:
        directory.groups[group_id].members.add(user_id)


def _put(state: Emulator, body: DirectoryUserIn) -> bool:
    _check_extension_attributes(body.extensionAttributes)
    fields = body.model_dump(exclude={"groups", "teams", "extensionAttributes"})
    user = DirectoryUser(**fields, extension_attributes=dict(body.extensionAttributes))
    _set_groups(state, body.id, body.groups)
    if body.teams:
        try:
            state.create_user(body.id, body.userPrincipalName, False)
        except ValueError as error:
            raise HTTPException(409, str(error)) from None
    return state.directory.put_user(user)


@router.post("/_emulator/directory/users")
async def put_directory_user(body: DirectoryUserIn, state: State) -> JSONResponse:
    created = _put(state, body)
    return JSONResponse({"id": body.id, "created": created}, 201 if created else 200)


@router.post("/_emulator/directory/users/bulk")
async def put_directory_users(body: DirectoryUsersIn, state: State) -> dict[str, Any]:
    """Many users at once (benchmarks); each as `POST /_emulator/directory/users`."""
    created = sum(_put(state, user) for user in body.users)
    return {"created": created, "replaced": len(body.users) - created}


@router.patch("/_emulator/directory/users/{user_id}")
async def patch_directory_user(user_id: str, body: DirectoryPatch, state: State) -> dict[str, Any]:
    user = state.directory.users.get(user_id)
    if user is None:
        raise HTTPException(404, f"no directory user {user_id!r}")
    changes = body.model_dump(exclude_unset=True, exclude={"groups", "extensionAttributes"})
    for name, value in changes.items():
        setattr(user, name, value)
    if body.extensionAttributes is not None:
        _check_extension_attributes(body.extensionAttributes)
        user.extension_attributes = dict(body.extensionAttributes)
    if body.groups is not None:
        _set_groups(state, user_id, body.groups)
    properties = [n for n in changes if n != "id"]
    if body.extensionAttributes is not None:
        properties.append("onPremisesExtensionAttributes")
    state.directory.touch(user_id, properties)
    return {"id": user_id, "changed": sorted(body.model_fields_set)}


@router.delete("/_emulator/directory/users/{user_id}")
async def delete_directory_user(user_id: str, state: State, permanent: bool = False) -> Any:
    if user_id not in state.directory.users:
        return problem(404, f"no directory user {user_id!r}", "not_found")
    state.directory.remove_user(user_id, permanent)
    return {"id": user_id, "removed": "deleted" if permanent else "changed"}


@router.post("/_emulator/directory/groups")
async def create_group(body: GroupIn, state: State) -> JSONResponse:
    groups = state.directory.groups
    created = body.id not in groups
    if created:
        groups[body.id] = DirectoryGroup(body.id, body.displayName)
    else:
        groups[body.id].displayName = body.displayName
    return JSONResponse({"id": body.id, "created": created}, 201 if created else 200)


@router.post("/_emulator/directory/faults")
async def directory_faults(body: DirectoryFaultsIn, state: State) -> dict[str, Any]:
    state.directory.fail_after_pages = body.fail_after_pages
    return {"fail_after_pages": body.fail_after_pages}


@router.get("/_emulator/directory")
async def directory_summary(state: State) -> dict[str, Any]:
    directory = state.directory
    return {
        "users": len(directory.users),
        "groups": {g.id: sorted(g.members) for g in directory.groups.values()},
        "removed": len(directory.removals),
        "change": directory.change,
        "budget": directory_budget_json(state),
    }


def directory_budget_json(state: Emulator) -> dict[str, Any]:
    return state.directory_budget.to_json(state.now().timestamp())
