"""CSV import and export of users (issue 12 part 7), for sites without a directory.

`POST /api/v1/admin/users/import?dry_run=` takes the file itself (`text/csv`) and
answers `{"create", "update", "unchanged", "lines": [...]}`; any bad line refuses the
whole file with 422 naming every bad line (`problems`). `GET /api/v1/admin/users/export`
answers every user as CSV. Each row is checked by the API's own `UserIn` schema and the
hub's `parse_numbers` (the default country), then `core.usercsv.plan` checks the file as
a whole against the users there are. `import_csv` is also the console's upload.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from presencebridge import metrics
from presencebridge.api import responses, schemas
from presencebridge.api.auth import Principal, principal, require_admin
from presencebridge.core import addresses, usercsv
from presencebridge.core.errors import Rejected
from presencebridge.core.model import User
from presencebridge.service import usercsv as writes
from presencebridge.service.hub import Hub

router = APIRouter(prefix="/api/v1", responses=responses.API_ERRORS)
Caller = Annotated[Principal, Depends(principal)]
Delimiter = Annotated[str, Query(pattern="^[,;]$", description="`,` or `;` (German Excel)")]


def _problems(error: ValidationError) -> tuple[str, ...]:
    found = []
    for item in error.errors():
        where = str(item["loc"][0]) if item["loc"] else "row"
        message = str(item["msg"])
        if item["type"] == "string_pattern_mismatch":
            message = f"not allowed ({schemas.ID_RULE})" if where != "email" else "not an address"
        value = item.get("input")
        if isinstance(value, str) and repr(value) not in message:
            message += f": {value!r}"
        found.append(f"{where}: {message}")
    return tuple(found)


def wanted(hub: Hub, columns: tuple[str, ...], row: usercsv.Row) -> usercsv.Wanted:
    """A row checked as `POST /users` checks a body."""
    v = row.values
    data = {
        "id": v["id"],
        "display_name": v["display_name"],
        "group": v["group"],
        "teams_user_id": v.get("teams_user_id") or None,
        "email": v.get("email") or None,
        "extensions": usercsv.split_list(v.get("extensions", "")),
        "numbers": usercsv.split_list(v.get("numbers", "")),
    }
    try:
        body = schemas.UserIn.model_validate(data)
        numbers = hub.parse_numbers(body.numbers)
    except ValidationError as error:
        return usercsv.Wanted(row.line, None, columns, _problems(error))
    except Rejected as error:
        return usercsv.Wanted(row.line, None, columns, (error.message,))
    user = User(
        body.id,
        body.display_name,
        body.group,
        body.teams_user_id,
        body.email,
        addresses.unique(body.extensions),
        numbers,
    )
    return usercsv.Wanted(row.line, user, columns)


def _value(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value


def step_json(step: usercsv.Step) -> dict[str, Any]:
    return {
        "line": step.line,
        "user": step.user_id,
        "action": step.action,
        "fields": {k: _value(v) for k, v in step.fields.items()},
        "text": step.text(),
    }


@dataclass
class Outcome:
    """What an import did (or, dry, would do), or why it did nothing."""

    dry_run: bool
    status: int = 200
    detail: str = ""
    problems: list[usercsv.Problem] = field(default_factory=list)
    plan: usercsv.Plan | None = None
    applied: writes.Applied | None = None

    def to_json(self) -> dict[str, Any]:
        plan = self.plan
        data: dict[str, Any] = {"dry_run": self.dry_run}
        if plan is not None:
            data |= {a: plan.count(a) for a in ("create", "update", "unchanged")}
            data["lines"] = [step_json(s) for s in plan.steps]
        if self.problems:
            data["problems"] = [{"line": p.line, "problem": p.message} for p in self.problems]
        if self.applied is not None:
            data["written"] = [step_json(s) for s in self.applied.written]
        if self.status != 200:
            data |= {"detail": self.detail, "code": "invalid" if self.status == 422 else "conflict"}
        return data


def _refused(dry_run: bool, problems: list[usercsv.Problem]) -> Outcome:
    lines = "; ".join(p.text() for p in problems)
    detail = f"{len(problems)} problem(s), nothing was written: {lines}"
    return Outcome(dry_run, 422, detail, problems)


async def import_csv(hub: Hub, data: bytes, dry_run: bool) -> Outcome:
    """Check the whole file, then (unless `dry_run`) write it user by user."""
    try:
        sheet = usercsv.read(usercsv.decode(data))
    except usercsv.UnreadableFile as error:
        return Outcome(dry_run, 422, f"{error}; nothing was written")
    rows = [wanted(hub, sheet.columns, row) for row in sheet.rows] if not sheet.problems else []
    groups = [g.id for g in hub.groups()]
    plan = usercsv.plan(sheet.problems, rows, writes.existing_users(hub), groups)
    if not plan.ok:
        return _refused(dry_run, list(plan.problems))
    if dry_run:
        return Outcome(dry_run, plan=plan)
    applied = await writes.apply(hub, plan.writes())
    outcome = Outcome(dry_run, plan=plan, applied=applied)
    if applied.failed is not None:
        step = applied.failed
        done = ", ".join(f"line {s.line} ({s.user_id})" for s in applied.written) or "nothing"
        outcome.status = 409
        outcome.detail = (
            f"line {step.line} ({step.user_id}) was refused: {applied.problem}; written before "
            f"it: {done}; nothing after it was written"
        )
    return outcome


@router.post("/admin/users/import")
async def import_users(
    who: Caller,
    request: Request,
    dry_run: Annotated[bool, Query(description="only say what would change")] = False,
) -> Response:
    """Create and update users from a CSV file (the request body, `text/csv`): columns
    `id, display_name, group, teams_user_id, email, extensions, numbers`; several
    extensions or numbers separated by `;`; `,` or `;` as the delimiter. All lines are
    checked first: any bad line refuses the file (422, every bad line named). Never
    deletes; users a directory made are refused."""
    require_admin(who)
    outcome = await import_csv(request.app.state.hub, await request.body(), dry_run)
    if outcome.status != 200:
        metrics.REJECTED_REQUESTS.labels(str(outcome.status)).inc()
    return JSONResponse(outcome.to_json(), outcome.status)


@router.get("/admin/users/export", response_class=Response)
async def export_users(who: Caller, request: Request, delimiter: Delimiter = ",") -> Response:
    """Every user as CSV (the import's columns), sorted by id, numbers in E.164."""
    require_admin(who)
    users = writes.existing_users(request.app.state.hub).values()
    return Response(
        usercsv.write(users, delimiter),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="users.csv"'},
    )
