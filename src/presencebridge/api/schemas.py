"""Request and response bodies of the REST API (SPEC §7), with their validation.

Every string a request carries passes one check before it reaches the core (see
docs/rules.md, "Names and identifiers"): no control characters (Unicode category Cc,
NUL included: PostgreSQL cannot store it) and no unpaired surrogates (no database can
store them as UTF-8). Names that people choose and that are looked up again -
profile and template names - are NFC-normalised, trimmed, must not be empty and may
hold no invisible format characters (Cf, e.g. zero-width space) or line separators.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from presencebridge.core import addresses
from presencebridge.core.model import (
    COLOR_PATTERN,
    ID_PATTERN,
    CallState,
    MeetingState,
    Status,
    TeamsSyncMode,
)
from presencebridge.core.settings import WHITELIST_MAX, GroupSettings

NAME_MAX = 64
LABEL_MAX = 200  # a presence text, a subject, a display or group name
FORWARDING_MAX = 128
EMAIL_MAX = 254
ID_MAX = 128  # core.model.ID_PATTERN
# Each form field's longest value, for the console's `maxlength` attributes.
LIMITS = {
    "name": NAME_MAX,
    "label": LABEL_MAX,
    "forwarding": FORWARDING_MAX,
    "email": EMAIL_MAX,
    "id": ID_MAX,
    "process_list": WHITELIST_MAX,
}
# Never allowed in any string: control characters, and surrogates (only reachable
# through a lone JSON escape such as "\ud800", which no UTF-8 store can keep).
_REFUSED_EVERYWHERE = {"Cc": "a control character", "Cs": "an unpaired surrogate"}
# Also refused in names: invisible characters that make two names look alike.
_REFUSED_IN_NAMES = {
    **_REFUSED_EVERYWHERE,
    "Cf": "an invisible format character",
    "Zl": "a line separator",
    "Zp": "a paragraph separator",
}


CHARACTER_PROBLEM = "must not contain {kind} (U+{code} at character {position})"


def refused_character(value: str, *, name: bool = False) -> dict[str, str | int] | None:
    """The first character of `value` that may not be stored, or None: its kind, code
    point (hex) and position, for `CHARACTER_PROBLEM`."""
    refused = _REFUSED_IN_NAMES if name else _REFUSED_EVERYWHERE
    for position, char in enumerate(value, 1):
        kind = refused.get(unicodedata.category(char))
        if kind is not None:
            code = f"{ord(char):04X}"
            category = unicodedata.category(char)
            return {"kind": kind, "code": code, "position": position, "category": category}
    return None


def character_problem(value: str, *, name: bool = False) -> str | None:
    """Why `value` may not be stored, or None; names the first refused character."""
    found = refused_character(value, name=name)
    return None if found is None else CHARACTER_PROBLEM.format(**found)


def normalise_name(value: str) -> str:
    """A name as the core keeps it: NFC, without surrounding whitespace."""
    return unicodedata.normalize("NFC", value).strip()


def name_problem(value: str) -> str | None:
    """Why a (normalised) profile or template name is refused, or None."""
    if not value:
        return "must not be empty"
    if len(value) > NAME_MAX:
        return f"must be at most {NAME_MAX} characters"
    if value in (".", ".."):
        return "'.' and '..' cannot be addressed in a URL; choose another name"
    return character_problem(value, name=True)


def _check_text(value: str) -> str:
    found = refused_character(value)
    if found is not None:  # the character in the error's context too (the CSV import)
        raise PydanticCustomError("refused_character", CHARACTER_PROBLEM, found)
    return value


def _check_name(value: str) -> str:
    value = normalise_name(value)
    problem = name_problem(value)
    if problem is not None:
        # `why` (and the character found) for a reader in another language (the console).
        context: dict[str, str | int] = {"why": "character", "max_length": NAME_MAX}
        if not value:
            context["why"] = "empty"
        elif len(value) > NAME_MAX:
            context["why"] = "too_long"
        elif value in (".", ".."):
            context["why"] = "dots"
        else:
            context.update(refused_character(value, name=True) or {})
        raise PydanticCustomError("refused_name", problem, context)
    return value


Identifier = Annotated[str, StringConstraints(pattern=ID_PATTERN.pattern)]
# Profile and template names: trimmed, NFC, then checked (docs/rules.md).
Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=NAME_MAX),
    AfterValidator(_check_name),
]
Label = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=LABEL_MAX),
    AfterValidator(_check_text),
]
Color = Annotated[str, StringConstraints(pattern=COLOR_PATTERN.pattern)]
Forwarding = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=FORWARDING_MAX),
    AfterValidator(_check_text),
]
# A search term (a query parameter): any text a stored value could contain.
SearchTerm = Annotated[str, AfterValidator(_check_text)]
# A PBX call id, a UC meeting id: kept as sent.
ExternalId = Annotated[
    str, StringConstraints(min_length=1, max_length=128), AfterValidator(_check_text)
]


def _check_extension(value: str) -> str:
    try:
        return addresses.extension(value)
    except addresses.AddressError as error:
        raise PydanticCustomError("extension", str(error)) from None


# A PBX extension (docs/rules.md, "Extensions and numbers").
Extension = Annotated[str, AfterValidator(_check_extension)]
# A phone number as sent; parsed into E.164 with the hub's default country later.
PhoneNumber = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=addresses.NUMBER_MAX),
    AfterValidator(_check_text),
]
Email = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=EMAIL_MAX, pattern=r"^[^@\s]+@[^@\s]+$"),
    AfterValidator(_check_text),
]
MAX_ADDRESSES = 20  # extensions, numbers: each at most this many per user
# JSON true/false only: lax validation would also take 1, "yes" or "off" as a flag.
Flag = Annotated[bool, Field(strict=True)]


def _refused_strings(value: Any, where: tuple[str | int, ...]) -> list[InitErrorDetails]:
    """Every string in a JSON value (keys too) that may not be stored.

    Iterative: an agent's message may be nested as deep as the JSON parser allows.
    """
    found: list[InitErrorDetails] = []
    todo: list[tuple[Any, tuple[str | int, ...]]] = [(value, where)]
    while todo:
        item, at = todo.pop()
        if isinstance(item, str):
            refused = refused_character(item)
            if refused is not None:  # the character in the context too (the console)
                error = PydanticCustomError("refused_character", CHARACTER_PROBLEM, refused)
                found.append(InitErrorDetails(type=error, loc=at, input=item))
        elif isinstance(item, Mapping):
            for key, child in reversed(list(item.items())):
                todo += [(child, (*at, str(key))), (key, at)]
        elif isinstance(item, list | tuple):
            todo += [(child, (*at, i)) for i, child in reversed(list(enumerate(item)))]
    return found


def refused_string(value: Any) -> str | None:
    """`where: why` of the first string in a JSON value that may not be stored, or None."""
    found = _refused_strings(value, ())
    if not found:
        return None
    error = found[0]["type"]
    message = error.message() if isinstance(error, PydanticCustomError) else str(error)
    return f"{'.'.join(str(p) for p in found[0]['loc']) or 'value'}: {message}"


def merged_settings(base: GroupSettings | None, patch: Mapping[str, Any]) -> GroupSettings:
    """`base` (or the defaults) with `patch` applied, after the character check.

    Raises pydantic's ValidationError naming the setting, for the API and the console alike.
    """
    refused = _refused_strings(patch, ())
    if refused:
        raise ValidationError.from_exception_data("GroupSettings", refused)
    return (base or GroupSettings()).merged(dict(patch))


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
    email: Email | None = None
    extensions: list[Extension] = Field(default_factory=list, max_length=MAX_ADDRESSES)
    numbers: list[PhoneNumber] = Field(default_factory=list, max_length=MAX_ADDRESSES)


class UserPatchIn(Body):
    """Only the fields present change; `null` clears the optional ones."""

    display_name: Label | None = None
    group: Identifier | None = None
    teams_user_id: Identifier | None = None
    email: Email | None = None
    extensions: list[Extension] | None = Field(None, max_length=MAX_ADDRESSES)
    numbers: list[PhoneNumber] | None = Field(None, max_length=MAX_ADDRESSES)

    @field_validator("display_name", "group")
    @classmethod
    def _required(cls, value: str | None) -> str:
        if value is None:
            raise ValueError("must not be null (it cannot be cleared)")
        return value


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
    """A PBX call event; the user is named by exactly one of user, extension, number."""

    user: Identifier | None = None
    extension: Extension | None = None
    number: PhoneNumber | None = None
    call_id: ExternalId
    state: CallState

    @model_validator(mode="after")
    def _one_name(self) -> TelephonyEventIn:
        # Every event of a batch passes here: the common case without building a list.
        if (self.user is None) + (self.extension is None) + (self.number is None) == 2:
            return self
        named = [n for n in ("user", "extension", "number") if getattr(self, n) is not None]
        if len(named) != 1:
            given = ", ".join(named) or "none"
            raise ValueError(
                f"name the user by exactly one of user, extension, number (given: {given})"
            )
        return self


# A batch fits the default 64 KiB body limit with room to spare (~90 bytes an event).
MAX_BATCH_EVENTS = 500


class TelephonyBatchIn(Body):
    events: Annotated[list[TelephonyEventIn], Field(min_length=1, max_length=MAX_BATCH_EVENTS)]


class TelephonyRefusalOut(BaseModel):
    """An event of a batch the hub refused (the others applied): its place in the batch."""

    index: int
    code: str
    detail: str


class TelephonyBatchOut(BaseModel):
    accepted: int
    users: int
    rejected: list[TelephonyRefusalOut] = []


class MeetingIn(Body):
    meeting_id: ExternalId
    state: MeetingState
    screen_sharing: Flag = False
    audio: Flag = True


class ClockIn(Body):
    advance_seconds: float = Field(ge=0, le=366 * 24 * 3600, strict=True)  # not `false`


class TokenOut(BaseModel):
    token: str


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
