"""The console's pages and forms: thin, like the REST routes; the hub does the work.

Every page needs a signed-in session; every POST needs the session's CSRF token
(see `security`). Forms post back and redirect (post/redirect/get); a form with a
problem is shown again with the message next to its field.
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, unquote, urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, ValidationError
from starlette.datastructures import FormData

from presencebridge import __version__, metrics
from presencebridge.api import schemas, views
from presencebridge.core import rules
from presencebridge.core.effective import MICSYNC_TEMPLATE
from presencebridge.core.errors import Reason, Rejected
from presencebridge.core.micsync import DEFAULT_WHITELIST
from presencebridge.core.model import (
    Profile,
    ProfileSource,
    ProfileTemplate,
    Status,
    TeamsSyncMode,
    User,
)
from presencebridge.core.settings import GroupSettings
from presencebridge.core.texts import render
from presencebridge.service.hub import TEAMS_TEMPLATE, Hub
from presencebridge.web import health, labels, security
from presencebridge.web.i18n import (
    LANG_COOKIE,
    TZ_COOKIE,
    Formats,
    choose_language,
    environment,
    gettext,
    zone,
)
from presencebridge.web.labels import N_

router = APIRouter(include_in_schema=False)

BOOLEAN_SETTINGS = (
    "user_may_change",
    "remember_credentials",
    "create_teams_profile_template",
    "reassert_dnd",
)
MIC_ENABLE = "MicrophoneUsageSync.Enable"
MIC_WHITELIST = "MicrophoneUsageSync.ProcessWhitelist"
STATUSES = [s.value for s in Status]
MODES = [m.value for m in TeamsSyncMode]
HISTORY_SHOWN = 30
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
        "base-uri 'none'; form-action 'self'"
    ),
}

# Translated messages for the validation errors a form can produce (pydantic's type -> text).
FIELD_MESSAGES = {
    "missing": N_("Required."),
    "string_too_short": N_("Required."),
    "string_too_long": N_("Too long: at most %(max)s characters."),
    "enum": N_("Choose one of the offered values."),
    "literal_error": N_("Choose one of the offered values."),
    "bool_parsing": N_("Choose yes or no."),
    "int_parsing": N_("Choose yes or no."),
    "datetime_type": N_("Enter a date and time."),
    "datetime_parsing": N_("Enter a date and time."),
}
PATTERN_MESSAGES = {
    "id": N_("Letters, digits and . _ @ + - only, starting with a letter or digit."),
    "group": N_("Letters, digits and . _ @ + - only, starting with a letter or digit."),
    "teams_user_id": N_("Letters, digits and . _ @ + - only, starting with a letter or digit."),
    "color": N_("A colour like #1a7f37."),
}


# -- per-request helpers ---------------------------------------------------------------------


class Page:
    """One request's language, formats, CSRF token and rendering."""

    def __init__(self, request: Request) -> None:
        self.request = request
        settings = request.app.state.settings
        self.lang = choose_language(
            request.cookies.get(LANG_COOKIE),
            request.headers.get("accept-language"),
            settings.language,
        )
        self.fmt = Formats(self.lang, zone(unquote(request.cookies.get(TZ_COOKIE) or "")))
        self._ = gettext(self.lang)

    @property
    def hub(self) -> Hub:
        hub: Hub = self.request.app.state.hub
        return hub

    def label(self, kind: str, value: str | None) -> str:
        return labels.label(kind, value, self._)

    def flash(self, message: str, kind: str = "ok") -> None:
        flashes = security.session(self.request).setdefault("flash", [])
        flashes.append([kind, message])

    def render(self, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        request = self.request
        flashes = security.session(request).pop("flash", [])
        here = _here(request)
        html = (
            environment(self.lang)
            .get_template(template)
            .render(
                csrf=security.csrf_token(request),
                signed_in=security.signed_in(request),
                here=security.safe_next(here),
                flashes=flashes,
                fmt=self.fmt,
                tzname=getattr(self.fmt.tz, "key", "UTC"),
                label=self.label,
                render_text=lambda text: render(text, self.lang),
                version=__version__,
                q=quote,
                **context,
            )
        )
        return HTMLResponse(html, status_code, headers=SECURITY_HEADERS)

    def problem(self, status_code: int, message: str) -> HTMLResponse:
        return self.render("problem.html", status_code, message=message, nav=None)


def _here(request: Request) -> str:
    """The page to come back to (language switch): this page, or the form's page after a POST."""
    if request.method == "GET":
        query = request.url.query
        return request.url.path + (f"?{query}" if query else "")
    referer = urlsplit(request.headers.get("referer", ""))
    if referer.netloc and referer.netloc == request.headers.get("host"):
        return referer.path + (f"?{referer.query}" if referer.query else "")
    return "/"


def _to_login(request: Request) -> RedirectResponse:
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    target = "/console/login" + ("" if path == "/" else f"?next={quote(path, safe='')}")
    return RedirectResponse(target, 303, headers=SECURITY_HEADERS)


def _back(target: str) -> RedirectResponse:
    return RedirectResponse(security.safe_next(target), 303, headers=SECURITY_HEADERS)


def _wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "") or bool(
        request.headers.get(security.CSRF_HEADER)
    )


