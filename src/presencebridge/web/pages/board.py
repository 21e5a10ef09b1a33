"""The presence board (`/`) and the directory it loads; its rows come from the stream."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from presencebridge.service.hub import Hub
from presencebridge.web import labels, security
from presencebridge.web.forms import SignedIn
from presencebridge.web.page import STATUSES, Page

router = APIRouter(include_in_schema=False)


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
        "out_of_office": _("Out of office"),
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
async def board(page: SignedIn) -> Response:
    data = {
        **directory(page.hub),
        "strings": board_strings(page),
        "lang": page.lang,
        "link_all": page.is_admin,
        "me": page.own_user,
    }
    groups = sorted(page.hub.groups(), key=lambda g: g.name.lower())
    return page.render(
        "board.html", data=data, groups=groups, statuses=STATUSES, nav="board", wide=True
    )


@router.get("/console/directory.json")
async def directory_json(request: Request) -> Response:
    if await security.console_session(request) is None:
        return JSONResponse({"detail": "not signed in", "code": "http_401"}, 401)
    return JSONResponse(directory(request.app.state.hub), headers={"Cache-Control": "no-store"})
