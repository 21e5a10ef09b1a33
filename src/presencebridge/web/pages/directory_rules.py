"""A directory source's rules in the console (`/console/directory/{source}/rules`, issue
12 part 5): which configuration group a person lands in. The rules in effect (the
configuration file's, or those saved here), a form of one fieldset per rule, "Preview"
(a dry run of the source with the rules as entered, nothing saved) and "Save" (they
replace the file's rules from the next run on, on every node), and "Reset to the
configuration file". Checked by the file's own model (`config.DirectoryRulesConfig`);
a problem shows the form again with the input kept and the rule's field marked.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import ValidationError

from presencebridge import config
from presencebridge.config import DirectoryRulesConfig
from presencebridge.core.directory import Rules
from presencebridge.core.errors import Rejected
from presencebridge.service.directory import (
    DirectorySync,
    Report,
    RulesInEffect,
    StoredRulesUnreadable,
)
from presencebridge.web.forms import (
    OTHER_PROBLEM,
    PATTERN_MESSAGES,
    Form,
    Posted,
    Refused,
    SignedIn,
    field_message,
)
from presencebridge.web.labels import N_
from presencebridge.web.page import Page, back, path_part
from presencebridge.web.pages.directory import COUNTS, syncs

router = APIRouter(include_in_schema=False)

CONDITIONS = ("member_of", "ou", "attribute", "equals")
OUT_OF_SCOPE = ":out"  # the outcome "not in scope" (no group id starts with ":")
BLANK_ROWS = 2  # empty rules offered for new ones
MAX_ROWS = 200
RULE_MESSAGES = {
    config.RULE_NEEDS_GROUP: N_("Choose a configuration group, or “not in scope”."),
    config.RULE_OUT_OF_SCOPE_TAKES_NO_GROUP: N_("Choose a configuration group, or “not in scope”."),
    config.RULE_NEEDS_CONDITION: N_("Give a condition: a directory group, an OU or an attribute."),
    config.RULE_EQUALS_NEEDS_ATTRIBUTE: N_("A value to compare needs the attribute it belongs to."),
}
Row = dict[str, Any]


def rules_url(name: str) -> str:
    return f"/console/directory/{path_part(name)}/rules"


def _sync(page: Page, name: str) -> DirectorySync:
    sync = syncs(page).get(name)
    if sync is None:
        message = page._("Unknown directory: %(name)s") % {"name": name}
        raise Refused(page.problem(404, message))
    return sync


async def _in_effect(sync: DirectorySync) -> tuple[RulesInEffect, str | None]:
    try:
        return await sync.current_rules(), None
    except StoredRulesUnreadable as error:
        return sync.rules, str(error)


def _rows_of(rules: Rules) -> tuple[list[Row], str]:
    """The form's rows for these rules (and blank ones for new rules), the default group."""
    shown = DirectoryRulesConfig.of_rules(rules)
    rows = [
        {"outcome": r.group if r.in_scope else OUT_OF_SCOPE}
        | {k: getattr(r, k) or "" for k in CONDITIONS}
        for r in shown.rules
    ]
    return rows, shown.default_group or ""


def _blank() -> Row:
    return {"outcome": "", **dict.fromkeys(CONDITIONS, ""), "remove": False}


def _empty(row: Row) -> bool:
    return not any(row[k] for k in ("outcome", *CONDITIONS))


def _with_blanks(rows: list[Row]) -> list[Row]:
    """The rows with empty ones added at the end (for new rules), up to `BLANK_ROWS`."""
    trailing = 0
    for row in reversed(rows):
        if not _empty(row):
            break
        trailing += 1
    room = max(MAX_ROWS - len(rows), 0)
    return rows + [_blank() for _ in range(min(BLANK_ROWS - trailing, room))]


async def rules_page(
    page: Page,
    sync: DirectorySync,
    status_code: int = 200,
    entered: tuple[list[Row], str] | None = None,
    errors: Mapping[str, str] | None = None,
    preview: Report | None = None,
) -> Response:
    """The page; `entered` (rows, default group) shows the form as submitted, with
    `errors` by field (`rule-<row>-<field>`, `rule-<row>`, `default_group`, `form`)."""
    rules, problem = await _in_effect(sync)
    rows, default_group = entered if entered is not None else _rows_of(rules.rules)
    rows = _with_blanks(rows)
    groups = sorted(page.hub.groups(), key=lambda g: g.name.lower())
    known = {g.id for g in groups}
    named = [r["outcome"] for r in rows if r["outcome"] not in ("", OUT_OF_SCOPE)]
    missing = sorted({g for g in [*named, default_group] if g and g not in known})
    return page.render(
        "directory_rules.html",
        status_code,
        name=sync.name,
        url=rules_url(sync.name),
        rules=rules,
        stored_problem=problem,
        rows=rows,
        default_group=default_group,
        groups=groups,
        missing=missing,
        out_of_scope=OUT_OF_SCOPE,
        errors=dict(errors or {}),
        preview=preview,
        counts=COUNTS,
        nav="directory",
    )


