"""Groups and users (`/console/groups`): the list of groups, and creating groups and users."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import ValidationError

from presencebridge.api import schemas
from presencebridge.core.errors import Reason, Rejected
from presencebridge.core.model import User
from presencebridge.core.settings import GroupSettings
from presencebridge.web.forms import Posted, ShowAgain, SignedIn, field_errors
from presencebridge.web.page import MODES, Page, back, path_part, rejection_status
from presencebridge.web.pages.users import user_url

router = APIRouter(include_in_schema=False)


async def groups_page(
    page: Page,
    status_code: int = 200,
    errors: dict[str, str] | None = None,
    values: Mapping[str, Any] | None = None,
    form: str | None = None,
    csv: Mapping[str, Any] | None = None,
) -> Response:
    """The page; `errors`, `values` and `form` show one of its forms again after a problem;
    `csv` is the outcome of a CSV import (`pages/userfile.py`)."""
    hub = page.hub
    members: dict[str, int] = {}
    for user_id in hub.user_ids():
        group_id = hub.user(user_id).state.user.group
        members[group_id] = members.get(group_id, 0) + 1
    groups = sorted(hub.groups(), key=lambda g: g.name.lower())
    return page.render(
        "groups.html",
        status_code,
        groups=groups,
        members=members,
        modes=MODES,
        errors=errors or {},
        values=dict(values or {}),
        form=form,
        csv=csv,
        nav="groups",
    )


def _show_again(page: Page, values: Mapping[str, Any], form: str) -> ShowAgain:
    async def show(status_code: int, errors: dict[str, str]) -> Response:
        return await groups_page(page, status_code, errors, values, form)

    return show


@router.get("/console/groups")
async def show_groups(page: SignedIn) -> Response:
    return await groups_page(page)


@router.post("/console/groups")
async def create_group(form: Posted) -> Response:
    page = form.page
    values = {
        "id": form.text("id"),
        "name": form.text("name"),
        "teams_sync_mode": form.text("teams_sync_mode") or "off",
    }
    show_again = _show_again(page, values, "group")
    body = await form.valid(
        schemas.GroupIn, {"id": values["id"], "name": values["name"]}, show_again
    )
    try:
        settings = GroupSettings().merged({"teams_sync_mode": values["teams_sync_mode"]})
    except ValidationError as error:
        return await show_again(422, field_errors(page, error))
    try:
        await page.hub.create_group(body.id, body.name, settings)
    except Rejected as error:
        return await show_again(rejection_status(error), {"id": page.rejection(error)})
    page.flash(page._("Group %(name)s created.") % {"name": body.name})
    return back(f"/console/groups/{path_part(body.id)}")


@router.post("/console/users")
async def create_user(form: Posted) -> Response:
    page = form.page
    values = {
        "id": form.text("id"),
        "display_name": form.text("display_name"),
        "group": form.text("group"),
        "teams_user_id": form.optional("teams_user_id"),
    }
    show_again = _show_again(page, values, "user")
    body = await form.valid(schemas.UserIn, values, _user_field_names(show_again))
    try:
        await page.hub.create_user(User(body.id, body.display_name, body.group, body.teams_user_id))
    except Rejected as error:
        return await show_again(rejection_status(error), _user_rejection(page, error))
    page.flash(page._("User %(name)s created.") % {"name": body.display_name})
    return back(user_url(body.id))


def _user_field_names(show_again: ShowAgain) -> ShowAgain:
    """The user form's id field is called user_id on the page (the group form has an id too)."""

    async def show(status_code: int, errors: dict[str, str]) -> Response:
        renamed = {("user_id" if k == "id" else k): v for k, v in errors.items()}
        return await show_again(status_code, renamed)

    return show


def _user_rejection(page: Page, error: Rejected) -> dict[str, str]:
    """The hub's refusal of a new user, next to the field it is about."""
    where = "user_id"
    if error.code == "teams_user_id_taken":
        where = "teams_user_id"
    elif error.reason is Reason.NOT_FOUND:
        where = "group"
    return {where: page.rejection(error)}
