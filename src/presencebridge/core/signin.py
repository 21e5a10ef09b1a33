"""Who a signed-in person is and what they may do (issue 14): pure functions of the ID
token's claims and the configured policy.

* Matched to a hub user by Entra object id (`oid` = the user's Teams user id), else by
  UPN / e-mail address (`preferred_username`, `upn`, `email`).
* Administrator when a group (`groups` claim) or an app role (`roles` claim) named in
  the configuration says so; everybody else is a user.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Role(StrEnum):
    ADMIN = "admin"
    USER = "user"


@dataclass(frozen=True, slots=True)
class SignInPolicy:
    admin_groups: frozenset[str] = frozenset()
    admin_roles: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Person:
    """The signed-in person as the provider's ID token describes them."""

    issuer: str
    subject: str
    object_id: str | None  # Entra's `oid`
    tenant: str | None
    names: tuple[str, ...]  # UPN and e-mail addresses, to match a user by
    display_name: str
    groups: frozenset[str]
    roles: frozenset[str]

    @property
    def shown_as(self) -> str:
        return self.names[0] if self.names else self.display_name or self.subject


def _strings(value: Any) -> frozenset[str]:
    if isinstance(value, str):
        return frozenset({value})
    if isinstance(value, list | tuple):
        return frozenset(v for v in value if isinstance(v, str))
    return frozenset()


def person_from_claims(claims: Mapping[str, Any]) -> Person:
    names: list[str] = []
    for key in ("preferred_username", "upn", "email"):
        value = claims.get(key)
        if isinstance(value, str) and "@" in value and value.lower() not in names:
            names.append(value.lower())
    oid = claims.get("oid")
    tid = claims.get("tid")
    name = claims.get("name")
    return Person(
        issuer=str(claims.get("iss", "")),
        subject=str(claims.get("sub", "")),
        object_id=oid if isinstance(oid, str) and oid else None,
        tenant=tid if isinstance(tid, str) and tid else None,
        names=tuple(names),
        display_name=name if isinstance(name, str) else "",
        groups=_strings(claims.get("groups")),
        roles=_strings(claims.get("roles")),
    )


def role_of(person: Person, policy: SignInPolicy) -> Role:
    if person.groups & policy.admin_groups or person.roles & policy.admin_roles:
        return Role.ADMIN
    return Role.USER
