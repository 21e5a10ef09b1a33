"""The emulated Entra ID directory: users' directory attributes, groups, change tracking.

What it follows from Microsoft's documentation (Learn pages, checked for issue 12):

* `GET /users` ["List users", user-list]: default page size 100, `$top` 1..999
  (otherwise 400 "Invalid page size specified … Must be between 1 and 999 inclusive"),
  more pages through `@odata.nextLink` carrying an opaque `$skiptoken`. Without `$select`
  the default properties come back; `accountEnabled` only when selected.
* `GET /users/delta` ["user: delta", delta-query-overview]: the first round pages
  (`@odata.nextLink`) through every user and ends with an `@odata.deltaLink`; a call with
  that link returns only users changed since, a removed user as
  `{"id", "@removed": {"reason": "changed" | "deleted"}}` ("changed": soft-deleted,
  restorable; "deleted": gone for good), and a new deltaLink. An updated user comes as
  its id "with at least the properties that have been updated" [delta-query-overview]:
  here exactly those (of the selected ones), so a client must not take a delta item for
  the whole user; a user created since comes whole. A change of group membership alone
  is not a change of the user (the users' delta lists it only with `memberOf` selected,
  which this emulator does not offer).
* `GET /users/{id | userPrincipalName}` [user-get].
* `GET /groups/{id}/members` [group-list-members]: application permission
  `GroupMember.Read.All`; default page 100, at most 999.
* `POST /$batch` [json-batching]: at most 20 requests (in graph.py).
* Throttling ["Microsoft Graph service-specific throttling limits", identity and
  access]: a budget of resource units per application and tenant in 10 s (3,500 for a
  small tenant); over it, 429 with `Retry-After`. Every directory request costs one unit
  here (Graph charges 1–5 by request).
"""

from __future__ import annotations

import base64
import bisect
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

DEFAULT_PAGE = 100
MAX_PAGE = 999
SELECTABLE = (
    "id",
    "displayName",
    "userPrincipalName",
    "mail",
    "accountEnabled",
    "businessPhones",
    "mobilePhone",
    "employeeId",
    "department",
    "jobTitle",
    "onPremisesExtensionAttributes",
)
DEFAULT_SELECT = ("businessPhones", "displayName", "jobTitle", "mail", "mobilePhone", "id",
                  "userPrincipalName")  # fmt: skip
EXTENSION_ATTRIBUTES = tuple(f"extensionAttribute{i}" for i in range(1, 16))


class DirectoryError(ValueError):
    """A request Graph refuses with 400 (the message is Graph's)."""


@dataclass
class DirectoryUser:
    id: str
    displayName: str
    userPrincipalName: str
    mail: str | None = None
    accountEnabled: bool = True
    businessPhones: list[str] = field(default_factory=list)
    mobilePhone: str | None = None
    employeeId: str | None = None
    department: str | None = None
    jobTitle: str | None = None
    extension_attributes: dict[str, str] = field(default_factory=dict)
    changed: int = 0  # the directory's change number when last changed
    created: int = 0  # ... when it was added
    # Per Graph property: the change number when it last changed (for partial deltas).
    property_changes: dict[str, int] = field(default_factory=dict)

    def value(self, name: str) -> Any:
        if name == "onPremisesExtensionAttributes":
            return {a: self.extension_attributes.get(a) for a in EXTENSION_ATTRIBUTES}
        if name == "businessPhones":
            return list(self.businessPhones)
        return getattr(self, name)

    def project(self, select: tuple[str, ...]) -> dict[str, Any]:
        return {name: self.value(name) for name in select}

    def project_changes(self, select: tuple[str, ...], since: int) -> dict[str, Any]:
        """A delta item: the whole user if created after `since`, else its id and the
        selected properties changed after `since`."""
        if self.created > since:
            return self.project(select)
        changed = [n for n in select if self.property_changes.get(n, 0) > since]
        return {"id": self.id, **{name: self.value(name) for name in changed}}


@dataclass
class DirectoryGroup:
    id: str
    displayName: str
    members: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Removal:
    id: str
    reason: str  # "changed" (soft-deleted) or "deleted"
    changed: int


