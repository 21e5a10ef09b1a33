"""The user lifecycle in the console (issue 12): a user's directory data (name, group,
Teams id, e-mail, extensions, numbers), deleting a user, their agent tokens; deleting a
group or a template. The same hub calls as the REST API (`PATCH`/`DELETE`).
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from presencebridge.adapters.store import AGENT, PERSONAL
from presencebridge.api import schemas
from presencebridge.core import addresses
from presencebridge.core.errors import Reason, Rejected
from presencebridge.web.forms import Form, Posted, ShowAgain
from presencebridge.web.page import Page, back, rejection_status
from presencebridge.web.pages.group import group_url
from presencebridge.web.pages.templates import templates_url
from presencebridge.web.pages.users import user_page, user_url

router = APIRouter(include_in_schema=False)

DIRECTORY_FIELDS = ("display_name", "group", "teams_user_id", "email", "extensions", "numbers")
CONFLICT_FIELDS = {"teams_user_id": "teams_user_id", "extension": "extensions", "number": "numbers"}


def _split(value: str) -> list[str]:
    """A list typed into one field: separated by commas, semicolons or lines."""
    return [part.strip() for part in re.split(r"[,;\n]+", value) if part.strip()]


def _show_again(page: Page, user_id: str, values: dict[str, Any], form: str) -> ShowAgain:
    async def show(status_code: int, errors: dict[str, str]) -> Response:
        return await user_page(page, user_id, status_code, errors, values, form)

    return show


def _numbers(page: Page, raw: list[str]) -> tuple[tuple[str, ...], str | None]:
    """The numbers in E.164, or the (translated) problem with the first bad one."""
    parsed = []
    for value in raw:
        try:
            parsed.append(addresses.number(value, page.hub.default_country))
        except addresses.AddressError:
            problem = page._("Not a valid phone number: %(value)s (national numbers: %(c)s).")
            return (), problem % {"value": value, "c": page.hub.default_country}
    return addresses.unique(parsed), None


async def _fields(form: Form, user_id: str, show_again: ShowAgain) -> dict[str, Any]:
    """The form's directory fields, checked by the API's schema and the hub's rules."""
    page = form.page
    text = {name: form.text(name) for name in DIRECTORY_FIELDS}
    data = {
        **text,
        "teams_user_id": text["teams_user_id"] or None,
        "email": text["email"] or None,
        "extensions": _split(text["extensions"]),
        "numbers": _split(text["numbers"]),
    }
    body = await form.valid(schemas.UserPatchIn, data, show_again)
    numbers, problem = _numbers(page, body.numbers or [])
    if problem is not None:
        raise _Refusal(422, {"numbers": problem})
    fields = {**body.model_dump(), "extensions": addresses.unique(body.extensions or [])}
    fields["numbers"] = numbers
    old = page.hub.user(user_id).state.user
    conflict = page.hub.directory_conflict(replace(old, **fields))
    if conflict is not None:
        what, value, other = conflict
        message = page._("%(value)s belongs to user %(user)s.") % {"value": value, "user": other}
        raise _Refusal(409, {CONFLICT_FIELDS[what]: message})
    return fields


class _Refusal(Exception):
    def __init__(self, status_code: int, errors: dict[str, str]) -> None:
        super().__init__(status_code)
        self.status_code = status_code
        self.errors = errors


@router.post("/console/users/{user_id}/directory")
async def save_directory(form: Posted, user_id: str) -> Response:
    page = form.page
    if not page.hub.has_user(user_id):
        return page.problem(404, page._("Unknown user: %(id)s") % {"id": user_id})
    values = {name: form.text(name) for name in DIRECTORY_FIELDS}
    show_again = _show_again(page, user_id, values, "directory")
    try:
        fields = await _fields(form, user_id, show_again)
        if fields["group"] not in {g.id for g in page.hub.groups()}:
            raise _Refusal(
                404, {"group": page._("Unknown group: %(id)s") % {"id": fields["group"]}}
            )
        await page.hub.update_user(user_id, fields, "admin")
    except _Refusal as refusal:
        return await show_again(refusal.status_code, refusal.errors)
    except Rejected as error:  # a race the checks above could not see
        return await show_again(rejection_status(error), {"display_name": page.rejection(error)})
    page.flash(page._("User saved."))
    return back(user_url(user_id) + "#directory")


