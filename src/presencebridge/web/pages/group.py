"""One group's settings (`/console/groups/{id}`): every setting of SPEC §5, validated."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import ValidationError

from presencebridge.api import schemas
from presencebridge.core import micsync
from presencebridge.core.effective import MICSYNC_TEMPLATE
from presencebridge.core.errors import Rejected
from presencebridge.core.micsync import DEFAULT_WHITELIST
from presencebridge.core.model import TeamsSyncMode
from presencebridge.core.settings import GroupSettings, process_names
from presencebridge.web.forms import (
    MIC_ENABLE,
    MIC_WHITELIST,
    OFFICE_NETWORKS,
    Form,
    Posted,
    SignedIn,
    field_errors,
)
from presencebridge.web.page import MODES, Page, back, path_part

router = APIRouter(include_in_schema=False)

MEMBERS_PER_PAGE = 50

BOOLEAN_SETTINGS = (
    "user_may_change",
    "remember_credentials",
    "create_teams_profile_template",
    "reassert_dnd",
    "teams_out_of_office",
)


def group_url(group_id: str) -> str:
    return f"/console/groups/{path_part(group_id)}"


def group_notes(page: Page, group: Any) -> list[str]:
    """What keeps a setting of `group` from working yet (also shown on its templates)."""
    notes = []
    settings: GroupSettings = group.settings
    sync_on = getattr(page.request.app.state, "teams_sync", None) is not None
    if settings.teams_sync_mode is not TeamsSyncMode.OFF and not sync_on:
        notes.append(
            page._(
                "Teams sync is off on this server (no app registration configured): "
                "the mode takes effect once it is set up."
            )
        )
    if settings.microphone_sync_enable:
        notes.extend(_micsync_notes(page, group))
    relay = getattr(page.request.app.state, "agents", None)
    if settings.teams_work_location_office_networks and getattr(relay, "client_side", None) is None:
        # Graph takes the work location only with the user's own sign-in: a server that
        # syncs with its application permission (or not at all) cannot set it.
        notes.append(
            page._(
                "Office networks are set, but only desktop agents in client-side Teams "
                "sync set the work location, and this server syncs Teams itself or not at "
                "all: they have no effect."
            )
        )
    return notes


def _micsync_notes(page: Page, group: Any) -> list[str]:
    micsync = next((t for t in group.templates if t.name == MICSYNC_TEMPLATE), None)
    if micsync is None:
        return [
            page._(
                "Microphone Sync is on, but the central template MicSync is missing: "
                "it does nothing until you create and activate it."
            )
        ]
    if not micsync.active:
        return [
            page._(
                "Microphone Sync is on, but the central template MicSync is inactive: "
                "it does nothing until you activate it."
            )
        ]
    return []


async def group_page(
    page: Page,
    group_id: str,
    status_code: int = 200,
    errors: dict[str, str] | None = None,
    values: Mapping[str, Any] | None = None,
    members_page: int = 1,
) -> Response:
    """The page; `errors` and `values` show the form again after a problem. The members
    are listed `MEMBERS_PER_PAGE` at a time, `members_page` (from 1) of them."""
    hub = page.hub
    try:
        group = hub.group(group_id)
    except Rejected:
        return page.problem(404, page._("Unknown group: %(id)s") % {"id": group_id})
    members = sorted(
        (
            hub.user(u).state.user
            for u in hub.user_ids()
            if hub.user(u).state.user.group == group_id
        ),
        key=lambda u: (u.display_name.casefold(), u.id),
    )
    pages = max(1, -(-len(members) // MEMBERS_PER_PAGE))
    current = min(max(1, members_page), pages)
    first = (current - 1) * MEMBERS_PER_PAGE
    return page.render(
        "group.html",
        status_code,
        group=group,
        settings=dict(values) if values is not None else group.settings.public(),
        errors=errors or {},
        modes=MODES,
        members=members[first : first + MEMBERS_PER_PAGE],
        member_count=len(members),
        member_first=first + 1,
        member_page=current,
        member_pages=pages,
        notes=group_notes(page, group),
        default_whitelist=", ".join(DEFAULT_WHITELIST),
        nav="groups",
        tab="settings",
    )


@router.get("/console/groups/{group_id}")
async def show_group(page: SignedIn, group_id: str, members: str = "1") -> Response:
    number = int(members) if members.isdecimal() and len(members) < 10 else 1
    return await group_page(page, group_id, members_page=number)


def _settings_patch(form: Form) -> dict[str, Any]:
    """The form as a settings patch: every setting, under its API name."""
    patch: dict[str, Any] = {name: form.checked(name) for name in BOOLEAN_SETTINGS}
    patch["teams_sync_mode"] = form.text("teams_sync_mode")
    patch[MIC_ENABLE] = 1 if form.checked(MIC_ENABLE, "1") else 0
    patch[MIC_WHITELIST] = form.text(MIC_WHITELIST)
    patch[OFFICE_NETWORKS] = form.text(OFFICE_NETWORKS)
    patch["teams_status_message"] = form.text("teams_status_message") or "off"
    return patch


@router.post("/console/groups/{group_id}/settings")
async def save_group_settings(form: Posted, group_id: str) -> Response:
    page = form.page
    patch = _settings_patch(form)
    hub = page.hub
    try:
        group = hub.group(group_id)
    except Rejected:
        return page.problem(404, page._("Unknown group: %(id)s") % {"id": group_id})
    try:
        merged = schemas.merged_settings(group.settings, patch)
    except ValidationError as error:
        return await group_page(page, group_id, 422, field_errors(page, error), patch)
    await hub.update_group_settings(group_id, merged)
    page.flash(page._("Settings of %(name)s saved.") % {"name": group.name})
    warning = process_list_warning(page, patch[MIC_WHITELIST])
    if warning is not None:
        page.flash(warning, "warn")
    return back(group_url(group_id))


def process_list_warning(page: Page, typed: str) -> str | None:
    """Entries given with a path or `.exe` / `.app`: accepted (the agent compares the name
    only, `micsync.normalise`), but said, so nobody wonders what is compared."""
    shown = [
        (name, micsync.normalise(name))
        for name in process_names(typed)
        if micsync.normalise(name) != name.strip().lower()
    ]
    if not shown:
        return None
    pairs = ", ".join(f"{name} → {base}" for name, base in shown)
    return page._("Only the program's name counts: path and ending are ignored (%(pairs)s).") % {
        "pairs": pairs
    }
