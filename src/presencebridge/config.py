"""Server configuration: environment (prefix PRESENCEBRIDGE_), optional TOML file.

Every setting is documented in the README's settings table; keep them in step.
"""

from __future__ import annotations

import os
import socket
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from presencebridge.adapters.connectors import PBX_KINDS, SECRET, publish_kinds
from presencebridge.adapters.ldap.settings import LdapSettings
from presencebridge.adapters.oidc import secure_issuer
from presencebridge.core import addresses, directory


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "presencebridge"


GROUP_NAME = r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$"  # a configuration group's id


def _printable(value: str | None) -> str | None:
    """No control characters or lone surrogates (no database stores NUL in JSON)."""
    for position, char in enumerate(value or "", 1):
        if unicodedata.category(char) in ("Cc", "Cs"):
            raise ValueError(
                f"must not contain a control character (U+{ord(char):04X} at character {position})"
            )
    return value


Text = Annotated[str | None, AfterValidator(_printable)]
# A rule's problems as the file, the API and the console report them (the console
# translates them: web/pages/directory_rules.py).
RULE_NEEDS_GROUP = 'a rule needs group = "<configuration group>" or in_scope = false'
RULE_OUT_OF_SCOPE_TAKES_NO_GROUP = "a rule with in_scope = false takes no group"
RULE_NEEDS_CONDITION = "a rule needs a condition: member_of, ou or attribute"
RULE_EQUALS_NEEDS_ATTRIBUTE = "equals needs attribute (the attribute it compares)"


class DirectoryRuleConfig(BaseModel):
    """One rule of `[[directory]]` `rules` (docs/directory.md): conditions (all given must
    hold) and the configuration group they lead to, or `in_scope = false`. The console
    and the API check rules with this model too."""

    model_config = ConfigDict(extra="forbid")

    group: str | None = Field(None, pattern=GROUP_NAME)
    in_scope: bool = Field(True, strict=True)
    member_of: Text = Field(None, min_length=1, max_length=512)
    ou: Text = Field(None, min_length=1, max_length=1024)
    attribute: Text = Field(None, min_length=1, max_length=128)
    equals: Text = Field(None, max_length=512)

    @model_validator(mode="after")
    def _complete(self) -> DirectoryRuleConfig:
        if self.in_scope and self.group is None:
            raise ValueError(RULE_NEEDS_GROUP)
        if not self.in_scope and self.group is not None:
            raise ValueError(RULE_OUT_OF_SCOPE_TAKES_NO_GROUP)
        if self.member_of is None and self.ou is None and self.attribute is None:
            raise ValueError(RULE_NEEDS_CONDITION)
        if self.equals is not None and self.attribute is None:
            raise ValueError(RULE_EQUALS_NEEDS_ATTRIBUTE)
        return self

    def to_rule(self) -> directory.Rule:
        group = self.group if self.in_scope else None
        return directory.Rule(group, self.member_of, self.ou, self.attribute, self.equals)

    @classmethod
    def of_rule(cls, rule: directory.Rule) -> DirectoryRuleConfig:
        return cls(
            group=rule.group, in_scope=rule.group is not None, member_of=rule.member_of,
            ou=rule.ou, attribute=rule.attribute, equals=rule.equals,
        )  # fmt: skip


class DirectoryRulesConfig(BaseModel):
    """The rules of one directory source as the console and the API edit them
    (`PUT /api/v1/admin/directory/{source}/rules`): the `rules` and `default_group` of
    its `[[directory]]` table, checked by the same models."""

    model_config = ConfigDict(extra="forbid")

    rules: list[DirectoryRuleConfig] = Field(default_factory=list)
    default_group: str | None = Field(None, pattern=GROUP_NAME)

    def to_rules(self) -> directory.Rules:
        return directory.Rules(tuple(r.to_rule() for r in self.rules), self.default_group)

    @classmethod
    def of_rules(cls, rules: directory.Rules) -> DirectoryRulesConfig:
        return cls(
            rules=[DirectoryRuleConfig.of_rule(r) for r in rules.rules],
            default_group=rules.default_group,
        )

    def stored(self) -> dict[str, Any]:
        """As JSON, without the fields left at their defaults (as a file spells them)."""
        return {
            "rules": [r.model_dump(exclude_defaults=True) for r in self.rules],
            "default_group": self.default_group,
        }