async def _posted(request: Request, need_sign_in: bool = True) -> tuple[Page, FormData] | Response:
    """The form of a state-changing request, or the response refusing it (403 / sign-in)."""
    form = await request.form()
    page = Page(request)
    submitted = request.headers.get(security.CSRF_HEADER) or form.get(security.CSRF_FIELD)
    problem = security.csrf_problem(request, submitted if isinstance(submitted, str) else None)
    if problem is not None:
        metrics.REJECTED_REQUESTS.labels("403").inc()
        detail = f"{problem}: reload the page and try again"
        if _wants_json(request):
            return JSONResponse({"detail": detail, "code": "csrf"}, 403, headers=SECURITY_HEADERS)
        shown = page._("Refused (%(problem)s): reload the page and try again.") % {
            "problem": problem
        }
        return page.render("problem.html", 403, message=shown, nav=None)
    if need_sign_in and not security.signed_in(request):
        if _wants_json(request):
            return JSONResponse({"detail": "not signed in", "code": "http_401"}, 401)
        return _to_login(request)
    return page, form


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _optional(form: FormData, name: str) -> str | None:
    return _text(form, name) or None


def field_errors(page: Page, error: ValidationError) -> dict[str, str]:
    """pydantic's errors as translated messages keyed by the form field's name."""
    result: dict[str, str] = {}
    for item in error.errors():
        where = str(item["loc"][0]) if item["loc"] else "form"
        kind = item["type"]
        message: str
        if kind == "string_pattern_mismatch":
            message = page._(PATTERN_MESSAGES.get(where, N_("Not allowed here.")))
        elif kind == "value_error" and where == MIC_WHITELIST:
            found = re.search(r"'(.*)'", item["msg"])
            message = page._("Not a process name: %(name)s. Separate names with commas.") % {
                "name": found.group(1) if found else "?"
            }
        elif kind in FIELD_MESSAGES:
            message = page._(FIELD_MESSAGES[kind]) % dict(item.get("ctx") or {})
        else:
            message = str(item["msg"])
        result.setdefault(where, message)
    return result


def _validate(
    page: Page, model: type[BaseModel], data: Mapping[str, Any]
) -> tuple[Any, dict[str, str]]:
    try:
        return model.model_validate(dict(data)), {}
    except ValidationError as error:
        return None, field_errors(page, error)


def _rejection_status(error: Rejected) -> int:
    return {
        Reason.NOT_FOUND: 404,
        Reason.CONFLICT: 409,
        Reason.INVALID: 422,
        Reason.FORBIDDEN: 403,
    }[error.reason]


# -- sign-in, sign-out, language -------------------------------------------------------------


@router.get("/console/login")
async def login_page(request: Request, next: str | None = None) -> Response:
    page = Page(request)
    if security.signed_in(request):
        return _back(next or "/")
    return page.render("login.html", next=security.safe_next(next), error=None, nav="login")


