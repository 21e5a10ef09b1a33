"""A user's page (`/console/users/{id}`): My Profiles, appointments, own mode, history.

Its forms become the same hub events as the REST API's (`rules.*`).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from presencebridge.adapters.store import PERSONAL
from presencebridge.adapters.store.audit import AuditQuery
from presencebridge.api import schemas, views
from presencebridge.core import rules
from presencebridge.core.errors import Reason, Rejected
from presencebridge.core.model import (
    AppointmentOrigin,
    Profile,
    ProfileSource,
    Status,
    TeamsSyncMode,
)
from presencebridge.core.texts import render
from presencebridge.service.hub import UserView
from presencebridge.web import sync_status
from presencebridge.web.forms import Form, Posted, ShowAgain, SignedIn
from presencebridge.web.page import (
    MODES,
    STATUSES,
    Page,
    back,
    path_part,
    rejection_status,
    wants_json,
)
from presencebridge.web.pages.audit import audit_row

router = APIRouter(include_in_schema=False)

HISTORY_SHOWN = 30
AUDIT_SHOWN = 5


def user_url(user_id: str) -> str:
    return f"/console/users/{path_part(user_id)}"


async def user_page(
    page: Page,
    user_id: str,
    status_code: int = 200,
    errors: dict[str, str] | None = None,
    values: Mapping[str, Any] | None = None,
    form: str | None = None,
    new_token: Mapping[str, str] | None = None,
) -> Response:
    """The page; `errors`, `values` and `form` show one of its forms again after a problem;
    `new_token` a token just made, shown this once."""
    try:
        view = page.hub.user(user_id)
    except Rejected:
        return page.problem(404, page._("Unknown user: %(id)s") % {"id": user_id})
    defaults = _appointment_defaults(page)
    return page.render(
        "user.html",
        status_code,
        **await _user_context(page, view),
        statuses=STATUSES,
        modes=MODES,
        errors=errors or {},
        values={**defaults, **dict(values or {})} if values is not None else defaults,
        form=form,
        new_token=new_token,
        nav=_nav(page, user_id),
        wide=True,
    )


async def _user_context(page: Page, view: UserView) -> dict[str, Any]:
    hub = page.hub
    state = view.state
    user_id = state.user.id
    group = hub.group(state.user.group)
    profiles = [views.profile(p, page.lang) for p in hub.profiles(user_id)]
    now = hub.clock.now()
    appointments = [
        {**views.appointment(a, page.lang, a.is_active(now)), "start_at": a.start, "end_at": a.end}
        for a in sorted(state.appointments, key=lambda a: (a.start, a.id))
    ]
    return {
        "user": state.user,
        "group": group,
        "presence": views.presence(view.presence, page.lang, hub.teams_last_sync(user_id)),
        "profiles": profiles,
        "own": [p["name"] for p in profiles if p["source"] == ProfileSource.OWN.value],
        "selection": None if state.selection is None else state.selection.profile,
        "appointments": appointments,
        "history": await hub.history(user_id, HISTORY_SHOWN),
        "settings": views.user_settings(state, group),
        "directory": directory_values(view),
        "groups": sorted(hub.groups(), key=lambda g: g.name.lower()),
        "tokens": await hub.agent_tokens(user_id),
        "personal_tokens": await hub.agent_tokens(user_id, PERSONAL),
        "dnd_profile": next((p["name"] for p in profiles if p["status"] == Status.DND.value), None),
        "dnd_on": view.presence.status is Status.DND and state.selection is not None,
        "own_page": user_id == page.own_user,
        "default_country": hub.default_country,
        "sync": sync_status.user_sync(page, user_id),
        "audit": await _last_changes(page, user_id),
    }


async def _last_changes(page: Page, user_id: str) -> list[dict[str, Any]]:
    """The audit log's last rows about this user, for administrators (issue 18)."""
    if not page.is_admin:
        return []
    query = AuditQuery(target=user_id, limit=AUDIT_SHOWN, exact_target=True)
    found = await page.hub.store_io(page.hub.store.audit_page, query)
    return [audit_row(page, entry) for entry in found.entries]


def directory_values(view: UserView) -> dict[str, str]:
    """The directory form's values: the user's data as the form shows it (issue 12)."""
    user = view.state.user
    return {
        "display_name": user.display_name,
        "group": user.group,
        "teams_user_id": user.teams_user_id or "",
        "email": user.email or "",
        "extensions": ", ".join(user.extensions),
        "numbers": ", ".join(user.numbers),
    }


def _appointment_defaults(page: Page) -> dict[str, Any]:
    """The new-appointment form: the coming hour, busy."""
    start = page.hub.clock.now().replace(second=0, microsecond=0)
    return {
        "start": page.fmt.local_input(start),
        "end": page.fmt.local_input(start + timedelta(hours=1)),
        "color": "#0f6cbd",
        "status": "busy",
    }


def _nav(page: Page, user_id: str) -> str:
    """The menu entry a user's page belongs to."""
    return "me" if user_id == page.own_user else "board"