class DirectoryConfig(BaseModel):
    """A `[[directory]]` table of the configuration file: where users come from."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("", pattern=r"^$|^[a-z][a-z0-9_-]{0,31}$")  # default: the kind
    kind: Literal["entra", "ldap"]
    rules: list[DirectoryRuleConfig] = Field(default_factory=list)
    default_group: str | None = Field(None, pattern=GROUP_NAME)
    schedule_minutes: float = Field(60.0, ge=0, le=7 * 24 * 60)  # 0: only on demand
    max_removal_share: float = Field(0.10, ge=0, le=1)
    disabled_grace_days: float = Field(30.0, ge=0, le=3650)
    # Entra ID: the attribute extensions come from, e.g. "employeeId" or
    # "onPremisesExtensionAttributes/extensionAttribute1"; the app registration is the
    # server's (tenant_id, client_id, client_secret) unless a secret is named here.
    extension_attribute: str | None = Field(
        None, pattern=r"^[A-Za-z][A-Za-z0-9]*(/extensionAttribute(1[0-5]|[1-9]))?$"
    )
    client_secret_file: Path | None = None  # a file holding the secret (never logged)
    client_secret_env: str | None = Field(None, pattern=r"^[A-Z_][A-Z0-9_]*$")
    # LDAP / AD: the LDAP source's settings (docs/directory.md), checked by its adapter;
    # the bind password comes from the environment or a file, never from this file.
    ldap: dict[str, Any] | None = None
    bind_password_env: str | None = Field(None, pattern=r"^[A-Z_][A-Z0-9_]*$")
    bind_password_file: Path | None = None

    @model_validator(mode="after")
    def _ldap_table(self) -> DirectoryConfig:
        if self.kind != "ldap":
            return self
        if not self.ldap:
            raise ValueError(f"directory {self.source_name}: kind 'ldap' needs an [ldap] table")
        if "bind_password" in self.ldap:
            raise ValueError(
                f"directory {self.source_name}: ldap.bind_password must not be in the "
                "configuration file: use bind_password_env or bind_password_file"
            )
        if self.bind_password_env is None and self.bind_password_file is None:
            raise ValueError(
                f"directory {self.source_name}: name bind_password_env or bind_password_file"
            )
        # Every other LDAP setting is checked now, when the file is read, not at start.
        LdapSettings.from_mapping({"name": self.source_name, **self.ldap, "bind_password": "-"})
        return self

    def ldap_table(self) -> dict[str, Any]:
        """The LDAP source's settings with the bind password read in (at start)."""
        password = self._secret("bind_password", self.bind_password_env, self.bind_password_file)
        table = {"name": self.source_name, **(self.ldap or {})}
        if password is not None:
            table["bind_password"] = password.get_secret_value()
        return table

    @property
    def source_name(self) -> str:
        return self.name or self.kind

    def rules_config(self) -> DirectoryRulesConfig:
        """This table's `rules` and `default_group`, as the console edits them."""
        return DirectoryRulesConfig(rules=self.rules, default_group=self.default_group)

    def client_secret(self) -> SecretStr | None:
        """The secret named here (environment variable or file), else None."""
        return self._secret("client_secret", self.client_secret_env, self.client_secret_file)

    def _secret(self, what: str, env: str | None, file: Path | None) -> SecretStr | None:
        if env:
            value = os.environ.get(env)
            if not value:
                raise ValueError(f"directory {self.source_name}: {what}_env {env} is not set")
            return SecretStr(value)
        if file is not None:
            try:
                return SecretStr(file.read_text().strip())
            except OSError as error:
                raise ValueError(
                    f"directory {self.source_name}: {what}_file cannot be read: {error.strerror}"
                ) from None
        return None


