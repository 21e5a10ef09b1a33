"""What an LDAP / Active Directory source is told: `LdapSettings`, and its attribute map.

A plain frozen pydantic model, built from one `[[directory]]` table of the config file
(`LdapSettings.from_mapping`, whose errors name the field and never echo a value, so a
mistyped password is not printed back) or directly in code. `dialect` picks the
default attribute map and filter (`active_directory` or `openldap`); `attribute_map`
overrides single entries of it. The bind password is a `SecretStr`: it shows as
`**********` in every repr and is read only at the moment of the bind.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    FilePath,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from presencebridge.adapters.settings_errors import describe

Dialect = Literal["active_directory", "openldap"]
Scope = Literal["subtree", "one_level"]

# An attribute description: a name (with options such as `;binary`) or an OID.
_ATTRIBUTE = re.compile(r"^(?:[A-Za-z][A-Za-z0-9-]*|[0-9]+(?:\.[0-9]+)+)(?:;[A-Za-z0-9-]+)*$")
# AD: a user who is not a computer (computers are `user`s there too).
AD_FILTER = "(&(objectClass=user)(!(objectClass=computer)))"
OPENLDAP_FILTER = "(objectClass=inetOrgPerson)"
GROUP_FILTER = "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))"


class SettingsError(ValueError):
    """The settings are wrong; the message names each wrong field, never its value."""


def _attribute(name: str) -> str:
    if not _ATTRIBUTE.match(name):
        raise ValueError(f"{name!r} is not an LDAP attribute name")
    return name


class AttributeMap(BaseModel):
    """Which directory attributes fill which field of a `DirectoryPerson`.

    For single fields (`upn`, `mail`, `display_name`) the first attribute with a value
    wins; `extensions`, `numbers` and `groups` take every value of every attribute
    named. `key` named `objectGUID` is read as AD's binary GUID and given in the
    standard string form; any other key attribute is taken as text. `disabled` named
    `userAccountControl` means bit 0x2 set; any other attribute means disabled when it
    has a value (or, with `disabled_values`, one of those values, case ignored).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str
    upn: tuple[str, ...] = ()
    mail: tuple[str, ...] = ()
    display_name: tuple[str, ...] = ()
    extensions: tuple[str, ...] = ()
    numbers: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    disabled: str | None = None
    disabled_values: tuple[str, ...] = ()

    @field_validator("key", "disabled")
    @classmethod
    def _one(cls, value: str | None) -> str | None:
        return None if value is None else _attribute(value)

    @field_validator("upn", "mail", "display_name", "extensions", "numbers", "groups")
    @classmethod
    def _many(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_attribute(v) for v in value)

    def requested(self) -> tuple[str, ...]:
        """Every attribute the map reads, once each."""
        names = [self.key, *self.upn, *self.mail, *self.display_name, *self.extensions]
        names += [*self.numbers, *self.groups, *([self.disabled] if self.disabled else [])]
        return tuple(dict.fromkeys(names))


ACTIVE_DIRECTORY_MAP = AttributeMap(
    key="objectGUID",
    upn=("userPrincipalName",),
    mail=("mail",),
    display_name=("displayName", "cn"),
    extensions=("ipPhone",),
    numbers=("telephoneNumber", "mobile"),
    groups=("memberOf",),
    disabled="userAccountControl",
)
# inetOrgPerson has no UPN and no extension attribute: `uid` is no UPN (the sync job
# asks Graph by UPN or mail, so mail is what finds a person), extensions are a site's
# choice (`attribute_map = { extensions = ["pager"] }`). Locked accounts of the
# ppolicy overlay count as disabled; `memberOf` is read where the overlay keeps it.
OPENLDAP_MAP = AttributeMap(
    key="entryUUID",
    mail=("mail",),
    display_name=("displayName", "cn"),
    numbers=("telephoneNumber", "mobile"),
    groups=("memberOf",),
    disabled="pwdAccountLockedTime",
)
DEFAULT_MAPS: dict[str, AttributeMap] = {
    "active_directory": ACTIVE_DIRECTORY_MAP,
    "openldap": OPENLDAP_MAP,
}