def _show_again(page: Page, user_id: str, values: Mapping[str, Any], form: str) -> ShowAgain:
    async def show(status_code: int, errors: dict[str, str]) -> Response:
        return await user_page(page, user_id, status_code, errors, values, form)

    return show


@router.get("/console/users/{user_id}")
async def show_user(page: SignedIn, user_id: str) -> Response:
    return await user_page(page, user_id)


@router.get("/console/me")
async def my_page(page: SignedIn) -> Response:
    """The signed-in person's own page; an administrator who is no hub user is told so."""
    if page.own_user is None:
        message = page._(
            "You are signed in as an administrator who is no user of this hub: there is no "
            "page of your own. Open a user from the presence board or Groups and users."
        )
        heading = page._("No page of your own")
        return page.render("problem.html", 404, message=message, heading=heading, nav="me")
    return back(user_url(page.own_user))


async def apply_user_event(
    page: Page, user_id: str, event: rules.Event, source: str, done: str, anchor: str
) -> Response:
    """`event` for the user; back to the page (or JSON for `fetch`) with `done` or the problem."""
    try:
        await page.hub.handle(user_id, event, source)
    except Rejected as error:
        if wants_json(page.request):
            return JSONResponse(
                {"detail": page.rejection(error), "code": error.reason.value},
                rejection_status(error),
            )
        page.flash(page.rejection(error), "error")
        return back(user_url(user_id) + anchor)
    page.flash(done)  # shown by the next page (fetch() callers reload)
    if wants_json(page.request):
        return JSONResponse({"ok": True})
    return back(user_url(user_id) + anchor)


# -- My Profiles -------------------------------------------------------------------------------


@router.post("/console/users/{user_id}/profiles")
async def add_profile(form: Posted, user_id: str) -> Response:
    page = form.page
    values = form.profile_fields()
    show_again = _show_again(page, user_id, values, "profile")
    body = await form.valid(schemas.ProfileIn, values, show_again)
    profile = Profile(body.name, body.status, body.text, body.color, body.call_forwarding)
    try:
        await page.hub.handle(user_id, rules.AddProfile(profile), "profile")
    except Rejected as error:
        return await show_again(rejection_status(error), {"name": page.rejection(error)})
    page.flash(page._("Profile %(name)s added.") % {"name": body.name})
    return back(user_url(user_id) + "#profiles")


@router.post("/console/users/{user_id}/profiles/move")
async def move_profile(form: Posted, user_id: str) -> Response:
    page = form.page
    name, direction = form.text("name"), form.text("direction")
    try:
        own = [p.name for p in page.hub.user(user_id).state.profiles]
    except Rejected as error:
        return page.problem(404, page.rejection(error))
    if name not in own or direction not in ("up", "down"):
        page.flash(page._("That profile cannot be moved."), "error")
        return back(user_url(user_id) + "#profiles")
    index = own.index(name)
    other = index - 1 if direction == "up" else index + 1
    if 0 <= other < len(own):
        own[index], own[other] = own[other], own[index]
    done = page._("%(name)s moved.") % {"name": name}
    return await apply_user_event(
        page, user_id, rules.ReorderProfiles(tuple(own)), "profile", done, "#profiles"
    )


@router.post("/console/users/{user_id}/profiles/order")
async def reorder_profiles(form: Posted, user_id: str) -> Response:
    """The new order of the own profiles at once (drag and drop): PUT /profiles/order."""
    page = form.page
    event = rules.ReorderProfiles(form.names("names"))
    return await apply_user_event(
        page, user_id, event, "profile", page._("Order saved."), "#profiles"
    )


@router.post("/console/users/{user_id}/profiles/delete")
async def delete_profile(form: Posted, user_id: str) -> Response:
    page = form.page
    name = form.text("name")
    if not form.confirmed:
        try:
            own = [p.name for p in page.hub.user(user_id).state.profiles]
        except Rejected as error:
            return page.problem(404, page.rejection(error))
        if name not in own:
            message = page._("“%(name)s” is no own profile of this user (any more).")
            page.flash(message % {"name": name}, "error")
            return back(user_url(user_id) + "#profiles")
        return page.confirm(
            page._("Delete profile?"),
            page._("Delete the profile “%(name)s”? This cannot be undone.") % {"name": name},
            f"{user_url(user_id)}/profiles/delete",
            {"name": name},
            user_url(user_id) + "#profiles",
            nav=_nav(page, user_id),
        )
    done = page._("Profile %(name)s deleted.") % {"name": name}
    return await apply_user_event(
        page, user_id, rules.DeleteProfile(name), "profile", done, "#profiles"
    )


@router.post("/console/users/{user_id}/profile")
async def select_profile(form: Posted, user_id: str) -> Response:
    page = form.page
    name = form.optional("name")
    if name is None:
        done = page._("Profile choice cleared.")
    else:
        done = page._("%(name)s selected.") % {"name": name}
    return await apply_user_event(
        page, user_id, rules.SelectProfile(name), "manual", done, "#profiles"
    )


