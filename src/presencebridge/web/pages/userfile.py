"""Users from and to a CSV file in the console (issue 12 part 7): the upload on the
"Groups and users" page (with a dry run, the default) and the export. The same
`api.usercsv.import_csv` as `POST /api/v1/admin/users/import`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from presencebridge.api import usercsv
from presencebridge.core import usercsv as sheets
from presencebridge.service.usercsv import existing_users
from presencebridge.web import labels
from presencebridge.web.forms import Posted, SignedIn
from presencebridge.web.pages.board import csv_delimiter, csv_response
from presencebridge.web.pages.groups import groups_page

router = APIRouter(include_in_schema=False)
MAX_FILE_BYTES = 1 << 20  # the request's own limit (PRESENCEBRIDGE_MAX_BODY_BYTES) comes first


def _result(outcome: usercsv.Outcome, gettext: Callable[[str], str]) -> dict[str, Any]:
    """What the page shows: the plan (or what was written), or every problem, in the
    reader's language (the API's problems are English)."""
    plan = outcome.plan
    steps = [] if plan is None or outcome.status != 200 else list(plan.steps)
    problems = [
        {"line": p.line, "text": labels.csv_problem(p.code, p.params, gettext)}
        for p in outcome.problems
    ]
    return {
        "dry_run": outcome.dry_run,
        "ok": outcome.status == 200,
        "status": outcome.status,
        "problems": problems,
        "detail": outcome.detail if not outcome.problems else "",
        "counts": {a: plan.count(a) for a in ("create", "update", "unchanged")} if plan else {},
        "steps": steps,
        "written": None if outcome.applied is None else len(outcome.applied.written),
    }


@router.post("/console/users/import")
async def import_users(form: Posted) -> Response:
    page = form.page
    upload = form.data.get("file")
    dry_run = form.checked("dry_run")
    if not isinstance(upload, UploadFile) or not upload.filename:
        message = page._("Choose a CSV file to import.")
        return await groups_page(page, 422, {"file": message}, {"dry_run": dry_run}, "csv")
    data = await upload.read(MAX_FILE_BYTES + 1)
    outcome = await usercsv.import_csv(page.hub, data, dry_run)
    if outcome.status == 200 and not dry_run:
        page.flash(page._("CSV file imported."))
    result = _result(outcome, page._)
    return await groups_page(page, outcome.status, None, {"dry_run": dry_run}, "csv", result)


@router.get("/console/users.csv")
async def export_users(page: SignedIn) -> Response:
    """Every user with every field, importable as it is (the import takes the BOM and
    reads the delimiter from the header line)."""
    text = sheets.write(existing_users(page.hub).values(), csv_delimiter(page.lang))
    return csv_response(text, "users.csv")