class Directory:
    def __init__(self) -> None:
        self.users: dict[str, DirectoryUser] = {}
        self.groups: dict[str, DirectoryGroup] = {}
        self.removals: dict[str, Removal] = {}
        self.change = 0
        self.fail_after_pages: int | None = None  # fault: this many pages answer, then 503
        self._sorted: list[str] | None = None  # user ids in order, for paging

    # -- control ------------------------------------------------------------------------

    def _next(self) -> int:
        self.change += 1
        return self.change

    def put_user(self, user: DirectoryUser) -> bool:
        """Add or replace a user; True when it is new."""
        old = self.users.get(user.id)
        created = old is None
        if created:
            self._sorted = None
        user.changed = self._next()
        if old is None:
            user.created = user.changed
        else:
            user.created = old.created
            user.property_changes = dict(old.property_changes)
            for name in SELECTABLE:
                if old.value(name) != user.value(name):
                    user.property_changes[name] = user.changed
        self.users[user.id] = user
        self.removals.pop(user.id, None)
        return created

    def touch(self, user_id: str, properties: Iterable[str]) -> None:
        """The user's `properties` (Graph names) changed; none: nothing to list."""
        names = list(properties)
        if not names:
            return
        user = self.users[user_id]
        user.changed = self._next()
        for name in names:
            user.property_changes[name] = user.changed

    def remove_user(self, user_id: str, permanent: bool) -> None:
        self.users.pop(user_id)
        self._sorted = None
        for group in self.groups.values():
            group.members.discard(user_id)
        reason = "deleted" if permanent else "changed"
        self.removals[user_id] = Removal(user_id, reason, self._next())

    def find(self, key: str) -> DirectoryUser | None:
        user = self.users.get(key)
        if user is not None:
            return user
        lowered = key.lower()
        for candidate in self.users.values():
            if candidate.userPrincipalName.lower() == lowered:
                return candidate
        return None

    # -- reading ------------------------------------------------------------------------

    def select(self, raw: str | None) -> tuple[str, ...]:
        if raw is None or not raw.strip():
            return DEFAULT_SELECT
        names = tuple(n.strip() for n in raw.split(",") if n.strip())
        for name in names:
            if name not in SELECTABLE:
                raise DirectoryError(
                    f"Could not find a property named '{name}' on type 'microsoft.graph.user'."
                )
        return names if "id" in names else ("id", *names)

    @staticmethod
    def top(raw: str | None) -> int:
        if raw is None:
            return DEFAULT_PAGE
        try:
            value = int(raw)
        except ValueError:
            value = 0
        if not 1 <= value <= MAX_PAGE:
            raise DirectoryError(
                f"Invalid page size specified: '{raw}'. Must be between 1 and 999 inclusive."
            )
        return value

    def page(
        self, after: str, size: int, since: int | None, until: int
    ) -> tuple[list[DirectoryUser | Removal], str | None]:
        """Up to `size` entries with ids after `after` (keyset paging by id, so changes
        during a round never make an entry skipped); `since` None: every user."""
        if since is None:
            return self._first_round(after, size, until)
        entries: list[DirectoryUser | Removal] = []
        entries.extend(u for u in self.users.values() if since < u.changed <= until)
        entries.extend(r for r in self.removals.values() if since < r.changed <= until)
        ordered = sorted((e for e in entries if e.id > after), key=lambda e: e.id)
        chunk = ordered[:size]
        more = len(ordered) > size
        return chunk, (chunk[-1].id if more and chunk else None)

    def _first_round(
        self, after: str, size: int, until: int
    ) -> tuple[list[DirectoryUser | Removal], str | None]:
        if self._sorted is None:
            self._sorted = sorted(self.users)
        ids = self._sorted
        index = bisect.bisect_right(ids, after) if after else 0
        chunk: list[DirectoryUser | Removal] = []
        while index < len(ids) and len(chunk) < size:
            user = self.users.get(ids[index])
            if user is not None and user.changed <= until:
                chunk.append(user)
            index += 1
        more = index < len(ids)  # the next page may come back empty: Graph's may too
        return chunk, (chunk[-1].id if more and chunk else None)


def encode_token(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str) -> dict[str, Any]:
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded))
    except ValueError:
        raise DirectoryError("The specified token is invalid or expired.") from None
    if not isinstance(data, dict):
        raise DirectoryError("The specified token is invalid or expired.")
    return data
