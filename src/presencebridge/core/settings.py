"""Presence-management settings of a configuration group (SPEC §5), validated.

The keys are exactly the ones administrators see in the manual, including the
dotted advanced keys, so the API and the console speak one vocabulary.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from presencebridge.core.model import StatusMessageSync, TeamsSyncMode
from presencebridge.core.worklocation import normalise_networks

# One entry of the process list: a name as the agent reports it, or a path to it (the agent
# compares only the name, without `.exe` / `.app`: `micsync.normalise`). Commas and
# semicolons separate entries; wildcards and the other characters no file name may hold
# are refused.
_PROCESS_NAME = re.compile(r"^[^,;*?\"<>|]{1,260}$")
PROCESS_SEPARATORS = re.compile(r"[,;\n]")
WHITELIST_MAX = 2000
PROCESS_NAME_MAX = 64  # the name itself, without its path


def process_names(value: str) -> list[str]:
    """The entries of a process list typed with commas, semicolons or one per line."""
    return [name.strip() for name in PROCESS_SEPARATORS.split(value) if name.strip()]


def _zero_or_one(value: Any) -> Any:
    # The manual writes 1 / 0; accept JSON booleans and the strings too, nothing else.
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, str) and value.strip() in {"0", "1"}:
        return int(value.strip())
    return value


class GroupSettings(BaseModel):
    """Every setting of SPEC §5 with its default."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, use_enum_values=False
    )

    teams_sync_mode: TeamsSyncMode = TeamsSyncMode.OFF
    user_may_change: bool = True
    remember_credentials: bool = False
    create_teams_profile_template: bool = False
    microphone_sync_enable: Annotated[int, BeforeValidator(_zero_or_one)] = Field(
        0, alias="MicrophoneUsageSync.Enable", ge=0, le=1
    )
    microphone_sync_whitelist: str = Field(
        "", alias="MicrophoneUsageSync.ProcessWhitelist", max_length=WHITELIST_MAX
    )
    reassert_dnd: bool = False
    # Teams out of office (Outlook's automatic replies) shown on the UC side as an
    # appointment; in telephony_and_presence only, the mode that follows Teams' status.
    teams_out_of_office: bool = True
    # The UC presence text as the Teams status message (and back, with `both`).
    teams_status_message: StatusMessageSync = StatusMessageSync.OFF
    # Client-side Teams only: the agent sets the user's automatic work location to
    # office while the computer has an address in one of these networks, else remote.
    teams_work_location_office_networks: str = Field("", max_length=2000)

    @field_validator("microphone_sync_whitelist")
    @classmethod
    def _whitelist_names(cls, value: str) -> str:
        names = process_names(value)
        bad = [
            name
            for name in names
            if not _PROCESS_NAME.match(name) or not 0 < len(_base(name)) <= PROCESS_NAME_MAX
        ]
        if bad:
            # The name as typed (no repr: a path's backslashes are not doubled).
            raise PydanticCustomError(
                "process_name", "not a process name: {name}", {"name": bad[0]}
            )
        return ",".join(names)

    @field_validator("teams_work_location_office_networks")
    @classmethod
    def _office_networks(cls, value: str) -> str:
        return normalise_networks(value)

    def public(self) -> dict[str, Any]:
        """The settings under their SPEC §5 names, as JSON values."""
        return self.model_dump(by_alias=True, mode="json")

    def merged(self, patch: dict[str, Any]) -> GroupSettings:
        """A copy with `patch` (SPEC names) applied; raises pydantic's ValidationError."""
        return GroupSettings.model_validate({**self.public(), **patch})


def _base(name: str) -> str:
    """What is left of an entry without its path: a path alone names no process."""
    return re.split(r"[\\/]", name)[-1].strip()


def effective_mode(settings: GroupSettings, own_mode: TeamsSyncMode | None) -> TeamsSyncMode:
    """The user's own mode applies only while the group lets users change it (SPEC §5)."""
    if settings.user_may_change and own_mode is not None:
        return own_mode
    return settings.teams_sync_mode