# -- appointments ------------------------------------------------------------------------------


def _local_datetime(value: str, page: Page) -> datetime | str:
    for pattern in ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"):
        try:
            return datetime.strptime(value, pattern).replace(tzinfo=page.fmt.tz)
        except ValueError:
            continue
    return value  # let the schema name the problem


async def _appointment(
    form: Form, values: Mapping[str, Any], show_again: ShowAgain
) -> schemas.AppointmentIn:
    """The form's appointment, its times read in the browser's time zone."""
    data = {
        **values,
        "start": _local_datetime(values["start"] or "", form.page),
        "end": _local_datetime(values["end"] or "", form.page),
    }
    return await form.valid(schemas.AppointmentIn, data, show_again)


@router.post("/console/users/{user_id}/appointments")
async def add_appointment(form: Posted, user_id: str) -> Response:
    page = form.page
    values = {
        "subject": form.text("subject"),
        "start": form.text("start"),
        "end": form.text("end"),
        "profile": form.optional("profile"),
    }
    show_again = _show_again(page, user_id, values, "appointment")
    body = await _appointment(form, values, show_again)
    event = rules.AddAppointment(
        f"console-{time.time_ns():x}", body.subject, body.start, body.end, body.profile
    )
    try:
        await page.hub.handle(user_id, event, "appointment")
    except Rejected as error:
        where = "end" if error.reason is Reason.INVALID else "profile"
        return await show_again(rejection_status(error), {where: page.rejection(error)})
    page.flash(page._("Appointment %(subject)s added.") % {"subject": body.subject})
    return back(user_url(user_id) + "#appointments")


@router.post("/console/users/{user_id}/appointments/{appointment_id}/delete")
async def delete_appointment(form: Posted, user_id: str, appointment_id: str) -> Response:
    page = form.page
    if not form.confirmed:
        try:
            state = page.hub.user(user_id).state
        except Rejected as error:
            return page.problem(404, page.rejection(error))
        found = next((a for a in state.appointments if a.id == appointment_id), None)
        if found is None:
            page.flash(page._("This appointment does not exist (any more)."), "error")
            return back(user_url(user_id) + "#appointments")
        subject = render(found.subject, page.lang)
        when = f"{page.fmt.datetime(found.start)} – {page.fmt.datetime(found.end)}"
        note = None
        if found.origin is not AppointmentOrigin.MANUAL:
            note = page._(
                "%(origin)s made this appointment: it may make it again while the reason lasts."
            ) % {"origin": page.label("origin", found.origin.value)}
        return page.confirm(
            page._("Delete appointment?"),
            page._("Delete the appointment “%(subject)s” (%(when)s)? This cannot be undone.")
            % {"subject": subject, "when": when},
            f"{user_url(user_id)}/appointments/{path_part(appointment_id)}/delete",
            {},
            user_url(user_id) + "#appointments",
            note,
            _nav(page, user_id),
        )
    event = rules.DeleteAppointment(appointment_id)
    done = page._("Appointment deleted.")
    return await apply_user_event(page, user_id, event, "appointment", done, "#appointments")


# -- the user's own settings -------------------------------------------------------------------


@router.post("/console/users/{user_id}/dnd")
async def do_not_disturb(form: Posted, user_id: str) -> Response:
    """DnD on: the user's first profile with the status Do not disturb; off: no choice."""
    page = form.page
    if form.text("on") != "true":
        return await apply_user_event(
            page, user_id, rules.SelectProfile(None), "manual", page._("DnD is off."), "#now"
        )
    try:
        profiles = page.hub.profiles(user_id)
    except Rejected:
        return page.problem(404, page._("Unknown user: %(id)s") % {"id": user_id})
    dnd = next((p.name for p in profiles if p.status is Status.DND), None)
    if dnd is None:
        page.flash(page._("Add a profile with the status Do not disturb first."), "error")
        return back(user_url(user_id) + "#profiles")
    done = page._("DnD is on (%(name)s).") % {"name": dnd}
    return await apply_user_event(page, user_id, rules.SelectProfile(dnd), "manual", done, "#now")


@router.post("/console/users/{user_id}/settings")
async def user_settings(form: Posted, user_id: str) -> Response:
    page = form.page
    if not page.is_admin:
        try:
            group = page.hub.group(page.hub.user(user_id).state.user.group)
        except Rejected:
            return page.problem(404, page._("Unknown user: %(id)s") % {"id": user_id})
        if not group.settings.user_may_change:
            message = page._(
                "Your group does not let users choose their Teams sync mode; ask an administrator."
            )
            return page.render("forbidden.html", 403, message=message, nav=None)
    chosen = form.text("teams_sync_mode")
    if chosen and chosen not in MODES:
        page.flash(page._("Choose one of the offered values."), "error")
        return back(user_url(user_id) + "#mode")
    mode = TeamsSyncMode(chosen) if chosen else None
    return await apply_user_event(
        page, user_id, rules.SetOwnMode(mode), "settings", page._("Settings saved."), "#mode"
    )
