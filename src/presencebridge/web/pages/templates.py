"""A group's central profile templates (`/console/groups/{id}/templates`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from presencebridge.api import schemas, views
from presencebridge.core.effective import MICSYNC_TEMPLATE
from presencebridge.core.errors import Rejected
from presencebridge.core.model import ProfileTemplate
from presencebridge.core.texts import render
from presencebridge.service.hub import TEAMS_TEMPLATE
from presencebridge.web.forms import Posted, ShowAgain, SignedIn
from presencebridge.web.page import STATUSES, Page, back, rejection_status
from presencebridge.web.pages.group import group_notes, group_url

router = APIRouter(include_in_schema=False)


def templates_url(group_id: str) -> str:
    return group_url(group_id) + "/templates"


def template_presets(page: Page) -> dict[str, dict[str, Any]]:
    return {
        TEAMS_TEMPLATE.name: {
            "name": TEAMS_TEMPLATE.name,
            "status": TEAMS_TEMPLATE.status.value,
            "text": render(TEAMS_TEMPLATE.text, page.lang),
            "color": TEAMS_TEMPLATE.color,
            "active": True,
        },
        MICSYNC_TEMPLATE: {
            "name": MICSYNC_TEMPLATE,
            "status": "busy",
            "text": page._("Microphone in use"),
            "color": "#d13438",
            "active": True,
        },
    }


async def templates_page(
    page: Page,
    group_id: str,
    status_code: int = 200,
    errors: dict[str, str] | None = None,
    values: Mapping[str, Any] | None = None,
) -> Response:
    """The page; `errors` and `values` show the form again after a problem."""
    try:
        group = page.hub.group(group_id)
    except Rejected:
        return page.problem(404, page._("Unknown group: %(id)s") % {"id": group_id})
    templates = [views.template(t, page.lang) for t in group.templates]
    presets = template_presets(page)
    missing = [presets[name] for name in presets if all(t["name"] != name for t in templates)]
    editing = page.request.query_params.get("edit")
    form_values: dict[str, Any] = {"status": "busy", "color": "#0f6cbd", "active": True}
    if values is not None:
        form_values = dict(values)
    elif editing:
        form_values = next((t for t in templates if t["name"] == editing), form_values)
    return page.render(
        "templates.html",
        status_code,
        group=group,
        templates=templates,
        missing=missing,
        statuses=STATUSES,
        values=form_values,
        editing=editing if values is None else None,
        errors=errors or {},
        notes=group_notes(page, group),
        nav="groups",
        tab="templates",
    )


def _show_again(page: Page, group_id: str, values: Mapping[str, Any]) -> ShowAgain:
    async def show(status_code: int, errors: dict[str, str]) -> Response:
        return await templates_page(page, group_id, status_code, errors, values)

    return show


@router.get("/console/groups/{group_id}/templates")
async def show_templates(page: SignedIn, group_id: str) -> Response:
    return await templates_page(page, group_id)


@router.post("/console/groups/{group_id}/templates")
async def put_template(form: Posted, group_id: str) -> Response:
    page = form.page
    values = {**form.profile_fields(), "active": form.checked("active")}
    show_again = _show_again(page, group_id, values)
    body = await form.valid(schemas.TemplateIn, values, show_again)
    hub = page.hub
    try:
        group = hub.group(group_id)
    except Rejected:
        return page.problem(404, page._("Unknown group: %(id)s") % {"id": group_id})
    text = body.text
    existing = next((t for t in group.templates if t.name == body.name), None)
    if existing is not None and render(existing.text, page.lang) == text:
        text = existing.text  # unchanged built-in text stays bilingual
    template = ProfileTemplate(
        body.name, body.status, text, body.color, body.active, body.call_forwarding
    )
    try:
        await hub.put_template(group_id, template)
    except Rejected as error:
        return await show_again(rejection_status(error), {"name": page.rejection(error)})
    if existing is None:
        page.flash(page._("Template %(name)s added.") % {"name": body.name})
    else:
        page.flash(page._("Template %(name)s replaced.") % {"name": body.name})
    return back(templates_url(group_id))


@router.post("/console/groups/{group_id}/templates/active")
async def template_active(form: Posted, group_id: str) -> Response:
    page = form.page
    name = form.text("name")
    hub = page.hub
    try:
        group = hub.group(group_id)
    except Rejected:
        return page.problem(404, page._("Unknown group: %(id)s") % {"id": group_id})
    existing = next((t for t in group.templates if t.name == name), None)
    if existing is None:
        page.flash(page._("No template named %(name)s.") % {"name": name}, "error")
        return back(templates_url(group_id))
    active = form.checked("active")
    await hub.put_template(group_id, replace(existing, active=active))
    if active:
        page.flash(page._("Template %(name)s activated.") % {"name": name})
    else:
        page.flash(page._("Template %(name)s deactivated.") % {"name": name})
    return back(templates_url(group_id))
