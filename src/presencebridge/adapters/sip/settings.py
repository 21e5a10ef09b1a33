"""The `[[pbx]] kind = "sip-dialog"` and `[[publish]] kind = "sip-presence"` tables
(docs/pbx.md). Errors name the field, never its value; the password is a `SecretStr`
(`**********` in every repr) read only when a challenge is answered.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from presencebridge.adapters.settings_errors import describe

_HOST = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)$")
_PLACEHOLDERS = ("{extension}", "{user_id}", "{domain}")


class SipSettings(BaseModel):
    """What both SIP kinds share: where the server is and who we are to it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    server: str = Field(min_length=1, max_length=255)  # host or host:port
    transport: Literal["udp", "tcp", "tls"] = "udp"
    domain: str = Field("", max_length=255)  # default: the server's host (and port)
    username: str = Field("", max_length=128)  # digest user; "" = no authentication
    secret: SecretStr | None = None
    from_user: str = Field("presencebridge", pattern=r"^[A-Za-z0-9._+-]{1,64}$")
    local_host: str = Field("", max_length=255)  # "" = the address towards the server
    local_port: int = Field(0, ge=0, le=65535)
    uri: str = Field("sip:{extension}@{domain}", max_length=255)
    expires: int = Field(3600, ge=10, le=86400)
    keepalive_seconds: float = Field(30.0, ge=0, le=3600)  # OPTIONS to the server; 0 off
    # How long a request waits for its final response (RFC 3261 Timer F is 32 s).
    timeout_seconds: float = Field(32.0, ge=1, le=64)

    @field_validator("server")
    @classmethod
    def _server(cls, value: str) -> str:
        host, _, port = value.rpartition(":") if value.count(":") == 1 else (value, "", "")
        if not _HOST.match(host or value) or (port and not port.isdigit()):
            raise ValueError("must be host or host:port")
        return value

    @field_validator("uri")
    @classmethod
    def _uri(cls, value: str) -> str:
        if not value.startswith(("sip:", "sips:")):
            raise ValueError("must start with sip: or sips:")
        rest = value
        for placeholder in _PLACEHOLDERS:
            rest = rest.replace(placeholder, "")
        if "{" in rest or "}" in rest:
            raise ValueError(f"may only use {', '.join(_PLACEHOLDERS)}")
        return value

    @property
    def address(self) -> tuple[str, int]:
        default = 5061 if self.transport == "tls" else 5060
        if self.server.count(":") == 1:
            host, port = self.server.split(":")
            return host, int(port)
        return self.server.strip("[]"), default

    @property
    def sip_domain(self) -> str:
        return self.domain or self.server

    def target(self, **values: str) -> str:
        return self.uri.format(domain=self.sip_domain, **values)


_S = TypeVar("_S", bound=SipSettings)


class DialogSettings(SipSettings):
    """`[[pbx]] kind = "sip-dialog"`."""

    subscribe_rate: float = Field(50.0, gt=0, le=10_000)  # new SUBSCRIBEs per second
    max_body_bytes: int = Field(65_536, ge=1024, le=1_048_576)
    retry_seconds: float = Field(30.0, ge=0.1, le=3600)  # after a refused SUBSCRIBE


class PresenceSettings(SipSettings):
    """`[[publish]] kind = "sip-presence"`."""

    language: str = Field("en", pattern=r"^[a-z]{2}$")
    dialog: bool = True  # also PUBLISH Event: dialog, so BLF keys show hub calls
    republish_rate: float = Field(50.0, gt=0, le=10_000)  # per second, after a restart


def _parse(model: type[_S], table: Mapping[str, Any]) -> _S:
    try:
        return model.model_validate(dict(table))
    except ValidationError as error:
        raise ValueError(f"{table.get('name', model.__name__)}: {describe(error)}") from None


def parse_dialog(table: Mapping[str, Any]) -> DialogSettings:
    return _parse(DialogSettings, table)


def parse_presence(table: Mapping[str, Any]) -> PresenceSettings:
    return _parse(PresenceSettings, table)