@router.post("/console/login")
async def login(request: Request) -> Response:
    posted = await _posted(request, need_sign_in=False)
    if isinstance(posted, Response):
        return posted
    page, form = posted
    token = form.get("token")
    target = security.safe_next(_text(form, "next"))
    admin_token: str = request.app.state.admin_token
    if isinstance(token, str) and token and security.token_matches(token, admin_token):
        security.sign_in(request)
        return _back(target)
    await asyncio.sleep(0.3)  # a little friction for guessing
    metrics.REJECTED_REQUESTS.labels("401").inc()
    message = page._("That is not the admin token. Check it and try again.")
    return page.render("login.html", 401, next=target, error=message, nav="login")


@router.post("/console/logout")
async def logout(request: Request) -> Response:
    posted = await _posted(request, need_sign_in=False)
    if isinstance(posted, Response):
        return posted
    page, _form = posted
    security.sign_out(request)
    page.flash(page._("You are signed out."))
    return _back("/console/login")


@router.post("/console/lang")
async def switch_language(request: Request) -> Response:
    posted = await _posted(request, need_sign_in=False)
    if isinstance(posted, Response):
        return posted
    _page, form = posted
    response = _back(_text(form, "next") or "/")
    language = _text(form, "lang")
    if language in ("en", "de"):
        response.set_cookie(
            LANG_COOKIE, language, max_age=365 * 24 * 3600, httponly=True, samesite="strict"
        )
    return response


# -- presence board --------------------------------------------------------------------------


def board_strings(page: Page) -> dict[str, Any]:
    _ = page._
    return {
        "status": {s: page.label("status", s) for s in STATUSES},
        "telephony": {t: page.label("telephony", t) for t in labels.TELEPHONY},
        "availability": {a: page.label("teams_availability", a) for a in labels.TEAMS_AVAILABILITY},
        "activity": {a: page.label("teams_activity", a) for a in labels.TEAMS_ACTIVITY},
        "teams_suffix": " (MS Teams)",
        "live": _("Live"),
        "connecting": _("Connecting…"),
        "reconnecting": _("Connection lost, reconnecting…"),
        "held": _("Held by user"),
        "held_title": _("Set by hand in Teams: the hub does not override it"),
        "not_synced": _("not synced"),
        "count": _("%(shown)s of %(total)s users shown"),
        "mic_title": _("Microphone in use"),
        "forwarding": _("Calls forwarded to %(target)s"),
    }


def directory(hub: Hub) -> dict[str, Any]:
    users = {}
    for user_id in hub.user_ids():
        user = hub.user(user_id).state.user
        users[user_id] = [user.display_name, user.group]
    groups = {g.id: g.name for g in hub.groups()}
    return {"users": users, "groups": groups}


@router.get("/")
async def board(request: Request) -> Response:
    if not security.signed_in(request):
        return _to_login(request)
    page = Page(request)
    data = {**directory(page.hub), "strings": board_strings(page), "lang": page.lang}
    groups = sorted(page.hub.groups(), key=lambda g: g.name.lower())
    return page.render(
        "board.html", data=data, groups=groups, statuses=STATUSES, nav="board", wide=True
    )


@router.get("/console/directory.json")
async def directory_json(request: Request) -> Response:
    if not security.signed_in(request):
        return JSONResponse({"detail": "not signed in", "code": "http_401"}, 401)
    return JSONResponse(directory(request.app.state.hub), headers={"Cache-Control": "no-store"})


# -- user page ---------------------------------------------------------------------------------


