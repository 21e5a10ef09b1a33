"""CSV import and export of users (issue 12 part 7), for sites without a directory.

`POST /api/v1/admin/users/import?dry_run=` takes the file itself (`text/csv`) and
answers `{"create", "update", "unchanged", "lines": [...]}`; any bad line refuses the
whole file with 422 naming every bad line (`problems`: line, code, params and the
English text; the console shows the codes in its language). The file is written in one
transaction: a conflict found while writing (409) writes nothing either. `GET
/api/v1/admin/users/export` answers every user as CSV. Each row is checked by the API's
own `UserIn` schema and numbers as `Hub.parse_numbers` reads them (the default
country), then `core.usercsv.plan` checks the file as a whole against the users there
are. `import_csv` is also the console's upload.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from presencebridge import metrics
from presencebridge.api import responses, schemas
from presencebridge.api.auth import Principal, principal
from presencebridge.core import addresses, usercsv
from presencebridge.core.model import User
from presencebridge.service import usercsv as writes
from presencebridge.service.hub import Hub

router = APIRouter(
    prefix="/api/v1", dependencies=[Depends(principal)], responses=responses.API_ERRORS
)
Caller = Annotated[Principal, Depends(principal)]
Delimiter = Annotated[str, Query(pattern="^[,;]$", description="`,` or `;` (German Excel)")]


# Pydantic's error types of `UserIn`'s fields, as problem codes (core/usercsv.TEXTS).
_FIELD_CODES = {
    "string_too_short": "empty",
    "missing": "empty",
    "string_too_long": "too_long",
    "too_long": "too_many_values",
    "refused_character": "bad_character",
    "extension": "not_extension",
}


def _problem(line: int, item: ErrorDetails) -> usercsv.Problem:
    """One field's problem: a code and what was found (the field, the value)."""
    field = str(item["loc"][0]) if item["loc"] else "row"
    value = item.get("input")
    ctx = item.get("ctx") or {}
    params: dict[str, str | int] = {"field": field}
    if isinstance(value, str):
        params["value"] = value
    kind = item["type"]
    if kind == "string_pattern_mismatch":
        return usercsv.Problem(line, "not_email" if field == "email" else "not_id", params)
    code = _FIELD_CODES.get(kind)
    if "max_length" in ctx:
        params["max"] = int(ctx["max_length"])
    if code == "bad_character" and "code" in ctx:
        params |= {"character": f"U+{ctx['code']}", "position": int(ctx["position"])}
    elif code is None or code == "bad_character":
        return usercsv.Problem(line, "invalid", {**params, "reason": str(item["msg"])})
    return usercsv.Problem(line, code, params)


def _numbers(line: int, raw: list[str], country: str) -> tuple[str, ...]:
    """The row's numbers in E.164, as `Hub.parse_numbers` reads them; raises `BadRow`."""
    parsed = []
    for index, value in enumerate(raw):
        try:
            parsed.append(addresses.number(value, country))
        except addresses.AddressError:
            params = {"field": f"numbers[{index}]", "value": value, "country": country}
            raise BadRow(usercsv.Problem(line, "not_number", params)) from None
    return addresses.unique(parsed)


class BadRow(ValueError):
    def __init__(self, problem: usercsv.Problem) -> None:
        super().__init__(problem.text())
        self.problem = problem


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
        numbers = _numbers(row.line, body.numbers, hub.default_country)
    except ValidationError as error:
        problems = tuple(_problem(row.line, item) for item in error.errors())
        return usercsv.Wanted(row.line, None, columns, problems)
    except BadRow as error:
        return usercsv.Wanted(row.line, None, columns, (error.problem,))
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


def problem_json(problem: usercsv.Problem) -> dict[str, Any]:
    """A problem for machines (`code`, `params`) and people (`problem`, English)."""
    return {
        "line": problem.line,
        "code": problem.code,
        "params": dict(problem.params),
        "problem": problem.message,
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
            data["problems"] = [problem_json(p) for p in self.problems]
        if self.applied is not None:
            data["written"] = [step_json(s) for s in self.applied.written]
        if self.status != 200:
            data |= {"detail": self.detail, "code": "invalid" if self.status == 422 else "conflict"}
        return data


def _refused(
    dry_run: bool, status: int, problems: list[usercsv.Problem], plan: usercsv.Plan | None = None
) -> Outcome:
    lines = "; ".join(p.text() for p in problems)
    detail = f"{len(problems)} problem(s), nothing was written: {lines}"
    return Outcome(dry_run, status, detail, problems, plan)


async def import_csv(hub: Hub, data: bytes, dry_run: bool) -> Outcome:
    """Check the whole file, then (unless `dry_run`) write it in one transaction: every
    line or, when any is refused, none."""
    try:
        sheet = usercsv.read(usercsv.decode(data))
    except usercsv.UnreadableFile as error:
        return _refused(dry_run, 422, [error.problem])
    rows = [wanted(hub, sheet.columns, row) for row in sheet.rows] if not sheet.problems else []
    groups = [g.id for g in hub.groups()]
    plan = usercsv.plan(sheet.problems, rows, writes.existing_users(hub), groups)
    if not plan.ok:
        return _refused(dry_run, 422, list(plan.problems))
    elsewhere = writes.elsewhere(hub, list(plan.steps))
    if elsewhere is not None:  # a cluster: refused before anything is written
        return _refused(dry_run, 409, [elsewhere], plan)
    if dry_run:
        return Outcome(dry_run, plan=plan)
    applied = await writes.apply(hub, plan.writes())
    if applied.problems:
        outcome = _refused(dry_run, 409, applied.problems, plan)
        outcome.applied = applied
        return outcome
    return Outcome(dry_run, plan=plan, applied=applied)


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
    outcome = await import_csv(request.app.state.hub, await request.body(), dry_run)
    if outcome.status != 200:
        metrics.REJECTED_REQUESTS.labels(str(outcome.status)).inc()
    return JSONResponse(outcome.to_json(), outcome.status)


@router.get("/admin/users/export", response_class=Response)
async def export_users(who: Caller, request: Request, delimiter: Delimiter = ",") -> Response:
    """Every user as CSV (the import's columns), sorted by id, numbers in E.164."""
    users = writes.existing_users(request.app.state.hub).values()
    return Response(
        usercsv.write(users, delimiter),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="users.csv"'},
    )
