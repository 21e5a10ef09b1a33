"""Request and response bodies of the REST API (SPEC §7), with their validation."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from presencebridge.core.model import (
    COLOR_PATTERN,
    ID_PATTERN,
    CallState,
    MeetingState,
    Status,
    TeamsSyncMode,
)

Identifier = Annotated[str, StringConstraints(pattern=ID_PATTERN.pattern)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]
Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Color = Annotated[str, StringConstraints(pattern=COLOR_PATTERN.pattern)]
Forwarding = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128)]
# JSON true/false only: lax validation would also take 1, "yes" or "off" as a flag.
Flag = Annotated[bool, Field(strict=True)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GroupIn(Body):
    id: Identifier
    name: Label
    settings: dict[str, Any] = Field(default_factory=dict)


class TemplateIn(Body):
    name: Name
    status: Status
    text: Label
    color: Color
    active: Flag = True
    call_forwarding: Forwarding | None = None


class UserIn(Body):
    id: Identifier
    display_name: Label
    group: Identifier
    teams_user_id: Identifier | None = None


class UserSettingsIn(Body):
    teams_sync_mode: TeamsSyncMode | None


class ProfileIn(Body):
    name: Name
    status: Status
    text: Label
    color: Color
    call_forwarding: Forwarding | None = None


class ProfileOrderIn(Body):
    names: list[Name] = Field(max_length=200)


class SelectProfileIn(Body):
    name: Name | None


class AppointmentIn(Body):
    subject: Label
    start: AwareDatetime
    end: AwareDatetime
    profile: Name | None = None
    color: Color | None = None


class TelephonyEventIn(Body):
    user: Identifier
    call_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    state: CallState


# A batch fits the default 64 KiB body limit with room to spare (~90 bytes an event).
MAX_BATCH_EVENTS = 500


class TelephonyBatchIn(Body):
    events: Annotated[list[TelephonyEventIn], Field(min_length=1, max_length=MAX_BATCH_EVENTS)]


class TelephonyBatchOut(BaseModel):
    accepted: int
    users: int


class MeetingIn(Body):
    meeting_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    state: MeetingState
    screen_sharing: Flag = False
    audio: Flag = True


class ClockIn(Body):
    advance_seconds: float = Field(ge=0, le=366 * 24 * 3600, strict=True)  # not `false`


class TokenOut(BaseModel):
    token: str


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