class LdapSettings(BaseModel):
    """One LDAP directory: where it is, how to bind, what to read.

    `url` is `ldaps://host[:port]` or `ldap://host[:port]`; plain `ldap://` needs
    `start_tls = true`, or `allow_plain = true` to send the password unencrypted.
    The server certificate is always checked, against `ca_file` or else the system's
    CAs, and must name the URL's host. `filter` and `group_search` default by
    `dialect`; `group_search` searches `group_filter` under `group_base_dn` (default
    `base_dn`) and adds each group to its `group_member_attributes` members, for
    servers without `memberOf`. `extra_attributes` are copied to the person's
    `attributes` for the directory rules.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field("ldap", min_length=1)
    dialect: Dialect = "active_directory"
    url: str
    start_tls: bool = False
    allow_plain: bool = False
    ca_file: FilePath | None = None
    bind_dn: str = Field(min_length=1)
    bind_password: SecretStr
    base_dn: str = Field(min_length=1)
    filter: str | None = None
    scope: Scope = "subtree"
    page_size: int = Field(500, ge=1, le=100_000)
    timeout_seconds: int = Field(30, ge=1, le=3600)
    attribute_map: Mapping[str, Any] = Field(default_factory=dict)
    extra_attributes: tuple[str, ...] = ()
    group_search: bool | None = None
    group_filter: str = GROUP_FILTER
    group_base_dn: str | None = None
    group_member_attributes: tuple[str, ...] = ("member", "uniqueMember")

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("ldap", "ldaps"):
            raise ValueError("must start with ldaps:// or ldap://")
        try:
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError:
            raise ValueError("has a port that is no number from 1 to 65535") from None
        if not parts.hostname or parts.path not in ("", "/") or parts.query or parts.username:
            raise ValueError("must be ldaps://host[:port] or ldap://host[:port], nothing more")
        return value

    @field_validator("bind_password")
    @classmethod
    def _password(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value():
            # RFC 4513 5.1.2: a simple bind with a DN and no password is an
            # unauthenticated bind, which many servers accept without checking anything.
            raise ValueError("is empty (that would be an unauthenticated bind)")
        return value

    @field_validator("filter", "group_filter")
    @classmethod
    def _filter(cls, value: str | None) -> str | None:
        if value is not None and not (value.startswith("(") and value.endswith(")")):
            raise ValueError("must be an LDAP filter in parentheses, e.g. (objectClass=user)")
        return value

    @field_validator("extra_attributes", "group_member_attributes")
    @classmethod
    def _attributes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_attribute(v) for v in value)

    @model_validator(mode="after")
    def _consistent(self) -> LdapSettings:
        ldaps = urlsplit(self.url).scheme == "ldaps"
        if ldaps and self.start_tls:
            raise ValueError("start_tls: the url is ldaps://, which is TLS already")
        if not ldaps and not self.start_tls and not self.allow_plain:
            raise ValueError(
                "url: plain ldap:// without start_tls would send the bind password "
                "unencrypted; use ldaps://, or start_tls = true, or (only on a trusted "
                "network) allow_plain = true"
            )
        self.attributes()  # a wrong map entry fails here, naming the entry
        return self

    def attributes(self) -> AttributeMap:
        """The dialect's attribute map with `attribute_map`'s entries over it."""
        unknown = sorted(set(self.attribute_map) - set(AttributeMap.model_fields))
        if unknown:
            raise ValueError(f"attribute_map: no such entry {', '.join(unknown)}")
        merged = {**DEFAULT_MAPS[self.dialect].model_dump(), **self.attribute_map}
        try:
            return AttributeMap.model_validate(merged)
        except ValidationError as error:
            raise ValueError(f"attribute_map: {describe(error)}") from None

    def person_filter(self) -> str:
        if self.filter is not None:
            return self.filter
        return AD_FILTER if self.dialect == "active_directory" else OPENLDAP_FILTER

    def searches_groups(self) -> bool:
        if self.group_search is not None:
            return self.group_search
        return self.dialect == "openldap"

    @classmethod
    def from_mapping(cls, table: Mapping[str, Any]) -> LdapSettings:
        """Settings from one config table; `kind = "ldap"` there is accepted and dropped.

        Raises `SettingsError` naming every wrong field and never a value given.
        """
        fields = dict(table)
        kind = fields.pop("kind", "ldap")
        if kind != "ldap":
            raise SettingsError(f"kind: {kind!r} is not an LDAP directory")
        try:
            return cls.model_validate(fields)
        except ValidationError as error:
            name = fields.get("name", "ldap")
            raise SettingsError(f"LDAP directory {name!r}: {describe(error)}") from None
