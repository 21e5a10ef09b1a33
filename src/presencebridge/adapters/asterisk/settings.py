"""What an `asterisk-ami` table of the configuration file says (docs/pbx-asterisk.md).

`[[pbx]] kind = "asterisk-ami"` reads hint states (`AmiSourceSettings`), `[[publish]]
kind = "asterisk-ami"` writes `Custom:` device states (`AmiOutletSettings`); both
share how to reach and log in to the manager interface (`AmiConnection`). Errors name
the field and never echo a value: the secret arrives in the same table.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from presencebridge.adapters.settings_errors import describe

KIND = "asterisk-ami"
# The key the secret arrives under (adapters/connectors.SECRET; not imported from there,
# since that module imports this package to register the kind).
SECRET_KEY = "secret"  # noqa: S105 - the name of a key, not a secret

_HOST = re.compile(r"^[A-Za-z0-9._:\[\]-]{1,253}$")
# manager.conf section names and dialplan contexts: no spaces, no line breaks.
_NAME = re.compile(r"^[A-Za-z0-9_.@+-]{1,80}$")
# What a `Custom:` device name may hold once the placeholders are filled in: the name
# goes into `DEVICE_STATE(…)`, where a parenthesis or a comma would change its meaning.
DEVICE_NAME = re.compile(r"^Custom:[A-Za-z0-9_.@+-]{1,80}$")
PLACEHOLDERS = ("{extension}", "{user}")


class SettingsError(ValueError):
    """The table is wrong; the message names each wrong field, never its value."""


class AmiConnection(BaseModel):
    """How to reach the manager interface and log in.

    The login uses AMI's MD5 challenge, so the secret never crosses the wire; `tls`
    connects to the TLS port (`tlsenable` in manager.conf), checked against `ca_file`
    or the system's CAs. Timeouts bound each step; `keepalive_seconds` is how often a
    `Ping` checks the link (no answer within `action_timeout_seconds`: the link is
    dead and is made again); reconnecting waits from `reconnect_min_seconds` doubling
    up to `reconnect_max_seconds`, each wait shortened by a random part of up to half
    so that many hubs do not reconnect in step.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(KIND, min_length=1)
    host: str
    port: int = Field(5038, ge=1, le=65535)
    username: str
    secret: SecretStr
    tls: bool = False
    ca_file: Path | None = None
    connect_timeout_seconds: float = Field(5.0, gt=0, le=300)
    action_timeout_seconds: float = Field(10.0, gt=0, le=300)
    keepalive_seconds: float = Field(20.0, ge=1, le=3600)
    reconnect_min_seconds: float = Field(0.5, gt=0, le=300)
    reconnect_max_seconds: float = Field(30.0, gt=0, le=3600)

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        if not _HOST.match(value):
            raise ValueError("must be a host name or an IP address")
        return value

    @field_validator("username")
    @classmethod
    def _username(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("must be a manager.conf user name (letters, digits, _ . @ + -)")
        return value

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: SecretStr) -> SecretStr:
        text = value.get_secret_value()
        if not text or any(c in text for c in "\r\n"):
            raise ValueError("is empty or has a line break (set secret_env or secret_file)")
        return value

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


class AmiSourceSettings(AmiConnection):
    """`[[pbx]]`: the hints of `context` are read for every watched extension; the
    devices they name that match one of `ignore_devices` (shell patterns, case
    ignored) do not count as calls: by default every `Custom:` device, among them the
    ones an `asterisk-ami` outlet sets for Teams calls, which would otherwise come
    back as PBX calls."""

    context: str = "default"
    ignore_devices: tuple[str, ...] = ("Custom:*",)

    @field_validator("context")
    @classmethod
    def _context(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("must be a dialplan context name")
        return value


class AmiOutletSettings(AmiConnection):
    """`[[publish]]`: each user's state goes to the `Custom:` device `device` names;
    `{extension}` is the user's first extension, `{user}` the user's id.
    `clear_on_stop`: set the devices raised back to NOT_INUSE when the hub stops (a
    single node only: with several, another node may have taken the user over).
    `apply_profile`: also apply the profile's call forwarding and DnD at the PBX
    (`features.AmiProfileFeatures`; the manager user then needs `write = call,system`).
    """

    device: str = "Custom:{extension}-teams"
    clear_on_stop: bool = False
    # Issue 17: the profile's call forwarding and DnD written into FreePBX's AstDB keys
    # (`CF/<ext>`, `DND/<ext>`), the user's own values kept under `profile_family`.
    apply_profile: bool = False
    profile_family: str = "presencebridge"

    @field_validator("profile_family")
    @classmethod
    def _family(cls, value: str) -> str:
        if not _NAME.match(value) or value in ("CF", "DND"):
            raise ValueError("must be an AstDB family of the hub's own (letters, digits, _ . -)")
        return value

    @field_validator("device")
    @classmethod
    def _device(cls, value: str) -> str:
        sample = value.replace("{extension}", "2101").replace("{user}", "anna")
        if not DEVICE_NAME.match(sample) or not any(p in value for p in PLACEHOLDERS):
            raise ValueError(
                "must be Custom:<name> with {extension} or {user} in it "
                "(letters, digits, _ . @ + - around them), e.g. Custom:{extension}-teams"
            )
        return value

    def device_for(self, user_id: str, extensions: tuple[str, ...]) -> str | None:
        """The device name for a user; None when it needs an extension the user lacks
        or the user's id or extension would make it no valid name."""
        if "{extension}" in self.device and not extensions:
            return None
        first = extensions[0] if extensions else ""
        name = self.device.replace("{extension}", first).replace("{user}", user_id)
        return name if DEVICE_NAME.match(name) else None


_SECRET_MISSING = {SECRET_KEY: "missing: set secret_env or secret_file"}


def _parsed(model: type[AmiConnection], table: Mapping[str, Any]) -> Any:
    fields = {k: v for k, v in table.items() if k != "kind"}
    try:
        return model.model_validate(fields)
    except ValidationError as error:
        name = fields.get("name", KIND)
        raise SettingsError(
            f"{KIND} {name!r}: {describe(error, when_missing=_SECRET_MISSING)}"
        ) from None


def parse_source(table: Mapping[str, Any]) -> AmiSourceSettings:
    settings: AmiSourceSettings = _parsed(AmiSourceSettings, table)
    return settings


def parse_outlet(table: Mapping[str, Any]) -> AmiOutletSettings:
    settings: AmiOutletSettings = _parsed(AmiOutletSettings, table)
    return settings
