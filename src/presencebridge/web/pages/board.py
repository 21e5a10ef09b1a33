"""The presence board (`/`), the directory it loads, its health and its CSV export; its
rows come from the stream."""

from __future__ import annotations

import csv
import io
import re
import unicodedata
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from presencebridge.api.schemas import iso
from presencebridge.core.effective import EffectivePresence
from presencebridge.core.texts import render
from presencebridge.service.hub import Hub
from presencebridge.web import labels, security
from presencebridge.web.forms import SignedIn
from presencebridge.web.page import SECURITY_HEADERS, STATUSES, Page

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 100  # rows per page of the board (board.js reads it from the page's data)


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
        "page": _("Page %(page)s of %(pages)s"),
        "mic_title": _("Microphone in use"),
        "forwarding": _("Calls forwarded to %(target)s"),
        "since_now": _("for less than a minute"),
        "since_minutes": _("for %(m)s min"),
        "since_hours": _("for %(h)s h %(m)s min"),
        "since_days": _("for %(d)s d %(h)s h"),
        "since_unknown": _("since before the last restart"),
        "stale_stream": _(
            "The live connection is down: the board shows the state of %(time)s and may be "
            "out of date. Reconnecting…"
        ),
        "stale_teams": _(
            "Microsoft Teams cannot be read at the moment (last successful read %(time)s): "
            "what the board shows of Teams may be out of date."
        ),
    }


def directory(hub: Hub) -> dict[str, Any]:
    users = {}
    for user_id in hub.user_ids():
        user = hub.user(user_id).state.user
        users[user_id] = [user.display_name, user.group]
    groups = {g.id: g.name for g in hub.groups()}
    return {"users": users, "groups": groups}


def board_health(request: Request) -> dict[str, Any]:
    """What the board needs to mark itself stale: whether Teams is read (the poller's
    last successful read), and the hub's clock (the status-since times count in it)."""
    hub: Hub = request.app.state.hub
    sync = getattr(request.app.state, "teams_sync", None)
    since = None if sync is None else sync.poller.stale_since()
    return {
        "teams_stale": since is not None,
        "teams_ok_at": None if since is None else iso(datetime.fromtimestamp(since, UTC)),
        "now": iso(hub.clock.now()),
    }


@router.get("/")
async def board(page: SignedIn) -> Response:
    data = {
        **directory(page.hub),
        "strings": board_strings(page),
        "lang": page.lang,
        "link_all": page.is_admin,
        "me": page.own_user,
        "page_size": PAGE_SIZE,
        "health": board_health(page.request),
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


@router.get("/console/board/health.json")
async def health_json(request: Request) -> Response:
    if await security.console_session(request) is None:
        return JSONResponse({"detail": "not signed in", "code": "http_401"}, 401)
    return JSONResponse(board_health(request), headers={"Cache-Control": "no-store"})


# -- search and the CSV export -----------------------------------------------------------------


def fold(text: str) -> str:
    """Case and accents folded away, as board.js does: "Müller" and "muller" are equal."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def search_terms(query: str) -> list[str]:
    """The words of a search: "Müller, Jürgen" is "muller" and "jurgen", in any order."""
    return [t for t in re.split(r"[\s,;]+", fold(query)) if t]


def matches(terms: list[str], name: str, user_id: str) -> bool:
    text = fold(name + " " + user_id)
    return all(term in text for term in terms)


def _shown(presence: EffectivePresence, status: str) -> bool:
    if status == "phone":
        return presence.telephony.value == "on_the_phone"
    if status == "held":
        return presence.teams.held_by_user
    return not status or presence.status.value == status


def csv_delimiter(lang: str) -> str:
    """German Excel splits a line on `;` (the comma is its decimal mark), English on `,`."""
    return ";" if lang == "de" else ","


def safe_cell(value: str) -> str:
    """A value Excel would run as a formula (`=`, `+`, `-`, `@`, tab, CR first) gets a
    leading `'`: names and texts come from users and directories, not from us."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def csv_response(text: str, filename: str) -> Response:
    """UTF-8 with a byte order mark, so Excel reads umlauts right when it opens the file."""
    headers = {**SECURITY_HEADERS, "Content-Disposition": f'attachment; filename="{filename}"'}
    return Response(
        ("\ufeff" + text).encode(), media_type="text/csv; charset=utf-8", headers=headers
    )


@router.get("/console/board.csv")
async def board_csv(page: SignedIn, q: str = "", status: str = "", group: str = "") -> Response:
    """The board as a table, filtered as the board was (the same `q`, `status`, `group`),
    sorted by name; in the reader's language."""
    hub = page.hub
    _ = page._
    terms = search_terms(q)
    delimiter = csv_delimiter(page.lang)
    out = io.StringIO(newline="")
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(
        [
            _("User ID"), _("Name"), _("Group"), _("Status"), _("Status since"),
            _("Presence text"), _("Telephony"), _("MS Teams"), _("Microphone"),
        ]
    )  # fmt: skip
    group_names = {g.id: g.name for g in hub.groups()}
    rows = []
    for user_id, presence in hub.presences():
        user = hub.user(user_id).state.user
        if group and user.group != group:
            continue
        if not _shown(presence, status) or not matches(terms, user.display_name, user_id):
            continue
        rows.append((user, presence))
    rows.sort(key=lambda row: (fold(row[0].display_name), row[0].id))
    for user, presence in rows:
        since = hub.status_since(user.id)
        teams = presence.teams
        teams_text = ""
        if teams.availability:
            teams_text = page.label("teams_availability", teams.availability)
            if teams.activity:
                activity = page.label("teams_activity", teams.activity)
                if activity != teams_text:
                    teams_text += " · " + activity
        microphone = ""
        if presence.microphone is not None:
            microphone = presence.microphone.service or presence.microphone.process or ""
        writer.writerow(
            safe_cell(value)
            for value in [
                user.id,
                user.display_name,
                group_names.get(user.group, user.group),
                page.label("status", presence.status.value),
                "" if since is None else page.fmt.datetime(since, "yyyy-MM-dd HH:mm:ss"),
                render(presence.text, page.lang),
                page.label("telephony", presence.telephony.value),
                teams_text,
                microphone,
            ]
        )
    return csv_response(out.getvalue(), "board.csv")
