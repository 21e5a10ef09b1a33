"""Directory entries as `DirectoryPerson`s: the attribute map applied, no I/O.

Entries come as their DN and raw attribute values (bytes, as on the wire), so a
binary `objectGUID` is never mangled by a text decoding; text values are UTF-8
(LDAPv3, RFC 4511 4.1.2).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ldap3.utils.dn import to_dn

from presencebridge.adapters.ldap.settings import AttributeMap
from presencebridge.core.ports import DirectoryPerson

Raw = Mapping[str, Sequence[bytes]]
UF_ACCOUNTDISABLE = 0x2  # AD userAccountControl: the account is disabled


@dataclass(frozen=True, slots=True)
class Entry:
    """One search result entry: its DN and its attributes by lower-case name."""

    dn: str
    values: Mapping[str, Sequence[bytes]]

    @classmethod
    def of(cls, dn: str, raw: Raw) -> Entry:
        return cls(dn, {name.lower(): list(v) for name, v in raw.items()})

    def texts(self, attribute: str) -> list[str]:
        values = self.values.get(attribute.lower(), ())
        return [v.decode("utf-8", "replace").strip() for v in values]

    def first(self, attributes: Iterable[str]) -> str | None:
        for attribute in attributes:
            for text in self.texts(attribute):
                if text:
                    return text
        return None

    def every(self, attributes: Iterable[str]) -> tuple[str, ...]:
        found = (text for a in attributes for text in self.texts(a) if text)
        return tuple(dict.fromkeys(found))


def normal_dn(dn: str) -> str:
    """A DN in one spelling for comparisons: no spaces around separators, lower case."""
    return ",".join(to_dn(dn, remove_space=True)).lower()


def parent_dn(dn: str) -> str | None:
    """The DN of the entry's container (its OU), None for a top entry."""
    parts = to_dn(dn, remove_space=True)
    return ",".join(parts[1:]) or None


def entry_key(entry: Entry, attribute: str) -> str | None:
    """The stable key: AD's binary objectGUID as its standard string, else the text."""
    values = entry.values.get(attribute.lower(), ())
    if not values:
        return None
    if attribute.lower() == "objectguid":
        raw = bytes(values[0])
        # AD's GUID is stored with its first three fields little-endian (MS-DTYP 2.3.4).
        return str(uuid.UUID(bytes_le=raw)) if len(raw) == 16 else None
    text = values[0].decode("utf-8", "replace").strip()
    return text or None


def is_disabled(entry: Entry, attributes: AttributeMap) -> bool:
    if attributes.disabled is None:
        return False
    texts = entry.texts(attributes.disabled)
    if attributes.disabled.lower() == "useraccountcontrol":
        return any(t.lstrip("-").isdigit() and int(t) & UF_ACCOUNTDISABLE for t in texts)
    if attributes.disabled_values:
        wanted = {v.casefold() for v in attributes.disabled_values}
        return any(t.casefold() in wanted for t in texts)
    return any(texts)


def groups_of(
    entry: Entry, attributes: AttributeMap, memberships: Mapping[str, Sequence[str]]
) -> tuple[str, ...]:
    """The entry's groups: its `memberOf`-like values and the groups that list it."""
    found: dict[str, str] = {}
    for group in (*entry.every(attributes.groups), *memberships.get(normal_dn(entry.dn), ())):
        found.setdefault(normal_dn(group), group)
    return tuple(sorted(found.values()))


def to_person(
    entry: Entry,
    key: str,
    attributes: AttributeMap,
    extra: Sequence[str],
    memberships: Mapping[str, Sequence[str]],
) -> DirectoryPerson:
    upn = entry.first(attributes.upn)
    mail = entry.first(attributes.mail)
    display = entry.first(attributes.display_name) or upn or mail or key
    return DirectoryPerson(
        key=key,
        display_name=display,
        upn=upn,
        mail=mail,
        enabled=not is_disabled(entry, attributes),
        extensions=entry.every(attributes.extensions),
        numbers=entry.every(attributes.numbers),
        groups=groups_of(entry, attributes, memberships),
        ou=parent_dn(entry.dn),
        attributes=tuple((name, value) for name in extra for value in entry.every([name])),
    )


def invert_groups(
    groups: Iterable[Entry], member_attributes: Sequence[str]
) -> dict[str, list[str]]:
    """Member DN (normalised) -> the DNs of the groups listing it."""
    memberships: dict[str, list[str]] = {}
    for group in groups:
        for member in group.every(member_attributes):
            # groupOfUniqueNames may append an optional UID: `dn#'0101'B`.
            dn = member.split("#'", 1)[0] if member.endswith("'B") else member
            memberships.setdefault(normal_dn(dn), []).append(group.dn)
    return memberships
