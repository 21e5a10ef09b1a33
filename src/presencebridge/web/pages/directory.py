"""The directory sync in the console (`/console/directory`, issue 12 part 6): each
configured `[[directory]]` source, where its rules come from (and the way to edit them:
`pages/directory_rules.py`), its last run (counts, per-user lines), and "Preview" (a dry
run) and "Sync now", with "Force" when the last run stopped at the safety limit. The
same `DirectorySync.run` as `POST /api/v1/admin/directory/sync`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from presencebridge.service.directory import DirectorySync, RulesInEffect, StoredRulesUnreadable
from presencebridge.web.forms import Posted, SignedIn
from presencebridge.web.page import Page, back, path_part

router = APIRouter(include_in_schema=False)

COUNTS = ("create", "update", "disable", "delete", "unchanged", "skipped")
SAFETY_STOP = "max_removal_share"  # in the safety stop's message (core/directory.py)


def syncs(page: Page) -> dict[str, DirectorySync]:
    found: dict[str, DirectorySync] = page.request.app.state.directories
    return found


async def _source(sync: DirectorySync) -> dict[str, Any]:
    last = sync.last
    try:
        rules: RulesInEffect | None = await sync.current_rules()
    except StoredRulesUnreadable:
        rules = None  # the rules page says why
    return {
        "name": sync.name,
        "anchor": "dir-" + path_part(sync.name),
        "schedule_minutes": sync.schedule_minutes,
        "last": last,
        "needs_force": last is not None and SAFETY_STOP in (last.stopped or ""),
        "rules": rules,
        "rules_url": f"/console/directory/{path_part(sync.name)}/rules",
    }


@router.get("/console/directory")
async def show_directory(page: SignedIn) -> Response:
    sources = [await _source(s) for s in syncs(page).values()]
    return page.render("directory.html", sources=sources, counts=COUNTS, nav="directory")


@router.post("/console/directory/sync")
async def run_directory(form: Posted) -> Response:
    page = form.page
    sync = syncs(page).get(form.text("source"))
    if sync is None:
        return page.problem(
            404, page._("Unknown directory: %(name)s") % {"name": form.text("source")}
        )
    dry_run = form.text("action") == "preview"
    report = await sync.run(dry_run=dry_run, force=form.checked("force"))
    names = {"name": sync.name}
    if report.error:
        page.flash(
            page._("Directory %(name)s could not be read; nothing was changed.") % names, "error"
        )
    elif report.stopped:
        page.flash(
            page._("Directory %(name)s: the run stopped; nothing was changed.") % names, "error"
        )
    elif dry_run:
        page.flash(page._("Preview of %(name)s ready: nothing was changed yet.") % names)
    else:
        page.flash(page._("Directory %(name)s synced.") % names)
    return back("/console/directory#dir-" + path_part(sync.name))