class ConnectorConfig(BaseModel):
    """A `[[pbx]]` or `[[publish]]` table (issue 13, docs/pbx.md): `kind` picks the
    connector, the table's other keys are its settings, checked by the connector's own
    parser when the file is read. Its secret (SIP or AMI password, XMPP component
    secret) comes from `secret_env` or `secret_file`, never from the file."""

    model_config = ConfigDict(extra="allow")

    kind: str = Field(min_length=1, max_length=64)
    name: str = Field("", pattern=r"^$|^[a-z][a-z0-9_-]{0,31}$")  # default: the kind
    secret_env: str | None = Field(None, pattern=r"^[A-Z_][A-Z0-9_]*$")
    secret_file: Path | None = None

    @property
    def connector_name(self) -> str:
        return self.name or self.kind

    def options(self) -> dict[str, Any]:
        """The table's connector settings (everything but kind and the secret's source)."""
        return {"name": self.connector_name, **(self.model_extra or {})}

    def check(self, role: str, kinds: Mapping[str, Any]) -> None:
        if self.kind not in kinds:
            known = ", ".join(sorted(kinds)) or "none"
            raise ValueError(
                f"[[{role}]] {self.connector_name}: unknown kind {self.kind!r} (known: {known})"
            )
        for key in self.model_extra or {}:
            if key == SECRET or key.endswith(("password", "_secret")):
                raise ValueError(
                    f"[[{role}]] {self.connector_name}: {key} must not be in the "
                    "configuration file: use secret_env or secret_file"
                )
        # Every other setting is checked now, when the file is read, not at start; a
        # stand-in secret only when one is named, so a kind that needs one says so now.
        named = self.secret_env is not None or self.secret_file is not None
        kinds[self.kind].parse({**self.options(), **({SECRET: "-"} if named else {})})

    def table(self) -> dict[str, Any]:
        """The settings with the secret read in (at start)."""
        table = self.options()
        if self.secret_env:
            value = os.environ.get(self.secret_env)
            if not value:
                raise ValueError(f"{self.connector_name}: secret_env {self.secret_env} is not set")
            table[SECRET] = value
        elif self.secret_file is not None:
            try:
                table[SECRET] = self.secret_file.read_text().strip()
            except OSError as error:
                raise ValueError(
                    f"{self.connector_name}: secret_file cannot be read: {error.strerror}"
                ) from None
        return table


class SignInConfig(BaseModel):
    """The `[sign_in]` table (issue 14, docs/sign-in.md): OpenID Connect sign-in for every
    employee. The client secret comes from `client_secret_env` or `client_secret_file`."""

    model_config = ConfigDict(extra="forbid")

    issuer: str = Field(min_length=1, max_length=512)
    client_id: str = Field(min_length=1, max_length=256)
    client_secret_env: str | None = Field(None, pattern=r"^[A-Z_][A-Z0-9_]*$")
    client_secret_file: Path | None = None
    scopes: list[str] = Field(default_factory=lambda: ["openid", "profile", "email"])
    # Administrators: members of one of these groups (`groups` claim: Entra object ids)
    # or holders of one of these app roles (`roles` claim).
    admin_groups: list[str] = Field(default_factory=list)
    admin_roles: list[str] = Field(default_factory=list)
    # Entra's multi-tenant endpoints (`common`, `organizations`): the tenants let in.
    allowed_tenants: list[str] = Field(default_factory=list)
    label: str = Field("", max_length=64)  # the button's text; default "your company account"
    ca_bundle: Path | None = None  # default: the server's ca_bundle
    # The admin token's console sign-in (break glass); the API takes the token regardless.
    admin_token_console: bool = True

    @field_validator("issuer")
    @classmethod
    def _secure(cls, value: str) -> str:
        if not secure_issuer(value):
            raise ValueError("the issuer must be an https URL (plain http only on loopback)")
        return value.rstrip("/")

    @field_validator("scopes")
    @classmethod
    def _openid(cls, value: list[str]) -> list[str]:
        if "openid" not in value:
            raise ValueError('scopes must include "openid"')
        return value

    def client_secret(self) -> SecretStr | None:
        if self.client_secret_env:
            value = os.environ.get(self.client_secret_env)
            if not value:
                raise ValueError(f"sign_in: client_secret_env {self.client_secret_env} is not set")
            return SecretStr(value)
        if self.client_secret_file is not None:
            try:
                return SecretStr(self.client_secret_file.read_text().strip())
            except OSError as error:
                raise ValueError(
                    f"sign_in: client_secret_file cannot be read: {error.strerror}"
                ) from None
        return None