@router.get("/console/directory/{name}/rules")
async def show_rules(name: str, page: SignedIn) -> Response:
    return await rules_page(page, _sync(page, name))


def _entered(form: Form) -> tuple[list[Row], str]:
    """The rows as submitted (all of them, so that errors keep their row numbers)."""
    try:
        count = min(max(int(form.text("rows")), 0), MAX_ROWS)
    except ValueError:
        count = 0
    rows = []
    for index in range(count):
        row: Row = {k: _one_line(form.text(f"rule-{index}-{k}")) for k in ("outcome", *CONDITIONS)}
        row["remove"] = form.checked(f"rule-{index}-remove")
        rows.append(row)
    return rows, form.text("default_group")


def _one_line(value: str) -> str:
    """A value of a text area as one line: a DN wraps on a phone, but a line break
    typed into it is never meant."""
    return "".join(value.splitlines())


def _body(rows: list[Row], default_group: str) -> tuple[dict[str, Any], list[int]]:
    """The rules as the API takes them, and for each rule the row it came from. Rows
    without any value and rows marked for removal are left out."""
    rules: list[dict[str, Any]] = []
    kept: list[int] = []
    for index, row in enumerate(rows):
        if row.get("remove") or _empty(row):
            continue
        rule: dict[str, Any] = {k: row[k] or None for k in CONDITIONS}
        if row["outcome"] == OUT_OF_SCOPE:
            rule["in_scope"] = False
        elif row["outcome"]:
            rule["group"] = row["outcome"]
        rules.append(rule)
        kept.append(index)
    return {"rules": rules, "default_group": default_group or None}, kept


def _where(loc: tuple[int | str, ...], kept: list[int]) -> str:
    """The form field a pydantic error location is about."""
    if not loc or loc[0] != "rules":
        return "default_group" if loc and loc[0] == "default_group" else "form"
    if len(loc) < 2 or not isinstance(loc[1], int) or loc[1] >= len(kept):
        return "form"
    row = f"rule-{kept[loc[1]]}"
    if len(loc) < 3:
        return row
    return f"{row}-{'outcome' if loc[2] in ('group', 'in_scope') else loc[2]}"


def _message(page: Page, item: Any) -> str:
    kind = item["type"]
    if kind == "value_error":
        said = str((item.get("ctx") or {}).get("error", ""))
        if said in RULE_MESSAGES:
            return page._(RULE_MESSAGES[said])
        if "control character" in said:
            return page._("Must not contain control characters.")
        return page._(OTHER_PROBLEM)
    if kind == "string_pattern_mismatch":
        return page._(PATTERN_MESSAGES["group"])
    return field_message(page, "rule", item)


def _problems(
    page: Page, sync: DirectorySync, body: dict[str, Any], kept: list[int]
) -> tuple[DirectoryRulesConfig | None, dict[str, str]]:
    """The rules checked as the file's are, and their groups against the hub's."""
    try:
        checked = DirectoryRulesConfig.model_validate(body)
    except ValidationError as error:
        errors: dict[str, str] = {}
        for item in error.errors():
            errors.setdefault(_where(tuple(item["loc"]), kept), _message(page, item))
        return None, errors
    unknown = {}
    for index, group in sync.unknown_groups(checked.to_rules()):
        where = "default_group" if index is None else f"rule-{kept[index]}-outcome"
        unknown[where] = page._(
            "There is no configuration group %(group)s: create it first, or choose another."
        ) % {"group": group}
    return (None, unknown) if unknown else (checked, {})


@router.post("/console/directory/{name}/rules")
async def save_or_preview(name: str, form: Posted) -> Response:
    page = form.page
    sync = _sync(page, name)
    entered = _entered(form)
    body, kept = _body(*entered)
    checked, errors = _problems(page, sync, body, kept)
    preview = form.text("action") == "preview"
    if checked is None:
        summary = (
            page._("No preview: correct the marked fields.")
            if preview
            else page._("The rules were not saved: correct the marked fields.")
        )
        errors = {"form": summary, **errors}
        return await rules_page(page, sync, 422, entered, errors)
    try:
        if preview:
            report = await sync.preview(checked.to_rules())
            return await rules_page(page, sync, 200, entered, None, report)
        await sync.save_rules(checked, "console")
    except Rejected as error:  # a group deleted meanwhile
        return await rules_page(page, sync, 422, entered, {"form": page.rejection(error)})
    page.flash(page._("Rules of %(name)s saved: the next run uses them.") % {"name": sync.name})
    return back(rules_url(sync.name))


@router.post("/console/directory/{name}/rules/reset")
async def reset_rules(name: str, form: Posted) -> Response:
    page = form.page
    sync = _sync(page, name)
    await sync.reset_rules()
    page.flash(
        page._("Rules of %(name)s reset: the configuration file's apply again.")
        % {"name": sync.name}
    )
    return back(rules_url(sync.name))