async def user_page(
    request: Request,
    user_id: str,
    status_code: int = 200,
    errors: dict[str, str] | None = None,
    values: Mapping[str, Any] | None = None,
    form: str | None = None,
) -> Response:
    page = Page(request)
    hub = page.hub
    try:
        view = hub.user(user_id)
    except Rejected:
        return page.problem(404, page._("Unknown user: %(id)s") % {"id": user_id})
    state = view.state
    group = hub.group(state.user.group)
    presence = views.presence(view.presence, page.lang, hub.teams_last_sync(user_id))
    profiles = [views.profile(p, page.lang) for p in hub.profiles(user_id)]
    own = [p["name"] for p in profiles if p["source"] == ProfileSource.OWN.value]
    now = hub.clock.now()
    appointments = [
        {**views.appointment(a, page.lang, a.is_active(now)), "start_at": a.start, "end_at": a.end}
        for a in sorted(state.appointments, key=lambda a: (a.start, a.id))
    ]
    history = await hub.history(user_id, HISTORY_SHOWN)
    start = now.replace(second=0, microsecond=0)
    defaults = {
        "start": page.fmt.local_input(start),
        "end": page.fmt.local_input(start + timedelta(hours=1)),
        "color": "#0f6cbd",
        "status": "busy",
    }
    return page.render(
        "user.html",
        status_code,
        user=state.user,
        group=group,
        presence=presence,
        profiles=profiles,
        own=own,
        selection=None if state.selection is None else state.selection.profile,
        appointments=appointments,
        history=history,
        settings=views.user_settings(state, group),
        statuses=STATUSES,
        modes=MODES,
        errors=errors or {},
        values={**defaults, **dict(values or {})} if values is not None else defaults,
        form=form,
        nav="board",
        wide=True,
    )


@router.get("/console/users/{user_id}")
async def show_user(request: Request, user_id: str) -> Response:
    if not security.signed_in(request):
        return _to_login(request)
    return await user_page(request, user_id)


def _user_url(user_id: str) -> str:
    return f"/console/users/{quote(user_id, safe='')}"


async def _user_event(
    request: Request, user_id: str, event: rules.Event, source: str, done: str, anchor: str
) -> Response:
    posted = await _posted(request)
    if isinstance(posted, Response):
        return posted
    page, _form = posted
    return await _apply_user_event(page, user_id, event, source, done, anchor)


async def _apply_user_event(
    page: Page, user_id: str, event: rules.Event, source: str, done: str, anchor: str
) -> Response:
    try:
        await page.hub.handle(user_id, event, source)
    except Rejected as error:
        if _wants_json(page.request):
            return JSONResponse(
                {"detail": error.message, "code": error.reason.value}, _rejection_status(error)
            )
        page.flash(error.message, "error")
        return _back(_user_url(user_id) + anchor)
    page.flash(done)  # shown by the next page (fetch() callers reload)
    if _wants_json(page.request):
        return JSONResponse({"ok": True})
    return _back(_user_url(user_id) + anchor)


@router.post("/console/users/{user_id}/profiles")
async def add_profile(request: Request, user_id: str) -> Response:
    posted = await _posted(request)
    if isinstance(posted, Response):
        return posted
    page, form = posted
    data = {
        "name": _text(form, "name"),
        "status": _text(form, "status"),
        "text": _text(form, "text"),
        "color": _text(form, "color"),
        "call_forwarding": _optional(form, "call_forwarding"),
    }
    body, errors = _validate(page, schemas.ProfileIn, data)
    if errors:
        return await user_page(request, user_id, 422, errors, data, "profile")
    profile = rules.AddProfile(
        Profile(body.name, body.status, body.text, body.color, body.call_forwarding)
    )
    try:
        await page.hub.handle(user_id, profile, "profile")
    except Rejected as error:
        return await user_page(
            request, user_id, _rejection_status(error), {"name": error.message}, data, "profile"
        )
    page.flash(page._("Profile %(name)s added.") % {"name": body.name})
    return _back(_user_url(user_id) + "#profiles")


