"""Server configuration: environment (prefix PRESENCEBRIDGE_), optional TOML file.

Every setting is documented in the README's settings table; keep them in step.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from presencebridge.core import addresses


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "presencebridge"


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
