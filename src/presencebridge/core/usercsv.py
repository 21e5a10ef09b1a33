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
  a user a directory made, an extension, number or Teams id another user has or
  another line takes. Any problem: nothing is written.

Nothing here does I/O.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from presencebridge.core.model import User

COLUMNS = ("id", "display_name", "group", "teams_user_id", "email", "extensions", "numbers")
COLUMNS_TEXT = ", ".join(COLUMNS)
REQUIRED = ("id", "display_name", "group")
LISTS = ("extensions", "numbers")
LIST_SEPARATOR = ";"
MAX_LINES = 10_000


@dataclass(frozen=True, slots=True)
class Problem:
    line: int  # 1 is the header
    message: str

    def text(self) -> str:
        return f"line {self.line}: {self.message}"


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
    """The file cannot be read at all (not UTF-8, no header); the message says why."""


def decode(data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise UnreadableFile(f"line {line}: not UTF-8 text; save the file as UTF-8") from None


def delimiter_of(header: str) -> str:
    """`;` when the header row separates with `;` rather than `,` (German Excel)."""
    return ";" if header.count(";") > header.count(",") else ","


def split_list(value: str) -> list[str]:
    return [part.strip() for part in value.split(LIST_SEPARATOR) if part.strip()]


def _header(names: Sequence[str]) -> tuple[tuple[str, ...], list[Problem]]:
    columns = tuple(n.strip().lower() for n in names)
    problems = []
    unknown = [c for c in columns if c not in COLUMNS]
    if unknown:
        names = ", ".join(map(repr, unknown))
        problems.append(Problem(1, f"unknown column(s) {names}; the columns are {COLUMNS_TEXT}"))
    twice = sorted({c for c in columns if columns.count(c) > 1})
    if twice:
        problems.append(Problem(1, f"column(s) named twice: {', '.join(twice)}"))
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        problems.append(Problem(1, f"required column(s) missing: {', '.join(missing)}"))
    return columns, problems


def read(text: str) -> Sheet:
    """The rows of a CSV file; blank rows are skipped. Raises `UnreadableFile` without a
    header row or with more rows than `MAX_LINES`."""
    text = text.removeprefix("\ufeff")
    first = text.lstrip("\r\n").split("\n", 1)[0]
    if not first.strip():
        raise UnreadableFile("the file is empty: the first row must name the columns")
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
                columns, header_problems = _header(record)
                problems += [Problem(line, p.message) for p in header_problems]
                continue
            if len(rows) >= MAX_LINES:
                raise UnreadableFile(f"more than {MAX_LINES:,} users in one file; split it")
            if len(record) != len(columns):
                problems.append(
                    Problem(line, f"{len(record)} fields, but the header has {len(columns)}")
                )
                continue
            rows.append(Row(line, {c: v.strip() for c, v in zip(columns, record, strict=True)}))
    except csv.Error as error:
        raise UnreadableFile(f"line {reader.line_num}: {error}") from None
    return Sheet(columns or (), tuple(rows), tuple(problems))


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
    problems: tuple[str, ...] = ()


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


def _addresses(user: User) -> list[tuple[str, str]]:
    found = [("Teams id", user.teams_user_id)] if user.teams_user_id else []
    found += [("extension", v) for v in user.extensions]
    return found + [("number", v) for v in user.numbers]


@dataclass
class _Planner:
    existing: Mapping[str, User]
    groups: set[str]
    owners: dict[tuple[str, str], str] = field(default_factory=dict)  # existing users'
    claimed: dict[tuple[str, str], int] = field(default_factory=dict)  # lines of the file
    lines_of: dict[str, int] = field(default_factory=dict)
    steps: list[Step] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    def __post_init__(self) -> None:
        for user in self.existing.values():
            for address in _addresses(user):
                self.owners[address] = user.id

    def row(self, wanted: Wanted) -> None:
        found = list(wanted.problems)
        user = wanted.user
        if user is not None:
            found += self._identity(wanted.line, user)
            user = self._merged(user, wanted.columns)
            found += self._unique(wanted.line, user)
        self.problems += [Problem(wanted.line, p) for p in found]
        if not found and user is not None:
            self.steps.append(self._step(wanted.line, user))

    def _identity(self, line: int, user: User) -> list[str]:
        found = []
        earlier = self.lines_of.setdefault(user.id, line)
        if earlier != line:
            found.append(f"user {user.id!r} is on line {earlier} already")
        old = self.existing.get(user.id)
        if old is not None and old.directory_key is not None:
            source = old.directory_key.split(":", 1)[0]
            found.append(
                f"user {user.id!r} comes from directory {source!r}, which owns it: "
                "change it there, or leave it out of the file"
            )
        if user.group not in self.groups:
            found.append(f"group {user.group!r} does not exist; create it first")
        return found

    def _merged(self, user: User, columns: Sequence[str]) -> User:
        """An existing user keeps what the file has no column for."""
        old = self.existing.get(user.id)
        if old is None:
            return user
        kept = {n: getattr(old, n) for n in CHANGEABLE if n not in columns}
        return replace(user, directory_key=old.directory_key, **kept)

    def _unique(self, line: int, user: User) -> list[str]:
        found = []
        for address in _addresses(user):
            kind, value = address
            owner = self.owners.get(address)
            if owner is not None and owner != user.id:
                found.append(f"{kind} {value!r} belongs to user {owner!r}")
                continue
            other_line = self.claimed.setdefault(address, line)
            if other_line != line:
                found.append(f"{kind} {value!r} is also on line {other_line}")
        return found

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

    An extension, number or Teams id another user has now is a problem even when the
    file takes it away from that user on another line: the writes go one by one, and
    the first would be refused. Import the line that frees it first."""
    planner = _Planner(existing, set(groups))
    for wanted in rows:
        planner.row(wanted)
    problems = sorted([*sheet_problems, *planner.problems], key=lambda p: p.line)
    return Plan(tuple(planner.steps), tuple(problems))