@router.post("/console/users/{user_id}/profiles/move")
async def move_profile(request: Request, user_id: str) -> Response:
    posted = await _posted(request)
    if isinstance(posted, Response):
        return posted
    page, form = posted
    name, direction = _text(form, "name"), _text(form, "direction")
    try:
        own = [p.name for p in page.hub.user(user_id).state.profiles]
    except Rejected as error:
        return page.problem(404, error.message)
    if name not in own or direction not in ("up", "down"):
        page.flash(page._("That profile cannot be moved."), "error")
        return _back(_user_url(user_id) + "#profiles")
    index = own.index(name)
    other = index - 1 if direction == "up" else index + 1
    if 0 <= other < len(own):
        own[index], own[other] = own[other], own[index]
    done = page._("%(name)s moved.") % {"name": name}
    return await _apply_user_event(
        page, user_id, rules.ReorderProfiles(tuple(own)), "profile", done, "#profiles"
    )


@router.post("/console/users/{user_id}/profiles/order")
async def reorder_profiles(request: Request, user_id: str) -> Response:
    """The new order of the own profiles at once (drag and drop): PUT /profiles/order."""
    posted = await _posted(request)
    if isinstance(posted, Response):
        return posted
    page, form = posted
    names = tuple(str(n) for n in form.getlist("names"))
    return await _apply_user_event(
        page, user_id, rules.ReorderProfiles(names), "profile", page._("Order saved."), "#profiles"
    )


@router.post("/console/users/{user_id}/profiles/delete")
async def delete_profile(request: Request, user_id: str) -> Response:
    posted = await _posted(request)
    if isinstance(posted, Response):
        return posted
    page, form = posted
    name = _text(form, "name")
    done = page._("Profile %(name)s deleted.") % {"name": name}
    return await _apply_user_event(
        page, user_id, rules.DeleteProfile(name), "profile", done, "#profiles"
    )


@router.post("/console/users/{user_id}/profile")
async def select_profile(request: Request, user_id: str) -> Response:
    posted = await _posted(request)
    if isinstance(posted, Response):
        return posted
    page, form = posted
    name = _optional(form, "name")
    if name is None:
        done = page._("Profile choice cleared.")
    else:
        done = page._("%(name)s selected.") % {"name": name}
    return await _apply_user_event(
        page, user_id, rules.SelectProfile(name), "manual", done, "#profiles"
    )


def _local_datetime(value: str, page: Page) -> datetime | str:
    for pattern in ("%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S"):
        try:
            return datetime.strptime(value, pattern).replace(tzinfo=page.fmt.tz)
        except ValueError:
            continue
    return value  # let the schema name the problem


@router.post("/console/users/{user_id}/appointments")
async def add_appointment(request: Request, user_id: str) -> Response:
    posted = await _posted(request)
    if isinstance(posted, Response):
        return posted
    page, form = posted
    values = {
        "subject": _text(form, "subject"),
        "start": _text(form, "start"),
        "end": _text(form, "end"),
        "profile": _optional(form, "profile"),
    }
    data = {
        **values,
        "start": _local_datetime(values["start"] or "", page),
        "end": _local_datetime(values["end"] or "", page),
    }
    body, errors = _validate(page, schemas.AppointmentIn, data)
    if errors:
        return await user_page(request, user_id, 422, errors, values, "appointment")
    event = rules.AddAppointment(
        f"console-{time.time_ns():x}", body.subject, body.start, body.end, body.profile
    )
    try:
        await page.hub.handle(user_id, event, "appointment")
    except Rejected as error:
        where = "end" if error.reason is Reason.INVALID else "profile"
        return await user_page(
            request,
            user_id,
            _rejection_status(error),
            {where: error.message},
            values,
            "appointment",
        )
    page.flash(page._("Appointment %(subject)s added.") % {"subject": body.subject})
    return _back(_user_url(user_id) + "#appointments")


@router.post("/console/users/{user_id}/appointments/{appointment_id}/delete")
async def delete_appointment(request: Request, user_id: str, appointment_id: str) -> Response:
    page = Page(request)
    return await _user_event(
        request,
        user_id,
        rules.DeleteAppointment(appointment_id),
        "appointment",
        page._("Appointment deleted."),
        "#appointments",
    )