def _checked_connectors(
    role: str, tables: list[ConnectorConfig], kinds: Mapping[str, Any]
) -> list[ConnectorConfig]:
    names = [t.connector_name for t in tables]
    for table in tables:
        if names.count(table.connector_name) > 1:
            raise ValueError(
                f"two [[{role}]] tables are named {table.connector_name!r}; give each a name"
            )
        table.check(role, kinds)
    return tables


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PRESENCEBRIDGE_", extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    data_dir: Path = Field(default_factory=default_data_dir)
    database_url: str | None = None
    admin_token: SecretStr | None = None
    public_url: str | None = None
    graph_url: str = "https://graph.microsoft.com/v1.0"
    authority: str = "https://login.microsoftonline.com"
    tenant_id: str | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    ca_bundle: Path | None = None
    read_mode: Literal["poll", "notify"] = "poll"
    graph_budget: int = Field(1500, ge=1, description="Graph presence requests per window")
    graph_budget_window: float = Field(30.0, gt=0)
    graph_read_share: float = Field(0.6, gt=0, le=1)
    poll_min_interval: float = Field(1.0, ge=0.05, le=3600)
    notify_poll_interval: float = Field(60.0, ge=1, le=86400)
    secret_key: SecretStr | None = None
    language: Literal["en", "de"] = "en"
    # National phone numbers (users' numbers, PBX events) are read in this country.
    default_country: str = Field("DE", pattern=r"^[A-Z]{2}$")
    max_body_bytes: int = Field(64 * 1024, ge=1024, le=16 * 1024 * 1024)
    allow_clock_control: bool = False
    log_format: Literal["text", "json"] = "text"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # The audit log (issue 18): rows older than this are pruned at each start.
    audit_retention_days: int = Field(365, ge=1, le=36500)
    # Several nodes (docs/cluster.md): set redis_url on every node, with one PostgreSQL.
    redis_url: SecretStr | None = None
    node_id: str | None = Field(None, pattern=r"^[A-Za-z0-9._:-]{1,128}$")
    node_url: str | None = None
    partitions: int = Field(64, ge=1, le=4096)
    lease_seconds: float = Field(9.0, ge=1, le=300)
    # Directory sources (issue 12, docs/directory.md): `[[directory]]` tables of the file.
    directory: list[DirectoryConfig] = Field(default_factory=list)
    # PBX connectors and presence outlets (issue 13, docs/pbx.md).
    pbx: list[ConnectorConfig] = Field(default_factory=list)
    publish: list[ConnectorConfig] = Field(default_factory=list)
    # Single sign-on for every employee (issue 14, docs/sign-in.md): `[sign_in]`.
    sign_in: SignInConfig | None = None

    @field_validator("directory")
    @classmethod
    def _unique_sources(cls, value: list[DirectoryConfig]) -> list[DirectoryConfig]:
        names = [d.source_name for d in value]
        for name in names:
            if names.count(name) > 1:
                raise ValueError(f"two [[directory]] tables are named {name!r}; give each a name")
        return value

    @field_validator("pbx")
    @classmethod
    def _known_pbx(cls, value: list[ConnectorConfig]) -> list[ConnectorConfig]:
        return _checked_connectors("pbx", value, PBX_KINDS)

    @field_validator("publish")
    @classmethod
    def _known_outlets(cls, value: list[ConnectorConfig]) -> list[ConnectorConfig]:
        return _checked_connectors("publish", value, publish_kinds())

    @field_validator("default_country")
    @classmethod
    def _known_country(cls, value: str) -> str:
        if not addresses.is_region(value):
            raise ValueError(f"{value!r} is not a country phone numbers are known for")
        return value

    @property
    def clustered(self) -> bool:
        return self.redis_url is not None

    def node_name(self) -> str:
        return self.node_id or f"{socket.gethostname()}:{self.port}"

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'presencebridge.db'}"


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Settings from (highest first) explicit overrides, the environment, the TOML file."""
    if config_file is None:
        return Settings(**overrides)
    if not config_file.is_file():
        raise FileNotFoundError(f"configuration file not found: {config_file}")

    class FromFile(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            return (
                init_settings,
                env_settings,
                TomlConfigSettingsSource(settings_cls, toml_file=config_file),
            )

    return FromFile(**overrides)
