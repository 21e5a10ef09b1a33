"""Teams ids, extensions and numbers are each one user's: a batch of changes is checked
as a whole (issue 12).

What counts is who holds each value once the whole batch is applied, not the order of
its changes: a value one change gives up may be taken by any other change of the same
batch (an extension moving from alice to bob, two users swapping numbers). A value is a
problem only when a user outside the batch keeps it, or when two changes take it; the
change refused names the user who keeps it. Used by the hub (`Hub.change_users`, for the
directory sync and the CSV import) and by the CSV import's plan (`core/usercsv.py`).

Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from presencebridge.core.errors import Reason, Rejected
from presencebridge.core.model import User

Key = tuple[str, str]  # (kind, value); the kinds are KINDS
KINDS = ("teams_user_id", "extension", "number")
# Who holds a value before the batch, if anyone.
Holder = Callable[[Key], str | None]


def keys(user: User) -> list[Key]:
    """(kind, value) of each Teams id, extension and number of the user."""
    teams_id = [("teams_user_id", user.teams_user_id)] if user.teams_user_id else []
    extensions = [("extension", v) for v in user.extensions]
    return teams_id + extensions + [("number", v) for v in user.numbers]


@dataclass(frozen=True, slots=True)
class Clash:
    """A value a changed user would hold that `other` keeps."""

    kind: str
    value: str
    other: str

    def text(self) -> str:
        return f"{self.kind} {self.value!r} belongs to user {self.other!r}"


class Taken(Rejected):
    """A change refused because another user keeps a value it would take (409)."""

    def __init__(self, clashes: tuple[Clash, ...]) -> None:
        first = clashes[0] if clashes else Clash("", "", "")
        super().__init__(
            Reason.CONFLICT,
            "; ".join(c.text() for c in clashes),
            f"{first.kind}_taken",
            {"value": first.value, "other": first.other},
        )
        self.clashes = clashes


@dataclass(frozen=True, slots=True)
class Change:
    old: User | None  # None: a new user
    new: User


def refused(holder: Holder, changes: Mapping[str, Change]) -> dict[str, tuple[Clash, ...]]:
    """The users (of `changes`, by id, in batch order) whose change must be refused so
    that every value has one holder after the batch, each with what clashed.

    Every change is first taken as made. A value a user outside the batch holds stays
    theirs; a value several changed users would hold goes to the one that held it
    before, else to the first in the batch. A refused user keeps what they had, which
    may refuse others (who were to take a value that user now keeps): repeated until
    nothing clashes."""
    final: dict[str, User | None] = {user_id: c.new for user_id, c in changes.items()}
    found: dict[str, tuple[Clash, ...]] = {}
    while True:
        clashes = _clashes(holder, changes, final)
        if not clashes:
            return {user_id: found[user_id] for user_id in changes if user_id in found}
        for user_id, items in clashes.items():
            found[user_id] = tuple(items)
            final[user_id] = changes[user_id].old


def _clashes(
    holder: Holder, changes: Mapping[str, Change], final: Mapping[str, User | None]
) -> dict[str, list[Clash]]:
    claims: dict[Key, list[str]] = {}
    for user_id, user in final.items():
        for key in () if user is None else keys(user):
            claims.setdefault(key, []).append(user_id)
    result: dict[str, list[Clash]] = {}
    for key, user_ids in claims.items():
        before = holder(key)
        if before is not None and before not in changes:
            keeper = before  # outside the batch: keeps it
        elif before is not None and before in user_ids:
            keeper = before  # held it and keeps it (or was refused and so keeps it)
        else:
            keeper = user_ids[0]
        for user_id in user_ids:
            if user_id != keeper:
                result.setdefault(user_id, []).append(Clash(key[0], key[1], keeper))
    return result