@router.post("/console/users/{user_id}/settings")
async def user_settings(request: Request, user_id: str) -> Response:
    posted = await _posted(request)
    if isinstance(posted, Response):
        return posted
    page, form = posted
    chosen = _text(form, "teams_sync_mode")
    if chosen and chosen not in MODES:
        page.flash(page._("Choose one of the offered values."), "error")
        return _back(_user_url(user_id) + "#mode")
    mode = TeamsSyncMode(chosen) if chosen else None
    return await _apply_user_event(
        page, user_id, rules.SetOwnMode(mode), "settings", page._("Settings saved."), "#mode"
    )


# -- groups and users --------------------------------------------------------------------------


async def groups_page(
    request: Request,
    status_code: int = 200,
    errors: dict[str, str] | None = None,
    values: Mapping[str, Any] | None = None,
    form: str | None = None,
) -> Response:
    page = Page(request)
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
        nav="groups",
    )


@router.get("/console/groups")
async def show_groups(request: Request) -> Response:
    if not security.signed_in(request):
        return _to_login(request)
    return await groups_page(request)


@router.post("/console/groups")
async def create_group(request: Request) -> Response:
    posted = await _posted(request)
    if isinstance(posted, Response):
        return posted
    page, form = posted
    values = {
        "id": _text(form, "id"),
        "name": _text(form, "name"),
        "teams_sync_mode": _text(form, "teams_sync_mode") or "off",
    }
    body, errors = _validate(page, schemas.GroupIn, {"id": values["id"], "name": values["name"]})
    settings: GroupSettings | None = None
    if not errors:
        try:
            settings = GroupSettings().merged({"teams_sync_mode": values["teams_sync_mode"]})
        except ValidationError as error:
            errors = field_errors(page, error)
    if errors or settings is None:
        return await groups_page(request, 422, errors, values, "group")
    try:
        await page.hub.create_group(body.id, body.name, settings)
    except Rejected as error:
        message = error.message
        if error.reason is Reason.CONFLICT:
            message = page._("A group with this ID exists already.")
        return await groups_page(
            request, _rejection_status(error), {"id": message}, values, "group"
        )
    page.flash(page._("Group %(name)s created.") % {"name": body.name})
    return _back(f"/console/groups/{quote(body.id, safe='')}")


@router.post("/console/users")
async def create_user(request: Request) -> Response:
    posted = await _posted(request)
    if isinstance(posted, Response):
        return posted
    page, form = posted
    values = {
        "id": _text(form, "id"),
        "display_name": _text(form, "display_name"),
        "group": _text(form, "group"),
        "teams_user_id": _optional(form, "teams_user_id"),
    }
    body, errors = _validate(page, schemas.UserIn, values)
    if errors:
        return await groups_page(request, 422, _prefixed(errors), values, "user")
    try:
        await page.hub.create_user(User(body.id, body.display_name, body.group, body.teams_user_id))
    except Rejected as error:
        where = "user_id"
        if "teams_user_id" in error.message:
            where = "teams_user_id"
        elif error.reason is Reason.NOT_FOUND:
            where = "group"
        message = error.message
        if error.reason is Reason.CONFLICT and where == "user_id":
            message = page._("A user with this ID exists already.")
        return await groups_page(
            request, _rejection_status(error), {where: message}, values, "user"
        )
    page.flash(page._("User %(name)s created.") % {"name": body.display_name})
    return _back(_user_url(body.id))


def _prefixed(errors: dict[str, str]) -> dict[str, str]:
    """The user form's id field is called user_id on the page (the group form has an id too)."""
    return {("user_id" if k == "id" else k): v for k, v in errors.items()}


# -- group settings ----------------------------------------------------------------------------


def _group_notes(page: Page, group: Any) -> list[str]:
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
        micsync = next((t for t in group.templates if t.name == MICSYNC_TEMPLATE), None)
        if micsync is None:
            notes.append(
                page._(
                    "Microphone Sync is on, but the central template MicSync is missing: "
                    "it does nothing until you create and activate it."
                )
            )
        elif not micsync.active:
            notes.append(
                page._(
                    "Microphone Sync is on, but the central template MicSync is inactive: "
                    "it does nothing until you activate it."
                )
            )
    return notes


