"""Users as a CSV file (issue 12 part 7), pure: reading, writing, and the import's plan.

* **The file**: a header row naming the columns (`COLUMNS`; `id`, `display_name` and
  `group` are required, the others optional), then one user per row. UTF-8 with or
  without a BOM; `,` or `;` as the delimiter, taken from the header (German Excel
  writes `;`). Several extensions or numbers in one field are separated by `;` (the
  CSV quoting keeps them in one field when `;` is also the delimiter).
* **The plan** compares each row, already checked field by field by the caller, with
  the users there are: create, update (only the columns the file has; an empty field
  clears an optional one) or unchanged. Everything that would make a write fail is a
  problem of the line, all of them at once: an id twice in the file, an unknown group,
  a user a directory made, an extension, number or Teams id another user keeps or
  another line takes too. The file is checked as a whole (`core/claims.py`): a value
  one line gives up may be taken by any other line, in any order. Any problem: nothing
  is written.
* **Problems** are a code and parameters (`Problem`), with an English text (`TEXTS`)
  for the API and the CLI; the console shows the same codes in the reader's language
  (`web/labels.py`, `CSV_PROBLEMS`). Every problem the import reports, from reading the
  file to writing it, has its code here.

Nothing here does I/O.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from presencebridge.core import claims
from presencebridge.core.addresses import EXTENSION_RULE
from presencebridge.core.model import ID_RULE, User

COLUMNS = ("id", "display_name", "group", "teams_user_id", "email", "extensions", "numbers")
COLUMNS_TEXT = ", ".join(COLUMNS)
REQUIRED = ("id", "display_name", "group")
LISTS = ("extensions", "numbers")
LIST_SEPARATOR = ";"
MAX_LINES = 10_000


# What each problem says in English, by code (`%(name)s` are its parameters). The
# console has every one of these in its catalogues (web/labels.py, CSV_PROBLEMS).
TEXTS: dict[str, str] = {
    # reading the file
    "not_utf8": "not UTF-8 text; save the file as UTF-8",
    "empty_file": "the file is empty: the first row must name the columns",
    "too_many_lines": "more than %(max)s users in one file; split it",
    "nul_character": "a NUL character; save the file as CSV text",
    "field_too_large": "a field longer than %(max)s characters",
    "not_csv": "not readable as CSV: %(reason)s",
    "unknown_columns": "unknown column(s): %(columns)s; the columns are %(known)s",
    "columns_twice": "column(s) named twice: %(columns)s",
    "columns_missing": "required column(s) missing: %(columns)s",
    "field_count": "%(found)s fields, but the header has %(wanted)s",
    # the fields of a row
    "empty": "%(field)s: must not be empty",
    "too_long": "%(field)s: at most %(max)s characters: '%(value)s'",
    "not_id": f"%(field)s: not allowed ({ID_RULE}): '%(value)s'",
    "not_email": "%(field)s: not an address: '%(value)s'",
    "bad_character": "%(field)s: must not contain a control character "
    "(%(character)s at character %(position)s)",
    "too_many_values": "%(field)s: at most %(max)s values",
    "not_extension": f"%(field)s: '%(value)s' is not a valid extension ({EXTENSION_RULE})",
    "not_number": "%(field)s: '%(value)s' is not a valid phone number "
    "(national numbers are read as %(country)s)",
    "invalid": "%(field)s: %(reason)s",
    # the file as a whole, against the users there are
    "id_twice": "user '%(user)s' is on line %(other_line)s already",
    "directory_user": "user '%(user)s' comes from directory '%(source)s', which owns it: "
    "change it there, or leave it out of the file",
    "unknown_group": "group '%(group)s' does not exist; create it first",
    "teams_id_taken": "Teams id '%(value)s' belongs to user '%(other)s'",
    "extension_taken": "extension '%(value)s' belongs to user '%(other)s'",
    "number_taken": "number '%(value)s' belongs to user '%(other)s'",
    "teams_id_twice": "Teams id '%(value)s' is also on line %(other_line)s (user '%(other)s')",
    "extension_twice": "extension '%(value)s' is also on line %(other_line)s (user '%(other)s')",
    "number_twice": "number '%(value)s' is also on line %(other_line)s (user '%(other)s')",
    # writing it (someone changed the users since the check)
    "created_meanwhile": "user '%(user)s' was created meanwhile",
    "deleted_meanwhile": "user '%(user)s' was deleted meanwhile",
    "database": "the database refused the file: %(reason)s",
    "other_nodes": "%(count)s user(s) of the file are handled by other nodes of the cluster "
    "(%(users)s): an import is written in one transaction by the node that receives it, "
    "so on a cluster it takes only users that node handles",
    "failed": "the import failed: %(reason)s",
}


@dataclass(frozen=True, slots=True)
class Problem:
    """Something that keeps the file from being imported: a code of `TEXTS` and its
    parameters (the values as found, so the console can say it in its language)."""

    line: int  # 1 is the header; 0: the file as a whole
    code: str
    params: Mapping[str, str | int] = field(default_factory=dict)

    @property
    def message(self) -> str:
        return TEXTS[self.code] % self.params

    def text(self) -> str:
        return f"line {self.line}: {self.message}" if self.line else self.message


@dataclass(frozen=True, slots=True)
class Row:
    line: int
    values: Mapping[str, str]  # the header's columns, values without surrounding spaces


@dataclass(frozen=True, slots=True)
class Sheet:
    columns: tuple[str, ...]
    rows: tuple[Row, ...]
    problems: tuple[Problem, ...]


class UnreadableFile(ValueError):
    """The file cannot be read at all (not UTF-8, no header): `problem` says why."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.text())
        self.problem = problem


def decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise UnreadableFile(Problem(line, "not_utf8")) from None


def delimiter_of(header: str) -> str:
    """`;` when the header row separates with `;` rather than `,` (German Excel)."""
    return ";" if header.count(";") > header.count(",") else ","


def split_list(value: str) -> list[str]:
    return [part.strip() for part in value.split(LIST_SEPARATOR) if part.strip()]


def _header(line: int, names: Sequence[str]) -> tuple[tuple[str, ...], list[Problem]]:
    columns = tuple(n.strip().lower() for n in names)
    problems = []
    unknown = [c for c in columns if c not in COLUMNS]
    if unknown:
        found = {"columns": ", ".join(unknown), "known": COLUMNS_TEXT}
        problems.append(Problem(line, "unknown_columns", found))
    twice = sorted({c for c in columns if columns.count(c) > 1})
    if twice:
        problems.append(Problem(line, "columns_twice", {"columns": ", ".join(twice)}))
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        problems.append(Problem(line, "columns_missing", {"columns": ", ".join(missing)}))
    return columns, problems


def read(text: str) -> Sheet:
    """The rows of a CSV file; blank rows are skipped. Raises `UnreadableFile` without a
    header row or with more rows than `MAX_LINES`."""
    text = text.removeprefix("\ufeff")
    first = text.lstrip("\r\n").split("\n", 1)[0]
    if not first.strip():
        raise UnreadableFile(Problem(0, "empty_file"))
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter_of(first))
    rows: list[Row] = []
    problems: list[Problem] = []
    columns: tuple[str, ...] | None = None
    start = 1
    try:
        for record in reader:
            line, start = start, reader.line_num + 1
            if not any(v.strip() for v in record):
                continue
            if columns is None:
                columns, header_problems = _header(line, record)
                problems += header_problems
                continue
            if len(rows) >= MAX_LINES:
                raise UnreadableFile(Problem(0, "too_many_lines", {"max": MAX_LINES}))
            if len(record) != len(columns):
                found = {"found": len(record), "wanted": len(columns)}
                problems.append(Problem(line, "field_count", found))
                continue
            rows.append(Row(line, {c: v.strip() for c, v in zip(columns, record, strict=True)}))
    except csv.Error as error:
        raise UnreadableFile(_csv_problem(reader.line_num, error)) from None
    return Sheet(columns or (), tuple(rows), tuple(problems))


def _csv_problem(line: int, error: csv.Error) -> Problem:
    if "NUL" in str(error):
        return Problem(line, "nul_character")
    if "field limit" in str(error):
        return Problem(line, "field_too_large", {"max": csv.field_size_limit()})
    return Problem(line, "not_csv", {"reason": str(error)})


