"""What the XMPP outlets are told: one `[[publish]]` table each (docs/xmpp.md).

Plain frozen pydantic models, built by `component_settings` / `account_settings` from
the table (with the secret under "secret"); errors name the field and never echo a
value, so a secret put in the wrong field is not printed back. The secret is a
`SecretStr`: `**********` in every repr, read only when the stream authenticates.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any, Literal, TypeVar

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
from presencebridge.core.texts import LANGUAGES

# A DNS name as XMPP domains are written (RFC 7622 §3.2, without IDN forms): labels of
# letters, digits and hyphens. `localhost` is one label, fine for tests.
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_DOMAIN = rf"^{_LABEL}(?:\.{_LABEL})*$"
_NAME = r"^[a-z][a-z0-9_-]{0,31}$"


class SettingsError(ValueError):
    """The table is wrong; the message names each wrong field, never its value."""


class _Common(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=_NAME)
    secret: SecretStr
    host: str = Field("127.0.0.1", min_length=1, max_length=253)
    language: str = "en"
    # Backoff between connection attempts after a failure: doubles from 1 s up to this.
    reconnect_max_seconds: float = Field(60.0, ge=1, le=3600)

    @field_validator("language")
    @classmethod
    def _known_language(cls, value: str) -> str:
        if value not in LANGUAGES:
            raise ValueError(f"one of {', '.join(LANGUAGES)}")
        return value


class ComponentSettings(_Common):
    """`kind = "xmpp-component"`: the hub as an XEP-0114 external component."""

    port: int = Field(5347, ge=1, le=65535)
    # The component's JID; each hub user appears as `{local}@{domain}`.
    domain: str = Field(max_length=253, pattern=_DOMAIN)
    # The local part: the user's e-mail local part (users without e-mail: the user id),
    # or always the user id.
    address: Literal["email-local", "user-id"] = "email-local"
    # Subscription requests from allowed domains are approved (False: refused).
    approve_subscriptions: bool = True
    # Only JIDs of these domains get presence (probes, subscriptions, pushes); empty:
    # the component's parent domain (`presence.example.com` -> `example.com`). Presence
    # is never sent to anyone else, whatever they send the component.
    allowed_domains: tuple[str, ...] = ()
    # Roster provisioning (optional): "ejabberd" puts every published user's contact
    # into the rosters of `roster_host`'s users through the admin API at `roster_api`.
    roster: Literal["none", "ejabberd"] = "none"
    roster_api: str | None = Field(None, pattern=r"^https?://[^\s]+$", max_length=2000)
    roster_host: str | None = Field(None, max_length=253, pattern=_DOMAIN)
    roster_group: str = Field("Telefonie", min_length=1, max_length=100)
    # n users get n-1 contacts each: n² roster items, kept in check by this cap.
    roster_max_users: int = Field(300, ge=1, le=2000)
    roster_interval_minutes: float = Field(10.0, ge=0.1, le=1440)

    @model_validator(mode="after")
    def _roster_api_when_needed(self) -> ComponentSettings:
        if self.roster == "ejabberd" and self.roster_api is None:
            raise ValueError("roster_api: needed with roster = 'ejabberd'")
        return self

    def watcher_domains(self) -> frozenset[str]:
        if self.allowed_domains:
            return frozenset(d.lower() for d in self.allowed_domains)
        parent = self.domain.partition(".")[2] or self.domain
        return frozenset({parent.lower()})


class AccountSettings(_Common):
    """`kind = "xmpp-account"`: the hub logs in as each user, with its own resource."""

    port: int = Field(5222, ge=1, le=65535)
    # The user's bare JID: the whole e-mail address, or a local part (e-mail local part
    # or user id) at `domain`.
    address: Literal["email", "email-local", "user-id"] = "email"
    domain: str | None = Field(None, max_length=253, pattern=_DOMAIN)
    resource: str = Field("presencebridge", min_length=1, max_length=64, pattern=r"^[^\s/@]+$")
    # Negative: the server never routes the user's messages to the hub's resource, and
    # the user's own clients win wherever a server picks one resource (RFC 6121 §4.7.2.3).
    priority: int = Field(-1, ge=-128, le=127)
    # One client stream per user: a cap, so a large site cannot open thousands of
    # streams by accident (docs/xmpp.md says why the component is the choice there).
    max_accounts: int = Field(500, ge=1, le=5000)
    logins_per_second: float = Field(10.0, gt=0, le=1000)
    # "starttls" (default) or "direct" TLS; "none" only on loopback tests: SCRAM keeps
    # the password off the wire, but the presence travels in clear.
    tls: Literal["starttls", "direct", "none"] = "starttls"
    ca_file: FilePath | None = None

    @model_validator(mode="after")
    def _domain_when_needed(self) -> AccountSettings:
        if self.address != "email" and self.domain is None:
            raise ValueError(f"domain: needed with address = {self.address!r}")
        if self.tls == "none" and not _loopback(self.host):
            # Every user's presence (and, with a server that offers PLAIN only, no
            # login at all) over a network in clear: not for anything but a test.
            raise ValueError("tls: 'none' only with a loopback host")
        return self


# A regex pattern says little to an administrator.
_PATTERN = {"string_pattern_mismatch": "not a valid value"}


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host.lower() == "localhost"


def component_settings(table: Mapping[str, Any]) -> ComponentSettings:
    return _parse(ComponentSettings, table, "xmpp-component")


def account_settings(table: Mapping[str, Any]) -> AccountSettings:
    return _parse(AccountSettings, table, "xmpp-account")


S = TypeVar("S", bound=_Common)


def _parse(model: type[S], table: Mapping[str, Any], kind: str) -> S:
    fields = dict(table)
    name = fields.get("name", kind)
    try:
        return model.model_validate(fields)
    except ValidationError as error:
        raise SettingsError(f"[[publish]] {name}: {describe(error, by_type=_PATTERN)}") from None