async def group_page(
    request: Request,
    group_id: str,
    status_code: int = 200,
    errors: dict[str, str] | None = None,
    values: Mapping[str, Any] | None = None,
) -> Response:
    page = Page(request)
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
        key=lambda u: u.display_name.lower(),
    )
    return page.render(
        "group.html",
        status_code,
        group=group,
        settings=dict(values) if values is not None else group.settings.public(),
        errors=errors or {},
        modes=MODES,
        members=members,
        notes=_group_notes(page, group),
        default_whitelist=", ".join(DEFAULT_WHITELIST),
        nav="groups",
        tab="settings",
    )


@router.get("/console/groups/{group_id}")
async def show_group(request: Request, group_id: str) -> Response:
    if not security.signed_in(request):
        return _to_login(request)
    return await group_page(request, group_id)


@router.post("/console/groups/{group_id}/settings")
async def save_group_settings(request: Request, group_id: str) -> Response:
    posted = await _posted(request)
    if isinstance(posted, Response):
        return posted
    page, form = posted
    patch: dict[str, Any] = {name: form.get(name) == "true" for name in BOOLEAN_SETTINGS}
    patch["teams_sync_mode"] = _text(form, "teams_sync_mode")
    patch[MIC_ENABLE] = 1 if form.get(MIC_ENABLE) == "1" else 0
    patch[MIC_WHITELIST] = _text(form, MIC_WHITELIST)
    hub = page.hub
    try:
        group = hub.group(group_id)
    except Rejected:
        return page.problem(404, page._("Unknown group: %(id)s") % {"id": group_id})
    try:
        merged = schemas.merged_settings(group.settings, patch)
    except ValidationError as error:
        return await group_page(request, group_id, 422, field_errors(page, error), patch)
    await hub.update_group_settings(group_id, merged)
    page.flash(page._("Settings of %(name)s saved.") % {"name": group.name})
    return _back(f"/console/groups/{quote(group_id, safe='')}")


# -- profile templates -------------------------------------------------------------------------


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
    request: Request,
    group_id: str,
    status_code: int = 200,
    errors: dict[str, str] | None = None,
    values: Mapping[str, Any] | None = None,
) -> Response:
    page = Page(request)
    try:
        group = page.hub.group(group_id)
    except Rejected:
        return page.problem(404, page._("Unknown group: %(id)s") % {"id": group_id})
    templates = [views.template(t, page.lang) for t in group.templates]
    presets = template_presets(page)
    missing = [presets[name] for name in presets if all(t["name"] != name for t in templates)]
    editing = request.query_params.get("edit")
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
        notes=_group_notes(page, group),
        nav="groups",
        tab="templates",
    )


@router.get("/console/groups/{group_id}/templates")
async def show_templates(request: Request, group_id: str) -> Response:
    if not security.signed_in(request):
        return _to_login(request)
    return await templates_page(request, group_id)


def _templates_url(group_id: str) -> str:
    return f"/console/groups/{quote(group_id, safe='')}/templates"


@router.post("/console/groups/{group_id}/templates")
async def put_template(request: Request, group_id: str) -> Response:
    posted = await _posted(request)
    if isinstance(posted, Response):
        return posted
    page, form = posted
    values = {
        "name": _text(form, "name"),
        "status": _text(form, "status"),
        "text": _text(form, "text"),
        "color": _text(form, "color"),
        "active": form.get("active") == "true",
        "call_forwarding": _optional(form, "call_forwarding"),
    }
    body, errors = _validate(page, schemas.TemplateIn, values)
    if errors:
        return await templates_page(request, group_id, 422, errors, values)
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
    await hub.put_template(group_id, template)
    if existing is None:
        page.flash(page._("Template %(name)s added.") % {"name": body.name})
    else:
        page.flash(page._("Template %(name)s replaced.") % {"name": body.name})
    return _back(_templates_url(group_id))


