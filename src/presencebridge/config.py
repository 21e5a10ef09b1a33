"""Server configuration: environment (prefix PRESENCEBRIDGE_), optional TOML file.

Every setting is documented in the README's settings table; keep them in step.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from presencebridge.adapters.connectors import PBX_KINDS, SECRET, publish_kinds
from presencebridge.adapters.ldap.settings import LdapSettings
from presencebridge.core import addresses


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "presencebridge"


class DirectoryRuleConfig(BaseModel):
    """One rule of `[[directory]]` `rules` (docs/directory.md): conditions (all given must
    hold) and the configuration group they lead to, or `in_scope = false`."""

    model_config = ConfigDict(extra="forbid")

    group: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$")
    in_scope: bool = True
    member_of: str | None = Field(None, min_length=1, max_length=512)
    ou: str | None = Field(None, min_length=1, max_length=1024)
    attribute: str | None = Field(None, min_length=1, max_length=128)
    equals: str | None = Field(None, max_length=512)

    @model_validator(mode="after")
    def _complete(self) -> DirectoryRuleConfig:
        if self.in_scope and self.group is None:
            raise ValueError('a rule needs group = "<configuration group>" or in_scope = false')
        if not self.in_scope and self.group is not None:
            raise ValueError("a rule with in_scope = false takes no group")
        if self.member_of is None and self.ou is None and self.attribute is None:
            raise ValueError("a rule needs a condition: member_of, ou or attribute")
        if self.equals is not None and self.attribute is None:
            raise ValueError("equals needs attribute (the attribute it compares)")
        return self


class DirectoryConfig(BaseModel):
    """A `[[directory]]` table of the configuration file: where users come from."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field("", pattern=r"^$|^[a-z][a-z0-9_-]{0,31}$")  # default: the kind
    kind: Literal["entra", "ldap"]
    rules: list[DirectoryRuleConfig] = Field(default_factory=list)
    default_group: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,127}$")
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
