"""The signed outgoing webhooks in the console (`/console/webhooks`, issue 17 part 4):
each webhook's state and counts, its dead letters with "Send again" and "Discard" — the
same `Webhooks.send_again` / `discard` as the admin API (api/outgoing.py).
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from presencebridge.adapters.store.webhooks import OutboxEntry
from presencebridge.service.webhooks import WebhookReport, Webhooks
from presencebridge.web.forms import Posted, SignedIn
from presencebridge.web.page import Page, back, path_part

router = APIRouter(include_in_schema=False)


def _webhooks(page: Page) -> Webhooks | None:
    connectors = page.request.app.state.connectors
    return None if connectors is None else connectors.webhooks


def _letter(entry: OutboxEntry) -> dict[str, Any]:
    """A dead letter as the page shows it: who, what status the change carried, why."""
    try:
        presence = json.loads(entry.body).get("presence") or {}
    except (ValueError, AttributeError):
        presence = {}
    return {
        "id": entry.id,
        "user_id": entry.user_id,
        "event": entry.event,
        "status": presence.get("status"),
        "text": presence.get("text"),
        "created_at": entry.created_at,
        "attempts": entry.attempts,
        "last_error": entry.last_error,
    }


def _hook(report: WebhookReport) -> dict[str, Any]:
    return {
        "report": report,
        "anchor": "hook-" + path_part(report.name),
        "letters": [_letter(e) for e in report.dead_letters],
    }


@router.get("/console/webhooks")
async def show_webhooks(page: SignedIn) -> Response:
    hooks = _webhooks(page)
    reports = [] if hooks is None else await hooks.reports()
    return page.render("webhooks.html", hooks=[_hook(r) for r in reports], nav="sync")


@router.post("/console/webhooks/dead")
async def dead_letter(form: Posted) -> Response:
    page = form.page
    hooks = _webhooks(page)
    name, raw_id = form.text("webhook"), form.text("id")
    entry_id = int(raw_id) if raw_id.isdigit() and len(raw_id) < 10 else 0
    again = form.text("action") == "retry"
    if hooks is None:
        done = False
    elif again:
        done = await hooks.send_again(name, entry_id)
    else:
        done = await hooks.discard(name, entry_id)
    if not done:
        return page.problem(404, page._("No such dead letter: %(id)s") % {"id": raw_id})
    if again:
        page.flash(page._("The change goes out again."))
    else:
        page.flash(page._("The dead letter was discarded."))
    return back("/console/webhooks#hook-" + path_part(name))