@router.post("/console/groups/{group_id}/templates/active")
async def template_active(request: Request, group_id: str) -> Response:
    posted = await _posted(request)
    if isinstance(posted, Response):
        return posted
    page, form = posted
    name = _text(form, "name")
    hub = page.hub
    try:
        group = hub.group(group_id)
    except Rejected:
        return page.problem(404, page._("Unknown group: %(id)s") % {"id": group_id})
    existing = next((t for t in group.templates if t.name == name), None)
    if existing is None:
        page.flash(page._("No template named %(name)s.") % {"name": name}, "error")
        return _back(_templates_url(group_id))
    active = form.get("active") == "true"
    await hub.put_template(group_id, replace(existing, active=active))
    if active:
        page.flash(page._("Template %(name)s activated.") % {"name": name})
    else:
        page.flash(page._("Template %(name)s deactivated.") % {"name": name})
    return _back(_templates_url(group_id))


# -- sync health -------------------------------------------------------------------------------


def sync_context(page: Page) -> dict[str, Any]:
    state = page.request.app.state
    sync = getattr(state, "teams_sync", None)
    hub = page.hub
    monitor: health.HealthMonitor = state.console_health
    groups = sorted(hub.groups(), key=lambda g: g.name.lower())
    context: dict[str, Any] = {"enabled": sync is not None, "groups": groups}
    lag = health.histogram(metrics.SYNC_LAG)
    graph = health.histogram(metrics.GRAPH_SECONDS)
    context["histograms"] = [
        {
            "id": "lag",
            "title": page._("Teams sync latency (read started until applied)"),
            "bars": health.bar_chart(lag[0]),
            "count": lag[1],
            "mean": lag[2] / lag[1] if lag[1] else None,
        },
        {
            "id": "graph",
            "title": page._("Graph request latency"),
            "bars": health.bar_chart(graph[0]),
            "count": graph[1],
            "mean": graph[2] / graph[1] if graph[1] else None,
        },
    ]
    context["requests"] = health.graph_requests()
    errors: list[dict[str, Any]] = [
        {"at": datetime.fromtimestamp(e.at).astimezone(), "source": e.source, "message": e.message}
        for e in monitor.errors.records
    ]
    if sync is None:
        context["errors"] = list(reversed(errors))
        return context
    samples = list(monitor.samples)
    users = len(hub.synced_users())
    now = hub.clock.now()
    context.update(
        read_mode=sync.settings.read_mode,
        graph_url=sync.settings.graph_url,
        synced_users=users,
        budget={
            "limit": sync.budget.limit,
            "window": sync.budget.window,
            "read_limit": sync.budget.read_limit,
            "used": sync.budget.used(),
            "spent_total": sync.budget.spent_total,
        },
        spark=health.sparkline(samples),
        poll={
            "rounds": sync.poller.rounds,
            "last_round_seconds": sync.poller.last_round_seconds,
            "interval_seconds": sync.poller.interval(users),
        },
    )
    subscriptions = []
    accounts: list[dict[str, Any]] = []
    if sync.notify is not None:
        manager = sync.notify.manager
        for item in manager.describe():
            expires = datetime.fromisoformat(item["expires"])
            left = (expires - now).total_seconds()
            subscriptions.append({**item, "expires_at": expires, "left": left})
        for line in manager.errors:
            stamp, _sep, message = line.partition(" ")
            try:
                at = datetime.fromisoformat(stamp)
            except ValueError:
                at, message = None, line
            errors.append({"at": at, "source": "subscriptions", "message": message})
    if sync.accounts is not None:
        accounts = sync.accounts.describe()
    context["subscriptions"] = subscriptions
    context["accounts"] = accounts
    context["errors"] = sorted(
        errors, key=lambda e: e["at"].timestamp() if e["at"] else 0.0, reverse=True
    )[:20]
    return context


@router.get("/console/sync")
async def sync_page(request: Request, partial: bool = False) -> Response:
    if not security.signed_in(request):
        if partial:
            return JSONResponse({"detail": "not signed in", "code": "http_401"}, 401)
        return _to_login(request)
    page = Page(request)
    context = sync_context(page)
    template = "_sync_live.html" if partial else "sync.html"
    return page.render(template, nav="sync", math=math, **context)
