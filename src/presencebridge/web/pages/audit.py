"""The audit log in the console (`/console/audit`, issue 18): who changed what, when,
newest first, filtered by who, what and target, 100 at a time; and as a CSV file."""

from __future__ import annotations

import csv
import io
import json
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter
from fastapi.responses import Response

from presencebridge.adapters.store.audit import AuditEntry, AuditQuery
from presencebridge.service.audit import CHANGED
from presencebridge.web.forms import SignedIn
from presencebridge.web.labels import AUDIT_ACTION
from presencebridge.web.page import Page, path_part
from presencebridge.web.pages.board import csv_delimiter, csv_response, safe_cell

router = APIRouter(include_in_schema=False)

PER_PAGE = 100
CSV_ROWS = 10_000  # the newest this many: a file for a spreadsheet, not a backup

_GROUP_ACTIONS = ("group.", "template.")
_USER_ACTIONS = (
    "user.", "profile.", "appointment.", "agent_token.", "personal_token.", "session.",
)  # fmt: skip


def target_url(page: Page, entry: AuditEntry) -> str | None:
    """Where the target is shown in the console, while it still exists."""
    hub = page.hub
    action, target = entry.action, entry.target
    if action.startswith(_GROUP_ACTIONS):
        known = any(g.id == target for g in hub.groups())
        return f"/console/groups/{path_part(target)}" if known else None
    if action.startswith(_USER_ACTIONS):
        return f"/console/users/{path_part(target)}" if hub.has_user(target) else None
    if action.startswith("directory.rules."):
        return f"/console/directory/{path_part(target)}/rules"
    if action.startswith("directory."):
        return "/console/directory"
    if action.startswith("webhook."):
        return "/console/webhooks"
    return None


def _value(page: Page, value: Any) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, list):
        return ", ".join(_value(page, v) for v in value) or "—"
    if isinstance(value, bool):
        return page._("yes") if value else page._("no")
    if isinstance(value, dict):
        return ", ".join(f"{k} {_value(page, v)}" for k, v in value.items()) or "—"
    return str(value)


def details_lines(page: Page, entry: AuditEntry) -> list[str]:
    """The details as lines: "field: old → new", or "field: changed" for a secret."""
    try:
        details = json.loads(entry.details)
    except ValueError:
        return [entry.details]
    if not isinstance(details, dict):
        return [str(details)]
    lines = []
    for field, value in details.items():
        if value == CHANGED:  # a secret: only that it changed
            lines.append(field + ": " + page._("changed"))
        elif isinstance(value, list) and len(value) == 2 and field != "order":
            lines.append(f"{field}: {_value(page, value[0])} → {_value(page, value[1])}")
        else:
            lines.append(f"{field}: {_value(page, value)}")
    return lines


def audit_row(page: Page, entry: AuditEntry) -> dict[str, Any]:
    """An entry as the page shows it: translated, its target linked, details as lines."""
    return {
        "entry": entry,
        "action": page.label("audit_action", entry.action),
        "actor_kind": page.label("audit_actor", entry.actor_kind),
        "url": target_url(page, entry),
        "details": details_lines(page, entry),
    }


def _query(actor: str, action: str, target: str, limit: int, before: str = "") -> AuditQuery:
    older = int(before) if before.isdecimal() and len(before) < 12 else None
    return AuditQuery(actor.strip()[:200], action.strip()[:200], target.strip()[:200], limit, older)


@router.get("/console/audit")
async def show_audit(
    page: SignedIn, actor: str = "", action: str = "", target: str = "", before: str = ""
) -> Response:
    hub = page.hub
    query = _query(actor, action, target, PER_PAGE, before)
    found = await hub.store_io(hub.store.audit_page, query)
    filters = {"actor": query.actor, "action": query.action, "target": query.target}
    given = {k: v for k, v in filters.items() if v}
    kept = urlencode(given)
    older = None
    if found.more and found.entries:
        older = "?" + urlencode({**given, "before": found.entries[-1].id})
    return page.render(
        "audit.html",
        rows=[audit_row(page, e) for e in found.entries],
        total=found.total,
        filters=filters,
        filtered=bool(kept),
        older=older,
        newest=("?" + kept if kept else "/console/audit") if query.before is not None else None,
        csv_url="/console/audit.csv" + ("?" + kept if kept else ""),
        actions=sorted(
            ((code, page.label("audit_action", code)) for code in _action_codes()),
            key=lambda pair: pair[1].casefold(),
        ),
        nav="audit",
        wide=True,
    )


def _action_codes() -> list[str]:
    return list(AUDIT_ACTION)


@router.get("/console/audit.csv")
async def audit_csv(
    page: SignedIn, actor: str = "", action: str = "", target: str = ""
) -> Response:
    """The log as a table, filtered as the page was, newest first, in the reader's
    language (`;` and local times in German)."""
    hub = page.hub
    _ = page._
    found = await hub.store_io(hub.store.audit_page, _query(actor, action, target, CSV_ROWS))
    out = io.StringIO(newline="")
    writer = csv.writer(out, delimiter=csv_delimiter(page.lang), lineterminator="\r\n")
    writer.writerow(
        [_("Time"), _("Who"), _("Signed in with"), _("What"), _("Target"), _("Details")]
    )
    for entry in found.entries:
        writer.writerow(
            safe_cell(value)
            for value in [
                page.fmt.datetime(entry.at, "yyyy-MM-dd HH:mm:ss"),
                entry.actor,
                page.label("audit_actor", entry.actor_kind),
                page.label("audit_action", entry.action),
                entry.target,
                "; ".join(details_lines(page, entry)),
            ]
        )
    return csv_response(out.getvalue(), "audit.csv")