def write(users: Iterable[User], delimiter: str = ",") -> str:
    """Every user as a row of `COLUMNS`, sorted by id; numbers in E.164."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for user in sorted(users, key=lambda u: u.id):
        writer.writerow(
            [
                user.id,
                user.display_name,
                user.group,
                user.teams_user_id or "",
                user.email or "",
                LIST_SEPARATOR.join(user.extensions),
                LIST_SEPARATOR.join(user.numbers),
            ]
        )
    return out.getvalue()


# -- the plan ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Wanted:
    """A row as the caller checked it: the user it describes (only `columns` count for an
    existing user), or the problems of its fields."""

    line: int
    user: User | None
    columns: tuple[str, ...]
    problems: tuple[Problem, ...] = ()


@dataclass(frozen=True, slots=True)
class Step:
    line: int
    user_id: str
    action: str  # create, update, unchanged
    user: User  # what the user will be
    fields: Mapping[str, object] = field(default_factory=dict)  # an update's changes
    before: User | None = None

    def text(self) -> str:
        if self.action == "create":
            u = self.user
            return f"line {self.line}: create {u.id} ({u.display_name}, group {u.group})"
        if self.action == "unchanged":
            return f"line {self.line}: unchanged {self.user_id}"
        assert self.before is not None
        parts = [
            f"{name}: {_show(getattr(self.before, name))} -> {_show(value)}"
            for name, value in self.fields.items()
        ]
        return f"line {self.line}: update {self.user_id}: " + "; ".join(parts)


def _show(value: object) -> str:
    if isinstance(value, tuple):
        return ", ".join(str(v) for v in value) or "-"
    return "-" if value is None or value == "" else str(value)


@dataclass(frozen=True, slots=True)
class Plan:
    steps: tuple[Step, ...]
    problems: tuple[Problem, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    def count(self, action: str) -> int:
        return sum(1 for s in self.steps if s.action == action)

    def writes(self) -> list[Step]:
        return [s for s in self.steps if s.action != "unchanged"]


CHANGEABLE = ("display_name", "group", "teams_user_id", "email", "extensions", "numbers")


_KIND_CODES = {"teams_user_id": "teams_id", "extension": "extension", "number": "number"}


def taken(line: int, clash: claims.Clash, other_line: int | None = None) -> Problem:
    """The line would take a value `clash.other` keeps (`other_line`: on that line)."""
    kind = _KIND_CODES[clash.kind]
    params: dict[str, str | int] = {"value": clash.value, "other": clash.other}
    if other_line is None:
        return Problem(line, f"{kind}_taken", params)
    return Problem(line, f"{kind}_twice", {**params, "other_line": other_line})


@dataclass
class _Planner:
    existing: Mapping[str, User]
    groups: set[str]
    owners: dict[claims.Key, str] = field(default_factory=dict)  # existing users'
    lines_of: dict[str, int] = field(default_factory=dict)  # each id's first line
    rows: list[tuple[int, User]] = field(default_factory=list)  # as each user will be
    problems: list[Problem] = field(default_factory=list)

    def __post_init__(self) -> None:
        for user in self.existing.values():
            for key in claims.keys(user):
                self.owners[key] = user.id

    def row(self, wanted: Wanted) -> None:
        self.problems += wanted.problems
        user = wanted.user
        if user is None:
            return
        self.problems += self._identity(wanted.line, user)
        if self.lines_of[user.id] == wanted.line:  # a second line of the id: a problem
            self.rows.append((wanted.line, self._merged(user, wanted.columns)))

    def _identity(self, line: int, user: User) -> list[Problem]:
        found = []
        earlier = self.lines_of.setdefault(user.id, line)
        if earlier != line:
            found.append(Problem(line, "id_twice", {"user": user.id, "other_line": earlier}))
        old = self.existing.get(user.id)
        if old is not None and old.directory_key is not None:
            source = old.directory_key.split(":", 1)[0]
            found.append(Problem(line, "directory_user", {"user": user.id, "source": source}))
        if user.group not in self.groups:
            found.append(Problem(line, "unknown_group", {"group": user.group}))
        return found

    def _merged(self, user: User, columns: Sequence[str]) -> User:
        """An existing user keeps what the file has no column for."""
        old = self.existing.get(user.id)
        if old is None:
            return user
        kept = {n: getattr(old, n) for n in CHANGEABLE if n not in columns}
        return replace(user, directory_key=old.directory_key, **kept)

    def steps(self) -> list[Step]:
        """The file's Teams ids, extensions and numbers as a whole (who holds each once
        every line is applied), then a step for each line without a problem."""
        changes = {u.id: claims.Change(self.existing.get(u.id), u) for _, u in self.rows}
        for user_id, clashes in claims.refused(self.owners.get, changes).items():
            line = self.lines_of[user_id]
            self.problems += [self._clash(line, clash) for clash in clashes]
        bad = {p.line for p in self.problems}
        return [self._step(line, user) for line, user in self.rows if line not in bad]

    def _clash(self, line: int, clash: claims.Clash) -> Problem:
        held = self.owners.get((clash.kind, clash.value)) == clash.other
        if clash.other in self.lines_of and not held:  # another line takes it too
            return taken(line, clash, self.lines_of[clash.other])
        return taken(line, clash)

    def _step(self, line: int, user: User) -> Step:
        old = self.existing.get(user.id)
        if old is None:
            return Step(line, user.id, "create", user)
        fields = {n: getattr(user, n) for n in CHANGEABLE if getattr(user, n) != getattr(old, n)}
        action = "update" if fields else "unchanged"
        return Step(line, user.id, action, user, fields, old)


def plan(
    sheet_problems: Sequence[Problem],
    rows: Iterable[Wanted],
    existing: Mapping[str, User],
    groups: Iterable[str],
) -> Plan:
    """What importing the rows does, or every problem of every line.

    The file is checked as a whole: an extension, number or Teams id one line gives up
    (a user's row no longer lists it) may be taken by any other line, before or after
    it, since the import is written in one transaction (`Hub.change_users`)."""
    planner = _Planner(existing, set(groups))
    for wanted in rows:
        planner.row(wanted)
    steps = planner.steps()
    problems = sorted([*sheet_problems, *planner.problems], key=lambda p: p.line)
    return Plan(tuple(steps), tuple(problems))