@router.post("/console/users/{user_id}/delete")
async def delete_user(form: Posted, user_id: str) -> Response:
    page = form.page
    if not page.hub.has_user(user_id):
        return page.problem(404, page._("Unknown user: %(id)s") % {"id": user_id})
    if not form.checked("confirm"):
        show_again = _show_again(page, user_id, {}, "delete")
        return await show_again(422, {"confirm": page._("Tick the box to confirm.")})
    try:
        await page.hub.delete_user(user_id)
    except Rejected as error:
        page.flash(page.rejection(error), "error")
        return back(user_url(user_id) + "#delete")
    page.flash(page._("User %(id)s deleted.") % {"id": user_id})
    return back("/")


@router.post("/console/users/{user_id}/tokens/revoke")
async def revoke_token(form: Posted, user_id: str) -> Response:
    return await _revoke(form, user_id, AGENT)


@router.post("/console/users/{user_id}/personal-tokens/revoke")
async def revoke_personal_token(form: Posted, user_id: str) -> Response:
    return await _revoke(form, user_id, PERSONAL)


async def _revoke(form: Form, user_id: str, kind: str) -> Response:
    page = form.page
    anchor = "#tokens" if kind == AGENT else "#personal-tokens"
    try:
        await page.hub.revoke_agent_token(user_id, form.text("token_id"), kind)
    except Rejected as error:
        if error.reason is Reason.NOT_FOUND and not page.hub.has_user(user_id):
            return page.problem(404, page._("Unknown user: %(id)s") % {"id": user_id})
        page.flash(page._("That token does not exist (any more)."), "error")
        return back(user_url(user_id) + anchor)
    page.flash(page._("Agent token revoked.") if kind == AGENT else page._("Token revoked."))
    return back(user_url(user_id) + anchor)


@router.post("/console/users/{user_id}/tokens")
async def issue_agent_token(form: Posted, user_id: str) -> Response:
    """A new agent token, shown on the page this once (never put in the cookie)."""
    return await _issue(form, user_id, AGENT, None)


@router.post("/console/users/{user_id}/personal-tokens")
async def issue_personal_token(form: Posted, user_id: str) -> Response:
    name = form.text("name")
    if not name or len(name) > 64:
        errors = {"name": form.page._("Required: at most 64 characters.")}
        return await user_page(form.page, user_id, 422, errors, {"name": name}, "personal-token")
    return await _issue(form, user_id, PERSONAL, name)


async def _issue(form: Form, user_id: str, kind: str, name: str | None) -> Response:
    page = form.page
    try:
        _, token = await page.hub.issue_token(user_id, kind, name)
    except Rejected:
        return page.problem(404, page._("Unknown user: %(id)s") % {"id": user_id})
    shown = {"kind": kind, "token": token, "name": name or ""}
    return await user_page(page, user_id, 200, new_token=shown)


@router.post("/console/groups/{group_id}/delete")
async def delete_group(form: Posted, group_id: str) -> Response:
    page = form.page
    if not form.checked("confirm"):
        page.flash(page._("Tick the box to confirm."), "error")
        return back(group_url(group_id) + "#delete")
    try:
        await page.hub.delete_group(group_id)
    except Rejected as error:
        if error.reason is Reason.NOT_FOUND:
            return page.problem(404, page._("Unknown group: %(id)s") % {"id": group_id})
        members = sum(
            1 for u in page.hub.user_ids() if page.hub.user(u).state.user.group == group_id
        )
        message = page._("The group still has %(n)s user(s): move or delete them first.")
        page.flash(message % {"n": members}, "error")
        return back(group_url(group_id) + "#delete")
    page.flash(page._("Group %(id)s deleted.") % {"id": group_id})
    return back("/console/groups")


@router.post("/console/groups/{group_id}/templates/delete")
async def delete_template(form: Posted, group_id: str) -> Response:
    page = form.page
    name = form.text("name")
    if not form.confirmed:
        try:
            group = page.hub.group(group_id)
        except Rejected as error:
            return page.problem(404, page.rejection(error))
        if all(t.name != name for t in group.templates):
            page.flash(page._("That template does not exist (any more)."), "error")
            return back(templates_url(group_id))
        message = page._(
            "Delete the central template “%(name)s”? It disappears from the profiles of "
            "every member of %(group)s. This cannot be undone."
        )
        return page.confirm(
            page._("Delete template?"),
            message % {"name": name, "group": group.name},
            templates_url(group_id) + "/delete",
            {"name": name},
            templates_url(group_id),
            nav="groups",
        )
    try:
        await page.hub.delete_template(group_id, name)
    except Rejected:
        if group_id not in {g.id for g in page.hub.groups()}:
            return page.problem(404, page._("Unknown group: %(id)s") % {"id": group_id})
        page.flash(page._("That template does not exist (any more)."), "error")
        return back(templates_url(group_id))
    page.flash(page._("Template %(name)s deleted.") % {"name": name})
    return back(templates_url(group_id))


__all__ = ["router"]
